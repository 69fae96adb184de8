"""Every number that reaches a UI job, a trust tool or the designer is range-checked before any work starts, with
the command line's words; and a request still computing never keeps a stopped server alive (issue 27, W4)."""

from __future__ import annotations

import asyncio
import threading

import pytest

from conftest import ui_client
from deepworks.api import make_config
from deepworks.errors import ConfigError
from deepworks.ui.tools import off_loop


@pytest.fixture
def client(tmp_path):
    with ui_client(tmp_path / "runs") as c:
        yield c


@pytest.fixture
def fake_run(client):
    """A run folder the routes accept by name; loading it would fail, so a 400 here is from the checks before."""
    run = client.runs / "img"
    run.mkdir(parents=True)
    (run / "config.yaml").write_text("task: image\n")
    return "img"


@pytest.mark.parametrize("body, message", [
    ({"tool": "attack", "index": 0, "steps": 10 ** 12}, "Expected steps from 1 to 100 for attack from the page"),
    ({"tool": "explain", "steps": 0}, "Expected steps from 1 to 256 for explain"),
    ({"tool": "visualize", "steps": True}, "Expected steps from 1 to 512 for visualize"),
    ({"tool": "attack", "index": True}, "Expected index as a test image's number, 0 or more. Received: True"),
    ({"tool": "attack", "index": -1}, "Expected index as a test image's number"),
    ({"tool": "attack", "eps": 10 ** 400}, "Expected eps as a number from 0 to 1"),
    ({"tool": "attack", "eps": "0.1"}, "Expected eps as a number from 0 to 1"),
    ({"tool": "explain", "label": [3]}, "Expected label as a class name or number"),
    ({"tool": "attack", "method": {"x": 1}}, "Expected method as fgsm or pgd"),
])
def test_a_trust_request_s_numbers_are_checked_before_the_run_is_loaded(client, fake_run, body, message):
    answer = client.post(f"/api/runs/{fake_run}/trust", json=body)
    assert answer.status_code == 400 and message in answer.json()["error"], answer.text


def test_a_walk_s_seed_and_label_are_checked_too(client, fake_run):
    answer = client.post(f"/api/runs/{fake_run}/walk", json={"steps": 4, "seed": 2 ** 70})
    assert answer.status_code == 400 and "seed from 0 to 4294967295" in answer.json()["error"]
    answer = client.post(f"/api/runs/{fake_run}/walk", json={"steps": 4, "label": {"a": 1}})
    assert answer.status_code == 400 and "Expected label as a class name or number" in answer.json()["error"]


def test_a_ui_job_of_10_to_the_30_epochs_is_refused_with_the_command_line_s_message(client):
    answer = client.post("/api/jobs", json={"settings": {"data": "digits", "epochs": 10 ** 30}})
    assert answer.status_code == 400
    assert answer.json()["error"] == ("--epochs must be at most 100,000. Received: "
                                      "1,000,000,000,000,000,000,000,000,000,000.")
    answer = client.post("/api/jobs", json={"settings": {"data": "digits", "batch_size": 10 ** 12}})
    assert answer.status_code == 400 and "--batch-size must be at most 1,000,000,000" in answer.json()["error"]
    assert not client.app.state.jobs.procs


def test_a_torchrun_job_of_a_thousand_processes_is_refused_before_any_starts(client, monkeypatch):
    monkeypatch.setattr("os.cpu_count", lambda: 2)  # torchrun's processes all start on this machine
    answer = client.post("/api/jobs", json={"settings": {"data": "digits", "engine": "torchrun", "nproc": 1000}})
    assert answer.status_code == 400
    assert answer.json()["error"] == ("--nproc must be at most 8 (processes on this machine: 4 per CPU core here, at "
                                      "least 8). Received: 1000.")
    answer = client.post("/api/jobs", json={"settings": {"data": "digits", "engine": "ray", "nproc": 10 ** 6}})
    assert answer.status_code == 400 and "--nproc must be at most 1,024 (processes of the run in all)" in answer.text
    answer = client.post("/api/jobs", json={"settings": {"data": "digits", "engine": "torchrun", "max_restarts": 10 ** 6}})
    assert answer.status_code == 400 and "--max-restarts must be from 0 to 100" in answer.text
    assert not client.app.state.jobs.procs


def test_the_command_line_s_config_check_holds_the_same_bounds():
    with pytest.raises(ConfigError, match=r"--epochs must be at most 100,000\. Received: 1,000,000\."):
        make_config(epochs=10 ** 6).check()
    make_config(epochs=100_000, seed=2 ** 32 - 1).check()  # the largest values allowed pass


