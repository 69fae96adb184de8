"""The contract every registered task passes, parametrised over the registry: a new task gets these tests by
registering, and its own test file covers only what is its own. Each task trains its card's tiny run (cards.py
`tiny`) once per test run; the toy task of test_contract.py, registered here as a user would, passes the same.

    trains and learns        the tiny run's training loss falls, results and report are written
    resumes exactly          Ctrl-C mid-run, then --resume: bit-identical weights
    is evaluated again       dw.evaluate gives the test metrics training gave
    exports                  every graph its face declares, checked against torch in ONNX Runtime
    serves                   every route answers; malformed requests get a 4xx with a message, never a 5xx
    is tried in the web UI   the data page previews its data, Try serves the run and answers its example
    refuses bad input        missing, empty and corrupt data, and inputs of the wrong kind: one message, no traceback
"""

from __future__ import annotations

import json

import pytest
from conftest import assert_same_weights, ctrl_c_at_step, made_once, weights
from fastapi.testclient import TestClient

import deepworks as dw
from deepworks.cards import BUILTIN_CARDS
from deepworks.errors import DeepworksError
from deepworks.registry import get_card, get_task
from deepworks.serving import Limits, build_app
from deepworks.training.loop import Interrupted
from test_contract import SPEC as TOY

TASKS = [*BUILTIN_CARDS, TOY]
FALLS_BY = 0.95  # the tiny run's last training loss (its learning_curve) is at most this share of its first


def tiny(task: str) -> dict:
    return {"task": task, "progress": False, **get_card(task).tiny}


@pytest.fixture(scope="module", autouse=True)
def quick_fid():
    """A GAN's FID classifier is beside the point of the contract: a few steps of it (as test_trust.py does)."""
    import deepworks.metrics.fid as fid

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(fid, "FEATURE_STEPS", 5)
        yield


@pytest.fixture(scope="module")
def runs(tmp_path_factory, quick_fid):
    """{task: its tiny run's folder}, trained once per test run (made_once shares them across test processes)."""
    def make(root):
        for task in TASKS:
            dw.train(runs_dir=str(root), name=safe(task), **tiny(task))

    folder = made_once(tmp_path_factory, "task-contract", make)
    return {task: folder / safe(task) for task in TASKS}


def safe(task: str) -> str:
    return task.replace(":", "-")


def example_body(trained) -> dict:
    """The face's own small request, as a client sends it over HTTP (arrays as nested lists)."""
    inputs, options = trained.face.example_request()
    as_json = [x.tolist() if hasattr(x, "tolist") else x for x in inputs] if isinstance(inputs, list) else inputs
    return {"inputs": as_json.tolist() if hasattr(as_json, "tolist") else as_json, **options}


@pytest.mark.parametrize("task", TASKS)
def test_the_tiny_run_trains_and_learns(runs, task):
    trained = dw.load(runs[task])
    cls = get_task(task)
    curve = [r[cls.learning_curve] for r in trained.run.metrics() if r.get("kind") == "epoch"]
    assert len(curve) == tiny(task)["epochs"] >= 2
    if cls.monitor_mode(cls.learning_curve) == "max":
        assert curve[-1] * FALLS_BY >= curve[0], curve
    else:
        assert curve[-1] <= FALLS_BY * curve[0], curve
    assert trained.results["task"] == get_task(task).name and trained.results["test"]
    assert (trained.run.report_dir / "index.html").is_file()
    card = get_card(task)  # the card and the face say the same of the task: its runs' name and its verb
    assert trained.face.kind == card.kind and trained.face.verb in card.verbs


@pytest.mark.parametrize("task", TASKS)
def test_ctrl_c_then_resume_gives_the_same_weights(runs, task):
    with ctrl_c_at_step(get_task(task), 3), pytest.raises(Interrupted):
        dw.train(name="cut", **tiny(task))
    resumed = dw.train(resume="runs/cut", progress=False)
    assert_same_weights(weights(runs[task]), weights(resumed.run.path))


@pytest.mark.parametrize("task", TASKS)
def test_evaluate_gives_the_test_metrics_training_gave(runs, task):
    trained = dw.load(runs[task])
    again = dw.evaluate(trained.run.path)
    for key, value in trained.results["test"].items():
        if isinstance(value, float) and key in again:
            assert again[key] == pytest.approx(value, rel=1e-4, abs=1e-6), key


