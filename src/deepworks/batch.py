"""Batch inference over many inputs: `deepworks use RUN FOLDER|LIST --out results.parquet [--engine ray|spark]`.

The inputs (the files of a folder, or the lines of a list: paths, or texts for a text run) are cut into shards of
`shard_size`, in sorted order; each shard's answers are written as one Parquet file, `OUT/part-NNNNN.parquet`
(atomically: a file there is a finished shard), with a row per input: the input, its answer as JSON, and an error
where that input alone could not be read. A second start with the same run, inputs and shard size skips the shards
that are there (OUT/_deepworks.json records what the output is of, and a different run or list is refused rather
than mixed in), so an interrupted job resumes. Engines: local (this process), Ray Data (`map_batches` over a pool of
actors, each loading the model once) and Spark (`mapInPandas`, the model loaded once per Python worker): the same
shards and the same code per shard, so the answers are identical whichever ran them.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import threading
from contextlib import contextmanager
from pathlib import Path

from .errors import ConfigError, DataError, DeepworksError

ENGINES = ("local", "ray", "spark")
SHARD_SIZE = 256
MANIFEST = "_deepworks.json"
LIST_SUFFIXES = (".txt", ".lst", ".list")
MOST_SHARD = 10_000  # inputs one shard may hold: each is decoded whole, in one call


def batch_inputs(inputs: list[str], takes: tuple[str, ...]) -> list[str]:
    """The inputs a batch job goes through, in order: a folder's image or audio files (sorted, as training lists
    them), the lines of a list file (.txt or .lst: paths, a folder among them standing for its files; for a text
    run, texts), or files named one by one."""
    found: list[str] = []
    for given in inputs:
        path = Path(given)
        if path.suffix.lower() in LIST_SUFFIXES and path.is_file():
            lines = list_lines(path, texts="text" in takes)
            found += lines if "text" in takes else [f for line in lines for f in files_of(Path(line), takes, path)]
        else:
            found += [given] if "text" in takes and not path.is_dir() else files_of(path, takes)
    if not found:
        raise DataError(f"No inputs found in {', '.join(inputs)}. Expected a folder of inputs or a list of them.")
    return found


def files_of(path: Path, takes: tuple[str, ...], listed_in: Path | None = None) -> list[str]:
    """A file, or the image (or audio) files of a folder, sorted."""
    from .data.audio import AUDIO_EXTENSIONS
    from .data.images import image_files

    if path.is_dir():
        files = image_files(path) if "image" in takes else sorted(
            p for p in path.rglob("*") if p.suffix.lower() in AUDIO_EXTENSIONS and p.is_file())
        return [str(f) for f in files]
    if path.is_file():
        return [str(path)]
    where = f" (named in {listed_in})" if listed_in else ""
    raise DataError(f"No such file or folder '{path}'{where}. Expected a folder of inputs, a list file (one input "
                    f"per line: {', '.join(LIST_SUFFIXES)}), or files.")


def list_lines(path: Path, texts: bool) -> list[str]:
    """A list file's non-empty lines: paths without their surrounding spaces, texts as they are (but the line end)."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError as err:
        raise DataError(f"'{path}' is not UTF-8 text (byte {err.start}). Expected a list of inputs, one a line, in "
                        f"UTF-8; save it as UTF-8.") from None
    except OSError as err:
        raise DataError(f"Cannot read '{path}' ({err.strerror or err}). Expected a list file you may read.") from None
    return [line for line in lines if line.strip()] if texts else [line.strip() for line in lines if line.strip()]


def shards_of(inputs: list[str], size: int) -> list[list[str]]:
    return [inputs[i:i + size] for i in range(0, len(inputs), size)]


def part_path(out: Path, shard: int) -> Path:
    return out / f"part-{shard:05d}.parquet"


def job_identity(run_path: Path, inputs: list[str], shard_size: int, options: dict) -> dict:
    """What the output is of: the run's weights, the inputs in order, the shard size and the options."""
    weights = hashlib.sha256((run_path / "model.safetensors").read_bytes()).hexdigest() \
        if (run_path / "model.safetensors").exists() else None
    listed = hashlib.sha256("\n".join(inputs).encode("utf-8", "surrogateescape")).hexdigest()
    return {"run": str(run_path.resolve()), "weights_sha256": weights, "inputs_sha256": listed,
            "inputs": len(inputs), "shard_size": shard_size, "options": options}