@pytest.mark.parametrize("body, message", [
    ({"input": [1, 10 ** 9, 10 ** 9], "layers": [{"type": "dense", "units": 4}]},
     "height and width from 1 to 4096 pixels (as --image-size)"),
    ({"input": [True, 28, 28], "layers": [{"type": "dense", "units": 4}]}, "Received: input [True, 28, 28]"),
    ({"input": [1, 28, 28], "classes": 10 ** 9, "layers": [{"type": "dense", "units": 4}]},
     "classes from 1 to 100,000"),
    ({"input": [3, 4096, 4096], "layers": [{"type": "dense", "units": 65536}]},
     "Expected a design of at most 200,000,000 parameters. Received: 3,298,"),
])
def test_the_designer_refuses_an_absurd_input_or_a_design_too_big_to_train(client, body, message):
    answer = client.post("/api/design", json=body)
    assert answer.status_code == 400 and message in answer.json()["error"], answer.text


def test_the_designer_names_the_card_that_makes_a_design_too_big(client):
    answer = client.post("/api/design", json={"input": [3, 1024, 1024], "layers": [
        {"type": "conv", "channels": 8, "kernel": 3}, {"type": "dense", "units": 4096}]})
    assert answer.status_code == 400 and "in card 2 (dense): make it narrower, or pool before it" in answer.json()["error"]


def test_work_still_computing_when_its_request_is_cancelled_never_holds_up_the_process_s_exit():
    """Uvicorn cancels the requests in flight at Ctrl-C; the thread pool's threads would then keep the process alive
    until their work ends (a trust request of 10**12 steps: for ever). off_loop's thread is a daemon: exit goes on."""
    started, release = threading.Event(), threading.Event()

    def endless():
        started.set()
        release.wait()

    async def request_then_ctrl_c():
        task = asyncio.ensure_future(off_loop(endless))
        await asyncio.get_running_loop().run_in_executor(None, started.wait)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(request_then_ctrl_c())
    worker = next(t for t in threading.enumerate() if t.name == "deepworks-ui-endless")
    assert worker.daemon and worker.is_alive()  # still computing, and the interpreter will not wait for it
    release.set()
    worker.join()


def test_work_answers_its_result_or_raises_its_error_in_the_request():
    def fails():
        raise ConfigError("Expected x. Received: y.")

    assert asyncio.run(off_loop(sum, [1, 2, 3])) == 6
    with pytest.raises(ConfigError, match="Received: y"):
        asyncio.run(off_loop(fails))


def test_after_ctrl_c_a_process_with_work_left_ends_at_once_and_cleanly(tmp_path):
    """Python's own finalisation under a torch op still running aborts ("terminate called ..."): the UI ends first."""
    import subprocess
    import sys

    script = tmp_path / "left.py"
    script.write_text(
        "import asyncio, threading\n"
        "from deepworks.ui.tools import exit_if_work_is_left, off_loop\n"
        "started = threading.Event()\n"
        "def endless():\n"
        "    started.set()\n"
        "    threading.Event().wait()\n"
        "async def main():\n"
        "    task = asyncio.ensure_future(off_loop(endless))\n"
        "    await asyncio.get_running_loop().run_in_executor(None, started.wait)\n"
        "    task.cancel()\n"
        "asyncio.run(main())\n"
        "print('stopped', flush=True)\n"
        "exit_if_work_is_left()\n"
        "print('finalising with work left')\n")
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and done.stdout == "stopped\n", done.stderr


@pytest.mark.parametrize("route", ["/api/jobs", "/api/data/preview", "/api/design", "/api/automl"])
def test_json_nested_100_000_deep_is_a_400_on_every_ui_route_not_a_500(client, route):
    answer = client.post(route, content=b"[" * 100_000 + b"]" * 100_000, headers={"content-type": "application/json"})
    assert answer.status_code == 400
    assert answer.json()["error"] == "Expected a JSON body nested at most 32 levels deep. Received: 100,000 levels."


def test_a_yaml_alias_bomb_pasted_into_the_designer_is_refused_before_it_expands(client):
    bomb = "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"l{i}: &l{i} [{', '.join([f'*{prev}'] * 9)}]\n" for i, prev in enumerate(["a"] + [f"l{k}" for k in range(1, 9)], 1))
    answer = client.post("/api/design", json={"input": [1, 28, 28], "yaml": bomb + "model:\n  layers: *l9\n"})
    assert answer.status_code == 400 and "more than 20 aliases (*name): refused" in answer.json()["error"]
    answer = client.post("/api/design", json={"input": [1, 28, 28], "yaml": "x" * 2_000_000})
    assert answer.status_code == 413 and "at most 1,000,000 characters of YAML" in answer.json()["error"]


def test_true_is_no_number_of_epochs(client):
    answer = client.post("/api/jobs", json={"settings": {"data": "digits", "epochs": True}})
    assert answer.status_code == 400 and "expects int. Received: True." in answer.json()["error"]
    assert not client.app.state.jobs.procs


def test_a_job_naming_another_runs_folder_is_told_where_the_ui_s_runs_go(client):
    answer = client.post("/api/jobs", json={"settings": {"data": "digits", "runs_dir": "/tmp/elsewhere"}})
    assert answer.status_code == 400
    assert answer.json()["error"] == (f"Expected no runs_dir: this UI's runs go to {client.runs} (deepworks ui "
                                      f"--runs-dir). Received: '/tmp/elsewhere'.")
    assert not client.app.state.jobs.procs