@pytest.mark.parametrize("task", TASKS)
def test_the_export_answers_in_onnx_runtime_as_torch_does(runs, task, tmp_path):
    pytest.importorskip("onnxruntime")
    from safetensors import safe_open

    out, trained = tmp_path / "export", dw.load(runs[task])
    card = dw.export(runs[task], out=str(out))  # each graph is checked against torch as it is written
    assert card["task"] == task and card["use"] == trained.face.verb
    declared = trained.face.export_graphs(trained.model)
    assert [g["name"] for g in card["graphs"]] == [g.name for g in declared]
    for g, graph in zip(card["graphs"], declared):  # checked at another batch size than it was traced with
        assert g["verified"]["batch"] == len(graph.check[0]) != len(graph.example[0])
        assert (out / g["file"]).is_file() and g["exporter"] in ("dynamo", "legacy")
        assert g["max_abs_diff"] <= (1.0 if g["outputs"][0]["dtype"] == "uint8" else 1e-4)
    saved = json.loads((out / "model.json").read_text())
    assert saved["task"] == card["task"] and saved["weights"]["sha256"] == card["weights"]["sha256"]
    with safe_open(out / "weights.safetensors", framework="pt") as f:
        inside = json.loads(f.metadata()["deepworks"])
    assert inside["weights_sha256"] == card["weights"]["sha256"] and inside["task"] == card["task"]
    assert "onnxruntime" in (out / "README.md").read_text()


MALFORMED = [b"", b"{", b"[]", b"null", b'"text"', b"123", b'{"inputs": {"a": {"b": [1, [2, [3]]]}}}',
             b'{"inputs": [null, true, 1e308, -1]}', b'{"inputs": "x", "seed": "many"}', b'{"top_k": -5, "n": 1e9}',
             b'{"inputs": [[[[[[[]]]]]]]}', b'{"unknown_option": 1}', "{\"inputs\": \"\u00e9\u0000\"}".encode()]


@pytest.mark.parametrize("task", TASKS)
def test_every_route_answers_and_no_malformed_request_fails_the_server(runs, task):
    trained = dw.load(runs[task])
    verb = trained.face.verb
    app = build_app([str(runs[task])], limits=Limits(max_items=16, max_length=50, timeout_s=20))
    with TestClient(app, raise_server_exceptions=False) as client:
        name = runs[task].name
        assert name in json.dumps(client.get("/v1/models").json())
        assert client.get(f"/v1/models/{name}").json()["use"] == verb
        r = client.post(f"/v1/models/{name}/{verb}", json=example_body(trained))
        assert r.status_code == 200 and r.json()["outputs"], r.text
        assert client.get(f"/v2/models/{name}").status_code == 200
        for body in MALFORMED:
            for route in (f"/v1/models/{name}/{verb}", f"/v2/models/{name}/infer"):
                r = client.post(route, content=body, headers={"Content-Type": "application/json"})
                assert 400 <= r.status_code < 500 or r.status_code == 200, (route, body, r.status_code, r.text)
                if r.status_code >= 400:
                    assert r.json()["error"], (route, body)


@pytest.mark.parametrize("task", TASKS)
def test_the_web_ui_previews_the_data_and_tries_the_run(runs, task, tmp_path):
    from deepworks.ui import build_ui_app

    if task not in BUILTIN_CARDS:
        pytest.skip("the web UI runs the built-in tasks and those registered in its own process, not module:Class")
    app = build_ui_app(runs[task].parent, data_roots=[tmp_path], insecure=True)
    with TestClient(app, base_url="http://127.0.0.1:8080") as client:
        preview = client.post("/api/data/preview", json={"task": task, "data": tiny(task)["data"]})
        assert preview.status_code == 200 and sum(preview.json()["splits"].values()) > 0, preview.text
        card = client.post(f"/api/runs/{runs[task].name}/serve").json()
        r = client.post(card["route"], json=example_body(dw.load(runs[task])))
        assert r.status_code == 200 and r.json()["outputs"], r.text
    app.state.jobs.close()


@pytest.mark.parametrize("task", TASKS)
def test_missing_empty_and_corrupt_data_are_refused_with_a_message(task, tmp_path, capsys):
    if task not in BUILTIN_CARDS:
        pytest.skip("the toy task makes its data itself: there is no data of its to get wrong")
    (tmp_path / "empty").mkdir()
    corrupt = tmp_path / "corrupt.csv"
    corrupt.write_bytes(b"\x00\xff\xfe garbage \x00" * 64)
    for data in (tmp_path / "missing", tmp_path / "empty", corrupt):
        with pytest.raises(DeepworksError) as err:
            dw.train(**{**tiny(task), "data": str(data)})
        assert data.name in str(err.value), str(err.value)
    from deepworks.cli import main

    code = main(["train", "--task", task, "--data", str(tmp_path / "missing"), "--quiet"])  # what the command runs
    err = capsys.readouterr().err
    assert code != 0 and "Traceback" not in err and err.startswith("error") and "missing" in err, err


@pytest.mark.parametrize("task", TASKS)
def test_inputs_of_the_wrong_kind_are_refused_with_a_message(runs, task):
    trained = dw.load(runs[task])
    for wrong in ([{"a": 1}], object(), b"\x00\x01 not a file of any kind", [[[[1.5]]]] * 3):
        try:
            trained(wrong)
        except DeepworksError as err:
            assert str(err) and "Traceback" not in str(err)
        # a task whose face takes no inputs (a GAN's noise) may answer: what it must never do is fail otherwise
