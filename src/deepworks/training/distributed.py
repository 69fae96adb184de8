"""Training across processes and machines, on the engines users already run: torchrun, Ray Train and Spark.

All three run one and the same worker function, `worker(run_path)`, in every process: it joins the
torch.distributed group (gloo on CPUs, NCCL on CUDA), trains the run in `run_path` with a DistributedEngine
(engine.py) and returns. The engines differ only in how the processes are started and find each other:

    deepworks train --engine torchrun --nproc 2          # PyTorch's launcher (torch elastic), this machine
    deepworks train --engine torchrun --nproc 2 --nnodes 2 --node-rank 0 --master-addr 10.0.0.1   # on machine 0
    deepworks train --engine ray --nproc 2               # Ray Train's TorchTrainer (a Ray cluster, or one here)
    deepworks train --engine spark --nproc 2             # Spark's TorchDistributor

The launching process creates the run folder, holds its lock and waits; only the process of rank 0 writes into
it. Semantics: --batch-size is the global batch, each process takes its contiguous part of every batch of the
epoch's seeded order, the gradients are averaged (weighted by samples) before each step, metric sums are added
over the processes, and the epoch's record (validation on rank 0) is shared so that early stopping decides alike
everywhere. Batch norm keeps its statistics per process on CPUs (SyncBatchNorm runs only on GPUs); rank 0's are
saved. A worker that finds a checkpoint in the run goes on from it: that is how `--max-restarts` and `--resume`
(with any number of processes) continue a run.

With torchrun, the launcher is the process a user (or the web UI's Stop button) signals: Ctrl-C, `kill -INT` and
`kill -TERM` reach the workers as Ctrl-C (ForwardStops), so that they stop at one step, save the checkpoint and the
launcher says "Interrupted ... Resume with" as a one-process run does. torchrun's agent runs in elastic_agent.py,
which turns a lost worker into one line. The web UI's job names a progress file in $DEEPWORKS_PROGRESS_FILE, which
rank 0 keeps, whatever the engine.
"""

from __future__ import annotations

import errno
import importlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import traceback
from datetime import timedelta
from pathlib import Path

from ..config import Config
from ..environ import environment
from ..errors import ConfigError, DeepworksError, Interrupted, TrainingError
from ..run import Run

WORKER_ENV = "DEEPWORKS_WORKER"  # set in every worker process, so that it trains instead of launching again
LAUNCH_ENV = "DEEPWORKS_LAUNCH"  # torchrun: a folder where the workers and the agent tell the launcher how they end


TRAIN_WORKER = "deepworks.api.training:train_worker"  # what every process runs (trainer_entry)
PROGRESS_ENV = "DEEPWORKS_PROGRESS_FILE"  # a file where rank 0 keeps the trainer's position (the web UI's progress)


def progress_callbacks() -> list | None:
    """What rank 0 reports its progress through, whatever the engine: callbacks run in the process that trains, so
    a caller in another process (the web UI's job) names a file instead, in $DEEPWORKS_PROGRESS_FILE."""
    path = os.environ.get(PROGRESS_ENV)
    if not path:
        return None
    from .callbacks import ProgressFeed

    return [ProgressFeed(Path(path))]


def in_worker() -> bool:
    return os.environ.get(WORKER_ENV) == "1"