def prepare_out(out: Path, identity: dict) -> None:
    """OUT made, or checked to be the output of this very job (its manifest), before a shard is skipped."""
    from .run import atomic_write_json

    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out '{out}' is a file. Expected a folder to write the Parquet parts into (a new one is "
                          f"made; Spark, pandas and Ray all read such a folder as one table).")
    manifest = out / MANIFEST
    if out.is_dir() and any(out.iterdir()):
        try:
            recorded = json.loads(manifest.read_text())
        except (OSError, ValueError):
            raise ConfigError(f"--out '{out}' holds other files. Expected a new folder, or the output of an earlier "
                              f"start of this job (with its {MANIFEST}).") from None
        if recorded != identity:
            changed = sorted(k for k in identity if not isinstance(recorded, dict) or recorded.get(k) != identity[k])
            said = "; ".join(f"{k} {shown(recorded, k)} there, {identity[k]!r} now" for k in changed)
            raise ConfigError(f"--out '{out}' holds the output of another job ({said}). Expected the same run, "
                              f"inputs, shard size and options to resume; pass those, or --out a new folder.")
        return
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_json(manifest, identity)


def shown(recorded, key: str) -> str:
    return repr(recorded.get(key)) if isinstance(recorded, dict) else "nothing readable"


def answer_rows(trained, inputs: list[str], options: dict) -> list[dict]:
    """One row per input: the input, its answer (JSON, as `--json` prints it) and an error. The shard is answered at
    once; where an input cannot be read, each input is answered alone, so that one bad file costs its own row."""
    try:
        answers = trained.use(inputs, **options)
    except DataError:
        return [alone(trained, given, options) for given in inputs]
    if len(answers) != len(inputs):  # one answer an input (batch_inputs lists files, never folders)
        raise DeepworksError(f"Expected one answer for each of {len(inputs)} inputs. Received {len(answers)}.")
    return [answer_row(given, answer) for given, answer in zip(inputs, answers)]


def alone(trained, given: str, options: dict) -> dict:
    try:
        return answer_row(given, trained.use([given], **options)[0])
    except DataError as err:
        return {"input": given, "answer": None, "error": str(err)}


def answer_row(given: str, answer: dict) -> dict:
    return {"input": given, "answer": json.dumps(answer), "error": None}


def readable(name: str) -> str:
    """A path as Parquet's UTF-8 text can hold it (a file name that is not UTF-8 gets U+FFFD where it is not)."""
    return name.encode("utf-8", "surrogateescape").decode("utf-8", "replace")


