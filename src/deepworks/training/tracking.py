"""`--track mlflow`: a run in MLflow's tracking store and its model in MLflow's registry (`deepworks register`).

The store is MLflow's own choice: $MLFLOW_TRACKING_URI, else MLflow's default in the current folder (SQLite in
mlflow.db, artifacts under mlruns/, which `mlflow ui` run in that folder shows); nothing goes online. During
training the `MlflowTracker` callback logs the settings once and each epoch's metrics (without waiting for the
store: MLflow's asynchronous logging, so that tracking costs the epoch almost nothing); once the run is tested,
`track_finished` logs the test metrics, the report, the card and the weights. The MLflow run's id is kept in
RUN/mlflow.json, so that a resumed run goes on in the same MLflow run.
"""

from __future__ import annotations

import json
from pathlib import Path

from ..errors import ConfigError, DeepworksError

ID_FILE = "mlflow.json"
EXPERIMENT = "deepworks"


def mlflow_module():
    try:
        import mlflow
    except ImportError:
        raise ConfigError('--track mlflow needs MLflow. Install it with: pip install "deepworks[mlflow]" (or pip '
                          'install mlflow).') from None
    return mlflow


def tracked(run_path: Path) -> dict:
    """RUN/mlflow.json: the MLflow run's id and the store it is in ({} for a run never tracked)."""
    try:
        found = json.loads((Path(run_path) / ID_FILE).read_text())
        return found if isinstance(found, dict) and isinstance(found.get("run_id"), str) else {}
    except (OSError, ValueError):
        return {}


def tracked_run_id(run_path: Path) -> str | None:
    return tracked(run_path).get("run_id")


def use_recorded_store(mlflow, run_path: Path) -> None:
    """Without $MLFLOW_TRACKING_URI, the store the run was tracked in (not the current folder's default): a run
    resumed or registered from another folder goes on where it began."""
    import os

    recorded = tracked(run_path).get("tracking_uri")
    if not os.environ.get("MLFLOW_TRACKING_URI") and isinstance(recorded, str):
        mlflow.set_tracking_uri(recorded)


def open_mlflow_run(run, cfg):
    """The MLflow run of this deepworks run: the one RUN/mlflow.json names (a resumed run), else a new one in the
    'deepworks' experiment with the settings as parameters."""
    import dataclasses

    from ..run import atomic_write_json

    mlflow = mlflow_module()
    use_recorded_store(mlflow, run.path)
    known = tracked_run_id(run.path)
    try:
        if known is not None and mlflow.tracking.MlflowClient().get_run(known) is not None:
            return mlflow.start_run(run_id=known)
    except mlflow.exceptions.MlflowException:
        pass  # a store without that run (another MLFLOW_TRACKING_URI): a new MLflow run
    mlflow.set_experiment(EXPERIMENT)
    active = mlflow.start_run(run_name=run.name, tags={"deepworks.task": cfg.task, "deepworks.run": str(run.path)})
    flat = flatten(dataclasses.asdict(cfg))
    mlflow.log_params({k: str(v)[:500] for k, v in flat.items()}, synchronous=True)
    atomic_write_json(run.path / ID_FILE, {"run_id": active.info.run_id, "tracking_uri": mlflow.get_tracking_uri()})
    return active


def flatten(tree: dict, prefix: str = "") -> dict:
    out = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            out.update(flatten(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


class MlflowTracker:
    """--track mlflow during training: each epoch's numbers as MLflow metrics at step = the epoch."""

    def __init__(self):
        self.active, self.finished = False, False

    def on_fit_start(self, trainer) -> None:
        if not trainer.run.writes:
            return  # a distributed run's other processes: rank 0 tracks
        open_mlflow_run(trainer.run, trainer.cfg)
        self.active = True

    def on_fit_end(self, trainer) -> None:
        self.finished = not trainer.interrupted

    def on_epoch_end(self, trainer, record: dict) -> None:
        if self.active:
            numbers = {k: float(v) for k, v in record.items()
                       if isinstance(v, (int, float)) and not isinstance(v, bool) and k not in ("epoch", "step")}
            mlflow_module().log_metrics(numbers, step=int(record["epoch"]), synchronous=False)

    def close(self) -> None:
        if self.active:  # an interrupted run is KILLED until it is resumed (MLflow's word for a run stopped)
            mlflow_module().end_run(status="FINISHED" if self.finished else "KILLED")  # (after the metrics on
            self.active = False                                                          # their way)


def track_finished(run, cfg, results: dict) -> None:
    """The tested run into its MLflow run: the test metrics, and the report, the card and the weights as
    artifacts (report/, model/)."""
    mlflow = mlflow_module()
    with open_mlflow_run(run, cfg):
        test = {f"test_{k}": float(v) for k, v in (results.get("test") or {}).items()
                if isinstance(v, (int, float)) and not isinstance(v, bool)}
        mlflow.log_metrics(test)
        if (run.path / "report").is_dir():
            mlflow.log_artifacts(str(run.path / "report"), artifact_path="report")
        for file in (run.model_file, run.weights_file, run.results_file):
            if Path(file).is_file():
                mlflow.log_artifact(str(file), artifact_path="model")


def register(run_path: str | Path, name: str, runs_dir: str | Path = "runs") -> dict:
    """`deepworks register RUN --name NAME`: the run's weights as a new version of NAME in MLflow's registry, with
    their sha256; refused where NAME already holds these very weights."""
    from ..api.trained import load

    mlflow = mlflow_module()
    if not isinstance(name, str) or not name.strip() or len(name) > 200:
        raise ConfigError(f"--name must be a model's name in the registry (1 to 200 characters). Received: {name!r}.")
    trained = load(run_path, device="cpu", runs_dir=runs_dir)
    run = trained.run
    sha = json.loads(run.model_file.read_text())["files"][run.weights_file.name]
    use_recorded_store(mlflow, run.path)
    client = mlflow.tracking.MlflowClient()
    try:
        versions = client.search_model_versions(f"name = '{name}'")
        same = [v for v in versions if (v.tags or {}).get("weights_sha256") == sha]
        if same:
            raise DeepworksError(f"'{name}' already holds these weights as version {same[0].version} (sha256 "
                                 f"{sha[:16]}...). Expected new weights for a new version; nothing was registered.")
        if tracked_run_id(run.path) is None:
            track_finished(run, trained.cfg, trained.results)
        run_id = tracked_run_id(run.path)
        if not versions:
            client.create_registered_model(name)
        source = f"{client.get_run(run_id).info.artifact_uri}/model"
        version = client.create_model_version(name, source, run_id=run_id,
                                              tags={"weights_sha256": sha, "deepworks.run": str(run.path)})
    except mlflow.exceptions.MlflowException as err:
        raise DeepworksError(f"MLflow refused: {str(err).splitlines()[0][:300]}. Expected a store with a registry "
                             f"(MLflow's default SQLite mlflow.db, or a database at $MLFLOW_TRACKING_URI).") from None
    return {"name": name, "version": int(version.version), "run_id": run_id, "weights_sha256": sha,
            "source": source, "tracking_uri": mlflow.get_tracking_uri()}