def free_port() -> int:
    """A port nothing listens on now, on 127.0.0.1: two runs on one machine never share a rendezvous."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def worker_env(cfg: Config, one_machine: bool) -> dict:
    """The environment of the worker processes: their share of the free cores, and, when they all run on this
    machine, gloo kept on the loopback interface."""
    from . import threads

    env = dict(os.environ)
    env[WORKER_ENV] = "1"
    if threads.ENV not in env:
        env[threads.ENV] = str(max(1, threads.configure() // max(1, cfg.engine.nproc)))
    env.setdefault("OMP_NUM_THREADS", env[threads.ENV])
    if one_machine:
        env.setdefault("GLOO_SOCKET_IFNAME", "lo")
    return env


def launch(run: Run, cfg: Config) -> None:
    """Train the run in worker processes started by the engine --engine names; return when they are done."""
    launchers = {"torchrun": launch_torchrun, "ray": launch_ray, "spark": launch_spark}
    launchers[cfg.engine.name](run, cfg)


def check_before_launch(cfg: Config) -> None:
    """What can be refused before the run folder is made and any process starts."""
    if cfg.engine.name == "torchrun":
        check_master_port(cfg)


def failed(engine: str, run: Run, detail: str, shown_above: bool = True) -> TrainingError:
    kept = (f" The last good checkpoint is kept; continue with: deepworks train --resume {run.path} --engine {engine}"
            if run.checkpoint_file.exists() else "")
    above = "; the workers' messages are above" if shown_above else ""
    return TrainingError(f"The {engine} run failed ({detail}){above}.{kept}")


# --- torchrun ---------------------------------------------------------------------------------
def torchrun_command(run: Run, cfg: Config) -> list[str]:
    """torch elastic's agent (torchrun's), in a process of ours (elastic_agent.py), and the workers it starts."""
    e = cfg.engine
    cmd = [sys.executable, "-m", "deepworks.training.elastic_agent", f"--nproc-per-node={e.nproc}",
           f"--max-restarts={e.max_restarts}", "--signals-to-handle=SIGTERM,SIGHUP"]  # SIGINT: the launcher's
    if e.nnodes == 1:
        cmd += ["--nnodes=1", "--rdzv-backend=c10d", f"--rdzv-endpoint=127.0.0.1:{e.master_port or free_port()}"]
    else:
        cmd += [f"--nnodes={e.nnodes}", f"--node-rank={e.node_rank}", f"--master-addr={e.master_addr}",
                f"--master-port={e.master_port or 29500}"]
    return cmd + ["-m", "deepworks.training.distributed", str(run.path.resolve())]


def check_master_port(cfg: Config) -> None:
    """A port another program holds fails deep in torch's C++ without naming the port: say it before starting.
    Only the machine that holds the rendezvous (one machine, or --node-rank 0) can tell."""
    e = cfg.engine
    if e.node_rank > 0 or (e.nnodes == 1 and e.master_port is None):
        return  # the rendezvous is on machine 0; or the port is a free one, chosen just now
    port, host = e.master_port or 29500, "127.0.0.1" if e.nnodes == 1 else ""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # a closed connection's TIME_WAIT is no conflict
        try:
            s.bind((host, port))
        except OSError as err:
            if err.errno != errno.EADDRINUSE:
                return
            given = f"--master-port {e.master_port}" if e.master_port else "the default port 29500"
            fix = ", or leave it out and deepworks picks a free one" if e.nnodes == 1 else " on every machine"
            raise ConfigError(f"Port {port} is in use on this machine: another program listens there. Expected a "
                              f"free port for the rendezvous. Received {given}. Choose another with "
                              f"--master-port{fix}.") from None


def launch_torchrun(run: Run, cfg: Config) -> None:
    with tempfile.TemporaryDirectory(prefix="deepworks-launch-") as folder:
        talk = Path(folder)
        env = worker_env(cfg, one_machine=cfg.engine.nnodes == 1)
        env[LAUNCH_ENV] = folder
        with ForwardStops(talk) as stops:
            stops.agent = subprocess.Popen(torchrun_command(run, cfg), env=env)
            if stops.asked:  # a stop that came while it started
                stops.agent.terminate()
            code = stops.agent.wait()
        said = {name: read_text(talk / name) for name in ("interrupted", "failure")}
    if said["interrupted"]:  # the workers' own message, with the path as this process names the run
        raise Interrupted(said["interrupted"].replace(str(run.path.resolve()), str(run.path)))
    if stops.asked:
        raise Interrupted(f"Interrupted; the last checkpoint is kept. Resume with: deepworks train --resume {run.path}"
                          if run.checkpoint_file.exists() else
                          "Interrupted before the first epoch was saved: start the run again to train it.")
    if code != 0:
        raise failed("torchrun", run, said["failure"] or f"exit status {code}", shown_above=not said["failure"])


def error_line(err: BaseException) -> str:
    """An error of an engine's in one line: its type and the first line of its message."""
    text = str(err).strip()
    return f"{type(err).__name__}: {text.splitlines()[0]}" if text else type(err).__name__


def read_text(path: Path) -> str:
    try:
        return path.read_text().strip()
    except OSError:
        return ""