def write_part(path: Path, rows: list[dict]) -> None:
    """A shard's rows as one Parquet file, written beside and renamed into place (a part that is there is whole)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    schema = pa.schema([("input", pa.string()), ("answer", pa.string()), ("error", pa.string())])
    rows = [{**row, "input": readable(row["input"])} for row in rows]
    temp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        pq.write_table(pa.Table.from_pylist(rows, schema=schema), temp)
        os.replace(temp, path)
    finally:
        temp.unlink(missing_ok=True)  # (an interrupted write leaves no half part behind)


class ShardWorker:
    """What every engine runs: the model loaded once, then shard after shard answered and written."""

    def __init__(self, run: str, out: str, shards: list[list[str]], options: dict, device: str = "cpu",
                 threads: int | None = None):
        from .api.trained import load

        if threads is not None:  # an engine's worker: one core each, whatever its process inherited
            from .training.threads import configure

            configure(threads)
        self.trained = load(run, device=device)
        self.out, self.shards, self.options = Path(out), shards, options

    def run(self, shard: int) -> int:
        rows = answer_rows(self.trained, self.shards[shard], self.options)
        write_part(part_path(self.out, shard), rows)
        return len(rows)


def run_batch(run: str | Path, inputs: list[str], out: str | Path, engine: str = "local", workers: int = 2,
              shard_size: int = SHARD_SIZE, progress=True, **options) -> dict:
    """Answer every input of `inputs` (see the module's docstring) into the Parquet folder `out`; returns what was
    done: shards in all, answered now, skipped as finished, rows written now. `progress`: lines on stderr (True),
    none (False), or a function called with each line."""
    from .api.trained import load

    if engine not in ENGINES:
        raise ConfigError(f"--engine must be one of {', '.join(ENGINES)}. Received: {engine!r}.")
    for name, value, low, high in (("--workers", workers, 1, 256), ("--shard-size", shard_size, 1, MOST_SHARD)):
        if not isinstance(value, int) or not low <= value <= high:
            raise ConfigError(f"{name} must be a whole number from {low:,} to {high:,}. Received: {value!r}.")
    from .registry import get_card
    from .usage import check_options

    if isinstance(inputs, (str, Path)):
        inputs = [inputs]  # one folder or list, as the command line gives it
    trained = load(getattr(getattr(run, "run", None), "path", run), device="cpu")  # a path, or a loaded run
    takes = get_card(trained.cfg.task).inputs
    if "noise" in takes:
        raise ConfigError(f"{trained.face.kind} run makes its own outputs from noise: there are no inputs to go "
                          f"through. Use `deepworks sample` instead.")
    given = {k: v for k, v in options.items() if v is not None}
    checked = check_options(trained.face.use_options, given, trained.face.verb)  # a wrong option: said at once
    options = {k: checked[k] for k in given}  # as typed or as passed ("5" or 5): the same job
    listed = batch_inputs([str(i) for i in inputs], takes)
    shards, out = shards_of(listed, shard_size), Path(out)
    prepare_out(out, job_identity(trained.run.path, listed, shard_size, options))
    todo = [i for i in range(len(shards)) if not part_path(out, i).exists()]
    say = progress if callable(progress) else (lambda text: print(text, file=sys.stderr, flush=True)) if progress \
        else (lambda text: None)
    say(f"{len(listed):,} inputs in {len(shards)} shards of {shard_size}; {len(shards) - len(todo)} done already, "
        f"{len(todo)} to go on {engine}")
    rows = ENGINE_RUNNERS[engine](str(trained.run.path), str(out), shards, todo, options, workers, say)
    return {"out": str(out), "engine": engine, "inputs": len(listed), "shards": len(shards), "answered": len(todo),
            "skipped": len(shards) - len(todo), "rows": rows}


def run_local(run: str, out: str, shards: list, todo: list[int], options: dict, workers: int, say) -> int:
    worker, rows = ShardWorker(run, out, shards, options, device="auto"), 0  # (a GPU here: on it)
    for done, shard in enumerate(todo, 1):
        rows += worker.run(shard)
        say(f"shard {shard} written ({done}/{len(todo)})")
    return rows


def run_ray(run: str, out: str, shards: list, todo: list[int], options: dict, workers: int, say) -> int:
    """Ray Data: the shard numbers as a dataset, map_batches over `workers` actors of ShardWorker (one CPU each)."""
    try:
        import ray
    except ImportError:
        raise ConfigError('--engine ray needs Ray Data. Install it with: pip install "deepworks[ray]"') from None
    started = not ray.is_initialized()
    if started:
        start_ray_here(ray, workers)
    try:
        with failing_as("Ray", line=-1):  # (Ray wraps a worker's error: its own words end the text)
            worker = ray_actor(run, out, shards, options)
            ds = ray.data.from_items([{"shard": i} for i in todo], override_num_blocks=max(1, len(todo)))
            pool = ray.data.ActorPoolStrategy(size=workers)
            results = ds.map_batches(worker, batch_size=1, compute=pool, num_cpus=1)
            rows = 0
            for done, row in enumerate(results.iter_rows(), 1):
                rows += int(row["rows"])
                say(f"shard {int(row['shard'])} written ({done}/{len(todo)})")
            return rows
    finally:
        if started:
            ray.shutdown()


def start_ray_here(ray, workers: int) -> None:
    """Ray on this machine (or the cluster at $RAY_ADDRESS), quiet, bound to the loopback interface."""
    import logging

    here = {} if os.environ.get("RAY_ADDRESS") else {"PYTHONPATH": os.pathsep.join(sys.path)}  # (this machine's)
    env = {"runtime_env": {"env_vars": {"DEEPWORKS_THREADS": "1", "OMP_NUM_THREADS": "1", **here}},
           "logging_config": ray.LoggingConfig(log_level="ERROR")}
    for name in ("ray", "ray.data"):
        logging.getLogger(name).setLevel(logging.ERROR)
    if os.environ.get("RAY_ADDRESS"):
        ray.init(**env)
    else:
        ray.init(num_cpus=workers, include_dashboard=False, _node_ip_address="127.0.0.1", log_to_driver=False,
                 configure_logging=False, **env)
    context = ray.data.DataContext.get_current()
    context.enable_progress_bars, context.print_on_execution_start = False, False


def ray_actor(run: str, out: str, shards: list, options: dict):
    """ShardWorker as Ray Data calls a class: made once per actor, then called with batches of shard numbers."""

    class RayShardWorker(ShardWorker):
        def __init__(self):
            super().__init__(run, out, shards, options, threads=1)

        def __call__(self, batch: dict) -> dict:
            ids = [int(i) for i in batch["shard"]]
            return {"shard": ids, "rows": [self.run(i) for i in ids]}

    return RayShardWorker


def run_spark(run: str, out: str, shards: list, todo: list[int], options: dict, workers: int, say) -> int:
    """Spark: the shard numbers as a DataFrame of `len(todo)` partitions, mapInPandas answering each; the model is
    loaded once per Python worker (cached in its process)."""
    try:
        from pyspark.sql import SparkSession
    except ImportError:
        raise ConfigError('--engine spark needs pyspark. Install it with: pip install "deepworks[spark]"') from None
    spark = SparkSession.getActiveSession()
    started = spark is None
    if started:
        spark = (SparkSession.builder.master(os.environ.get("SPARK_MASTER", f"local[{workers}]"))
                 .appName("deepworks batch").config("spark.driver.host", "127.0.0.1")
                 .config("spark.driver.bindAddress", "127.0.0.1").config("spark.ui.enabled", "false")
                 .config("spark.executorEnv.DEEPWORKS_THREADS", "1").getOrCreate())
        spark.sparkContext.setLogLevel("ERROR")
    try:
        with failing_as("Spark", line=0):
            rows = spark.sparkContext.parallelize([(i,) for i in todo], max(1, len(todo)))  # a shard a partition
            frame = spark.createDataFrame(rows, "shard int")
            with parts_said(Path(out), todo, say):  # Spark hands the answers back at the end: progress from the parts
                answered = frame.mapInPandas(spark_answerer(run, out, shards, options),
                                             "shard int, rows int").collect()
            return sum(row["rows"] for row in answered)
    finally:
        if started:
            spark.stop()


@contextmanager
def failing_as(engine: str, line: int):
    """An engine's own error, as one line of it (`line`: which one holds the cause) in a DeepworksError; deepworks'
    own errors pass as they are."""
    try:
        yield
    except DeepworksError:
        raise
    except Exception as err:
        said = str(err).strip().splitlines() or [type(err).__name__]
        raise DeepworksError(f"The batch job failed on {engine}: {said[line][:300]}") from None


@contextmanager
def parts_said(out: Path, todo: list[int], say, every_s: float = 0.2):
    """Within it, each shard of `todo` is said written as its part appears in `out` (a thread looks every
    `every_s`); on leaving, those not said yet are."""
    stop, said = threading.Event(), set()

    def look() -> None:
        for shard in todo:
            if shard not in said and part_path(out, shard).exists():
                said.add(shard)
                say(f"shard {shard} written ({len(said)}/{len(todo)})")

    def watch() -> None:
        while not stop.wait(every_s):
            look()

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    try:
        yield
    finally:
        stop.set()
        watcher.join()
        look()


def spark_answerer(run: str, out: str, shards: list, options: dict):
    def answer(frames):
        import pandas as pd

        worker = cached_worker(run, out, shards, options)
        for frame in frames:
            ids = [int(i) for i in frame["shard"]]
            yield pd.DataFrame({"shard": ids, "rows": [worker.run(i) for i in ids]})

    return answer


_WORKERS: dict = {}


def cached_worker(run: str, out: str, shards: list, options: dict) -> ShardWorker:
    """One ShardWorker per Python process and job (Spark reuses its Python workers across tasks)."""
    key = json.dumps([run, out, shards, options], sort_keys=True)  # a reused Python worker never answers another job
    if key not in _WORKERS:  # with this one's inputs or options
        _WORKERS.clear()
        _WORKERS[key] = ShardWorker(run, out, shards, options, threads=1)
    return _WORKERS[key]


ENGINE_RUNNERS = {"local": run_local, "ray": run_ray, "spark": run_spark}
