"""--track mlflow and `deepworks register`: a run in MLflow's store, one MLflow run across an interruption and its
resume, with every epoch's metrics, the test metrics, the report, the card and the weights; and the registry, which
takes the same weights once."""

from __future__ import annotations

import json
import shutil

import pytest
from conftest import ctrl_c_at_step

import deepworks as dw
from deepworks.errors import DeepworksError

mlflow = pytest.importorskip("mlflow")


@pytest.fixture
def store(tmp_path, monkeypatch):
    """MLflow's store and artifacts in this test's own folder."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    return mlflow.tracking.MlflowClient()


def test_an_interrupted_then_resumed_run_is_one_mlflow_run_with_every_epoch_and_its_files(store, tmp_path,
                                                                                           monkeypatch):
    from deepworks.tasks.image import ImageClassification
    from deepworks.training.loop import Interrupted

    with ctrl_c_at_step(ImageClassification, 30), pytest.raises(Interrupted):  # in the third epoch (12 steps each)
        dw.train(name="tracked", epochs=4, track="mlflow", progress=False, baseline=False)
    run_id = json.loads(open("runs/tracked/mlflow.json").read())["run_id"]
    assert store.get_run(run_id).info.status == "KILLED"
    trained = dw.train(resume="runs/tracked", progress=False)
    assert json.loads(open("runs/tracked/mlflow.json").read())["run_id"] == run_id  # the same MLflow run goes on
    tracked = store.get_run(run_id)
    assert tracked.info.status == "FINISHED" and tracked.data.params["train.epochs"] == "4"
    assert [m.step for m in store.get_metric_history(run_id, "val_accuracy")] == [1, 2, 3, 4]
    assert tracked.data.metrics["test_accuracy"] == pytest.approx(trained.results["test"]["accuracy"])
    files = {a.path for a in store.list_artifacts(run_id, "model")} | {a.path for a in store.list_artifacts(run_id,
                                                                                                          "report")}
    assert {"model/model.safetensors", "model/model.json", "report/index.html"} <= files
    monkeypatch.delenv("MLFLOW_TRACKING_URI")  # registered from elsewhere: the run's own store is found
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")
    assert dw.register(tmp_path / "runs" / "tracked", "tracked")["run_id"] == run_id
    assert not (tmp_path / "elsewhere" / "mlflow.db").exists()


def test_register_adds_a_version_with_the_weights_sha256_and_takes_the_same_weights_once(store, use_runs, tmp_path):
    from deepworks.cli import main

    for name in ("img", "txt"):
        shutil.copytree(use_runs[name], tmp_path / "runs" / name)
    first = dw.register("runs/img", "digits")
    assert first["version"] == 1
    sha = json.loads(open("runs/img/model.json").read())["files"]["model.safetensors"]
    version = store.get_model_version("digits", "1")
    assert version.tags["weights_sha256"] == sha == first["weights_sha256"] and version.run_id == first["run_id"]
    with pytest.raises(DeepworksError, match="'digits' already holds these weights as version 1"):
        dw.register("runs/img", "digits")
    assert main(["register", "runs/txt", "--name", "digits", "--json"]) == 0  # other weights: version 2
    assert sorted(int(v.version) for v in store.search_model_versions("name = 'digits'")) == [1, 2]