class ForwardStops:
    """Ctrl-C, `kill -INT` or `kill -TERM` to the launcher, passed on as Ctrl-C to the workers (their own sessions,
    so a terminal's Ctrl-C does not reach them): they stop at the same step, save the checkpoint and say so. A second
    one, or one before any worker has started, stops the agent and its workers at once."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self, talk: Path):
        self.agent: subprocess.Popen | None = None
        self.talk, self.asked, self.previous = talk, 0, {}

    def __enter__(self) -> "ForwardStops":
        if threading.current_thread() is threading.main_thread():  # where signals arrive
            self.previous = {s: signal.signal(s, self.stop) for s in self.SIGNALS}
        return self

    def __exit__(self, *exc) -> None:
        for s, handler in self.previous.items():
            signal.signal(s, handler)

    def stop(self, signum=None, frame=None) -> None:
        self.asked += 1
        (self.talk / "stop").touch()  # the agent restarts no group after this
        said = [read_text(p) for p in self.talk.glob("pid-*")]
        pids = [int(text) for text in said if text.isdigit() and int(text) > 0]
        if self.asked > 1 or not pids:
            if self.agent is not None:
                self.agent.terminate()
            return
        for pid in pids:
            try:
                os.kill(pid, signal.SIGINT)
            except (ProcessLookupError, PermissionError):
                pass  # a worker of an earlier attempt, gone


# --- Ray Train --------------------------------------------------------------------------------
def ray_worker(config: dict) -> None:
    worker(config["run"])


# Ray Train's own lines, off: its print patch printed each epoch line twice (once as printed, once logged), and its
# preemption watcher logs an error line on a machine with no cloud provider. They reach Ray's processes from the
# driver's environment (Ray Train passes them on) and from the job's runtime environment.
RAY_QUIET = {"RAY_TRAIN_ENABLE_PRINT_PATCH": "0", "RAY_TRAIN_ENABLE_PREEMPTION_WATCHER": "0"}


def start_ray(cfg: Config, ray) -> bool:
    """Connect to the user's Ray cluster ($RAY_ADDRESS), or start one of our own on this machine, bound to the
    loopback interface; False when this process was connected already. Ray's processes log errors only: its
    warnings and progress lines (23 "Failed to query ..." of its placement group cleaner, which asks a state API
    that only the dashboard serves) are not the user's to act on."""
    if ray.is_initialized():
        return False
    env = worker_env(cfg, one_machine=not os.environ.get("RAY_ADDRESS"))
    passed = {k: env[k] for k in (WORKER_ENV, "DEEPWORKS_THREADS", "OMP_NUM_THREADS", "GLOO_SOCKET_IFNAME",
                                  "PYTHONPATH", PROGRESS_ENV) if k in env}
    quiet = dict(runtime_env={"env_vars": {**passed, **RAY_QUIET}}, logging_config=ray.LoggingConfig(log_level="ERROR"))
    if os.environ.get("RAY_ADDRESS"):  # a cluster the user runs
        ray.init(**quiet)
    else:
        ray.init(num_cpus=max(cfg.engine.nproc, os.cpu_count() or 1), include_dashboard=False,
                 _node_ip_address="127.0.0.1", log_to_driver=True, configure_logging=False, **quiet)
    return True


def ray_train_errors_only() -> dict:
    """Ray Train's controller logs its progress ("Requesting resources ...") at INFO, whatever Ray's own level."""
    import ray.train

    found = getattr(ray.train, "LoggingConfig", None)  # Ray Train V2
    return {"logging_config": found(log_level="ERROR")} if found else {}


def launch_ray(run: Run, cfg: Config) -> None:
    try:
        import ray
        from ray.train import RunConfig, ScalingConfig
        from ray.train.torch import TorchTrainer
    except ImportError:
        raise ConfigError('--engine ray needs Ray Train. Install it with: pip install "deepworks[ray]"') from None
    import logging

    ray_logger = logging.getLogger("ray")
    level = ray_logger.level
    ray_logger.setLevel(logging.ERROR)  # the driver's own warnings, such as the one that token authentication is on
    started = False
    try:
        import torch

        with environment(RAY_QUIET):
            started = start_ray(cfg, ray)
            trainer = TorchTrainer(ray_worker, train_loop_config={"run": str(run.path.resolve())},
                                   scaling_config=ScalingConfig(num_workers=cfg.engine.nproc,
                                                                use_gpu=torch.cuda.is_available() and
                                                                cfg.train.device != "cpu"),
                                   run_config=RunConfig(storage_path=str((run.path / ".ray").resolve()),
                                                        name="train", **ray_train_errors_only()))
            result = trainer.fit()
        if getattr(result, "error", None) is not None:
            raise failed("ray", run, str(result.error).strip().splitlines()[0])
    except DeepworksError:
        raise
    except Exception as err:  # Ray wraps a worker's error in its own
        raise failed("ray", run, error_line(err))
    finally:
        ray_logger.setLevel(level)
        if started:
            ray.shutdown()


# --- Spark's TorchDistributor -------------------------------------------------------------------
def spark_worker(run_path: str) -> None:
    os.environ[WORKER_ENV] = "1"
    worker(run_path)


def launch_spark(run: Run, cfg: Config) -> None:
    try:
        from pyspark.ml.torch.distributor import TorchDistributor
        from pyspark.sql import SparkSession
    except ImportError:
        raise ConfigError('--engine spark needs pyspark. Install it with: pip install "deepworks[spark]"') from None
    import torch

    spark = SparkSession.getActiveSession()
    started = spark is None
    if started:  # a Spark of our own on this machine; with SPARK_MASTER (or spark-submit), the user's cluster
        master = os.environ.get("SPARK_MASTER", f"local[{cfg.engine.nproc}]")
        spark = (SparkSession.builder.master(master).appName(f"deepworks {run.name}")
                 .config("spark.driver.host", "127.0.0.1").config("spark.driver.bindAddress", "127.0.0.1")
                 .config("spark.ui.enabled", "false").getOrCreate())
    local = spark.sparkContext.master.startswith("local")
    env = worker_env(cfg, one_machine=local)
    keys = [k for k in ("DEEPWORKS_THREADS", "OMP_NUM_THREADS", "GLOO_SOCKET_IFNAME", PROGRESS_ENV) if k in env]
    try:
        with environment({k: env[k] for k in keys}):  # TorchDistributor's processes inherit the driver's environment
            TorchDistributor(num_processes=cfg.engine.nproc, local_mode=local,
                             use_gpu=torch.cuda.is_available() and cfg.train.device != "cpu").run(
                spark_worker, str(run.path.resolve()))
    except DeepworksError:
        raise
    except Exception as err:
        raise failed("spark", run, error_line(err))
    finally:
        if started:
            spark.stop()


# --- the worker all engines run -----------------------------------------------------------------
def join_group(backend: str) -> None:
    """init_process_group from torchrun's environment, with the keys of each attempt under their own prefix: after
    a restart, gloo would otherwise read the lost workers' addresses from the store and wait for them."""
    import torch.distributed as dist

    rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    timeout = timedelta(minutes=10)
    agent_store = os.environ.get("TORCHELASTIC_USE_AGENT_STORE", "").lower() == "true"
    store = dist.TCPStore(os.environ["MASTER_ADDR"], int(os.environ["MASTER_PORT"]), world,
                          is_master=rank == 0 and not agent_store, timeout=timeout)
    attempt = os.environ.get("TORCHELASTIC_RESTART_COUNT", "0")
    dist.init_process_group(backend, store=dist.PrefixStore(f"deepworks/attempt-{attempt}", store), rank=rank,
                            world_size=world, timeout=timeout)


def trainer_entry():
    """The function that trains a run in one process (TRAIN_WORKER), imported by its name: a process the engine
    started knows what to run by name (torchrun's `-m`, Ray's and Spark's pickled references), so the launcher, which
    the API calls, never imports the API back."""
    module, _, name = TRAIN_WORKER.partition(":")
    return getattr(importlib.import_module(module), name)


def worker(run_path: str | Path) -> None:
    """Join the process group (unless the engine did: Ray does), train the run, leave the group."""
    import torch
    import torch.distributed as dist

    joined = not dist.is_initialized()
    if joined:
        cfg = Config.load(Path(run_path) / "config.yaml")
        cuda = torch.cuda.is_available() and cfg.train.device != "cpu"
        join_group("nccl" if cuda else "gloo")
    try:
        trainer_entry()(run_path, progress_callbacks)
    finally:
        if joined:
            dist.destroy_process_group()


def main(argv: list[str] | None = None) -> int:
    """`python -m deepworks.training.distributed RUN`: what torchrun starts in each process. A stop (the launcher's Ctrl-C)
    ends the process with status 0, so that torch elastic does not restart the group; the launcher reports it."""
    argv = sys.argv[1:] if argv is None else argv
    os.environ[WORKER_ENV] = "1"
    signal.signal(signal.SIGINT, signal.default_int_handler)  # the agent ignores SIGINT, and so would its children
    rank, talk = os.environ.get("RANK", "?"), os.environ.get(LAUNCH_ENV)
    if talk:
        Path(talk, f"pid-{rank}").write_text(str(os.getpid()))
    try:
        worker(argv[0])
    except Interrupted as err:
        if talk:
            Path(talk, "interrupted").write_text(str(err))
        return 0
    except KeyboardInterrupt:  # before training started: nothing to save
        return 0
    except DeepworksError as err:
        print(f"error (rank {rank}): {err}", file=sys.stderr)
        return 2
    except Exception:
        if not talk:
            raise
        # A worker that lost a peer fails too: the agent shows the traceback of the one that failed first.
        Path(talk, f"traceback-{rank}").write_text(traceback.format_exc())
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
