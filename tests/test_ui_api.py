"""The web UI's REST API without a browser: the jobs' states as the worker processes leave them, and bad requests."""

from __future__ import annotations

import base64
import io
import os
import signal

import numpy as np
import pytest
import scipy.io.wavfile
from fastapi.testclient import TestClient

from conftest import UI_ADDRESS as LOCAL, ui_client
from deepworks.errors import ConfigError
from deepworks.ui import build_ui_app

LENET_CARDS = [{"type": "conv", "channels": 6, "kernel": 5, "padding": 2}, {"type": "activation"}, {"type": "pool"},
               {"type": "conv", "channels": 16, "kernel": 5}, {"type": "activation"}, {"type": "pool"},
               {"type": "dense", "units": 120}, {"type": "activation"}, {"type": "dense", "units": 84},
               {"type": "activation"}]


@pytest.fixture
def client(tmp_path):
    """The UI's API as a script uses it: its launch's token in the header, its data in tmp_path."""
    with ui_client(tmp_path / "runs", data_roots=[tmp_path]) as c:
        yield c


def test_the_api_is_documented_and_the_settings_form_comes_from_the_config(client):
    paths = client.get("/openapi.json").json()["paths"]
    assert {"/api/jobs", "/api/jobs/{job_id}/events", "/api/design", "/api/runs/{name}/export"} <= set(paths)
    fields = {f["key"]: f for f in client.get("/api/settings", params={"task": "image"}).json()["fields"]}
    assert fields["train.optimizer"]["choices"][:2] == ["sgd", "momentum"] and fields["train.epochs"]["main"]
    assert "Passes over the training data" in fields["train.epochs"]["help"]
    assert client.get("/api/settings", params={"task": "sound"}).json()["error"].startswith("Expected a task")


def test_the_designer_api_gives_lenet_s_shapes_and_parameters_and_its_yaml_loads_back(client):
    answer = client.post("/api/design", json={"layers": LENET_CARDS, "input": [1, 28, 28], "classes": 10}).json()
    assert answer["parameters"] == 61_706 and answer["plan"][0]["output"] == [6, 28, 28]
    again = client.post("/api/design", json={"yaml": answer["yaml"], "input": [1, 28, 28], "classes": 10}).json()
    assert again["yaml"] == answer["yaml"] and again["layers"] == answer["layers"]
    bad = client.post("/api/design", json={"layers": [{"type": "convolution2"}], "input": [1, 28, 28], "classes": 10})
    assert bad.status_code == 400 and "unknown type 'convolution2'" in bad.json()["error"]
    assert "does not parse" in client.post("/api/design", json={"yaml": "model: [", "classes": 10}).json()["error"]


def test_a_worker_killed_mid_run_is_reported_failed_at_once_never_running(client):
    started = client.post("/api/jobs", json={"settings": {"epochs": 500, "audit": False, "baseline": False}}).json()
    job = client.app.state.jobs
    proc = job.procs[started["id"]]
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    status = client.get(f"/api/jobs/{started['id']}").json()
    assert status["state"] == "failed" and "ended without reporting how" in status["message"]
    events = client.get(f"/api/jobs/{started['id']}/events").text  # the stream ends, it does not wait on the dead
    assert '"state": "failed"' in events and events.rstrip().endswith("data: {}")


@pytest.mark.parametrize("method,path,status,message", [
    ("get", "/api/jobs/.hidden", 404, "Expected a job of this server"),
    ("get", "/api/jobs/..%2F..%2Fetc", 404, ""),  # a slash never reaches a route
    ("get", "/api/runs/..%2Fsecret/export", 404, ""),
    ("get", "/api/runs/..secret/export", 404, "Expected the name of a run"),
    ("post", "/api/runs/nope/serve", 404, "Expected the name of a run"),
    ("post", "/api/jobs/none/resume", 404, "Expected a job of this server"),
])
def test_a_client_names_jobs_and_runs_never_paths(client, method, path, status, message):
    answer = getattr(client, method)(path)
    assert answer.status_code == status and message in answer.text


def test_bad_job_settings_are_refused_with_the_command_line_s_message_before_any_process(client):
    answer = client.post("/api/jobs", json={"settings": {"model": "lenett"}})
    assert answer.status_code == 400 and "must be one of mlp, lenet" in answer.json()["error"]
    assert client.post("/api/jobs", content=b"[1]", headers={"content-type": "application/json"}).status_code == 400
    assert not client.app.state.jobs.procs


def test_an_upload_is_kept_inside_its_folder_and_a_zip_pointing_outside_is_refused(client, tmp_path):
    import io
    import zipfile

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as z:
        z.writestr("../../escaped.txt", "x")
    answer = client.post("/api/data/upload", files={"file": ("evil.zip", buffer.getvalue())})
    assert answer.status_code == 400 and "points outside" in answer.json()["error"]
    assert not (client.runs / ".ui" / "escaped.txt").exists() and not (client.runs.parent / "escaped.txt").exists()
    bad = client.post("/api/data/upload", files={"file": ("model.pkl", b"\x80\x04")})
    assert bad.status_code == 400 and "Received: 'model.pkl'" in bad.json()["error"]
    text = client.post("/api/data/upload", files={"file": ("poems.txt", b"roses are red\n" * 50)}).json()["data"]
    assert text.startswith(str(client.runs / ".ui" / "uploads")) and open(text).read().startswith("roses")


def test_the_data_page_previews_each_task_its_own_way(client, tmp_path):
    poem = tmp_path / "poem.txt"
    poem.write_text("the quick brown fox jumps over the lazy dog. " * 300)
    text = client.post("/api/data/preview", json={"task": "text", "data": str(poem)}).json()
    assert text["splits"]["train"] + text["splits"]["val"] == len(poem.read_text())
    assert text["vocabulary"] == len(set(poem.read_text())) and "the lazy dog" in text["excerpt"]
    pairs = tmp_path / "pairs.tsv"
    pairs.write_text("".join(f"word {i} here\tmot {i} ici\n" for i in range(200)))
    translate = client.post("/api/data/preview", json={"task": "translate", "data": str(pairs)}).json()
    assert len(translate["pairs"]) == 12 and translate["pairs"][0]["source"].startswith("word ")
    assert translate["pairs"][0]["target"].startswith("mot ") and translate["source_vocabulary"] > 3
    missing = client.post("/api/data/preview", json={"task": "text", "data": str(tmp_path / "none.txt")})
    assert missing.status_code == 400 and "none.txt" in missing.json()["error"]
    boxes = client.post("/api/data/preview", json={"task": "detect", "data": "shapes:40"}).json()
    assert boxes["classes"] == ["circle", "square", "triangle"] and boxes["splits"] == {"train": 40, "val": 20, "test": 20}
    assert len(boxes["examples"][0]["images"]) == 12  # training images with their boxes drawn
    wrong = client.post("/api/data/preview", json={"task": "detect", "data": "shapes:x"})
    assert wrong.status_code == 400 and "Expected shapes, or shapes:N with N from 20" in wrong.json()["error"]
    sounds = client.post("/api/data/preview", json={"task": "audio"}).json()
    assert sounds["sound_classes"][0] == "low tone" and sounds["rate"] == 8000 and sounds["seconds"] == 0.5
    first = sounds["sound_examples"][0]["sounds"][0]
    rate, samples = scipy.io.wavfile.read(io.BytesIO(base64.b64decode(first["wav"])))
    assert rate == 8000 and len(samples) == 4000 and samples.dtype == np.int16
    assert base64.b64decode(first["spectrogram"]).startswith(b"\x89PNG")


def test_a_walk_asks_for_a_sensible_number_of_steps_before_loading_anything(client):
    run = client.runs / "fake"
    run.mkdir(parents=True)
    (run / "config.yaml").write_text("task: gan\n")
    answer = client.post("/api/runs/fake/walk", json={"steps": 1000})
    assert answer.status_code == 400 and "Expected steps from 2 to 32" in answer.json()["error"]


def test_with_a_token_the_browser_logs_in_once_by_the_printed_link_and_then_carries_a_cookie(tmp_path):
    app = build_ui_app(tmp_path / "runs", token="s3cret-token")
    with TestClient(app, base_url=LOCAL) as c:
        assert c.get("/api/info").status_code == 401
        assert c.get("/?token=wrong-token", follow_redirects=False).status_code == 401
        login = c.get("/?token=s3cret-token", follow_redirects=False)
        assert login.status_code == 303 and login.headers["location"] == "/"
        assert "httponly" in login.headers["set-cookie"].lower()
        assert c.get("/api/info").status_code == 200  # the cookie, kept by the client as a browser keeps it
        c.cookies.clear()  # then a wrong cookie in its place (per-request cookies merge with the jar in httpx2,
        c.cookies.set("deepworks_token", "wrong")  # which starlette's TestClient takes where it is installed)
        assert c.get("/api/info").status_code == 401
    with TestClient(app, base_url=LOCAL) as other:
        assert other.get("/api/info", headers={"Authorization": "Bearer s3cret-token"}).status_code == 200


def test_a_browser_without_the_token_gets_a_login_page_and_scripts_get_json(tmp_path):
    app = build_ui_app(tmp_path / "runs", token="s3cret-token")
    page = {"Accept": "text/html,application/xhtml+xml"}
    with TestClient(app, base_url=LOCAL) as c:
        first = c.get("/runs/x/try", headers=page)
        assert first.status_code == 401 and first.headers["content-type"].startswith("text/html")
        assert "needs its login link" in first.text and 'name="token"' in first.text and "That token" not in first.text
        wrong = c.get("/?token=wrong-token", headers=page)
        assert wrong.status_code == 401 and "That token is not this server's" in wrong.text
        assert c.get("/api/info", headers=page).json()["error"].endswith("Received: no token.")  # the API: JSON
        assert c.get("/", headers={"Accept": "application/json"}).headers["content-type"] == "application/json"
        assert c.get("/runs/x/try?token=s3cret-token", headers=page, follow_redirects=False).headers["location"] == \
            "/runs/x/try"  # the login link of any page logs in and stays there


def test_the_leaderboard_reader_never_writes_the_study_a_search_is_creating(tmp_path):
    """A search's study.db exists before its tables do; a reader that created them raced the search, which then
    failed with 'table ... already exists'."""
    import sqlite3

    from deepworks.experiments.board import read_leaderboard

    db = tmp_path / "study.db"
    sqlite3.connect(db).close()  # the file, as the search's first connection leaves it
    assert read_leaderboard(db) is None
    assert sqlite3.connect(db).execute("SELECT count(*) FROM sqlite_master").fetchone() == (0,)


def test_the_leaderboard_waits_out_a_study_half_written_and_reads_it_once_it_is(tmp_path):
    """Between the search's tables and its first rows, Optuna's reader fails with its own error (it would insert the
    schema's version row); that once broke the page's event stream for good. The failed read is not kept either."""
    import sqlite3

    import optuna

    from deepworks.experiments.board import search_leaderboard

    db = tmp_path / "study.db"
    study = optuna.create_study(study_name="deepworks", storage=f"sqlite:///{db}", direction="maximize")
    study.optimize(lambda trial: trial.suggest_float("x", 0, 1), n_trials=2)
    with sqlite3.connect(db) as con:
        rows = con.execute("SELECT * FROM version_info").fetchall()
        con.execute("DELETE FROM version_info")
    assert search_leaderboard(tmp_path) == []
    with sqlite3.connect(db) as con:
        con.execute(f"INSERT INTO version_info VALUES ({','.join('?' * len(rows[0]))})", rows[0])
    board = search_leaderboard(tmp_path)
    assert [row["state"] for row in board] == ["complete", "complete"]


def test_a_job_that_leaves_each_speaker_out_finishes_with_the_mean_and_the_worst(tmp_path):
    import json

    from deepworks.ui import worker
    from test_audio import write_speakers_csv

    csv = write_speakers_csv(tmp_path, speakers=("ann", "bob"), per_class=2)
    job = tmp_path / "job"
    job.mkdir()
    (job / "job.json").write_text(json.dumps({"settings": {
        "task": "audio", "data": str(csv), "split": "speaker", "epochs": 1, "runs_dir": str(tmp_path / "runs")}}))
    assert worker.main(str(job)) == 0
    done = json.loads((job / "outcome.json").read_text())
    assert done["state"] == "finished" and "Each speaker was left out in turn" in done["message"]
    assert set(done["results"]) == {"mean accuracy", "worst accuracy"} and done["run"].endswith("fold-bob")


def test_the_designer_and_the_job_share_one_image_size_and_a_design_that_does_not_fit_never_starts(client):
    """The designer builds on the size the Data page shows (28 for digits, stored as 8x8), the Model page may change
    it, and a job trains at the size its design was checked at; a design that does not fit is refused at once."""
    shown = client.post("/api/data/preview", json={"task": "image", "data": "digits"}).json()["image_size"]
    lenet = client.post("/api/design", json={"layers": LENET_CARDS, "task": "image", "data": "digits"}).json()
    assert lenet["input"] == [1, shown, shown] == [1, 28, 28] and lenet["parameters"] == 61_706
    small = client.post("/api/design", json={"layers": LENET_CARDS, "data": "digits", "image_size": 8})
    assert small.status_code == 400 and "Card 4 (conv)" in small.json()["error"]
    huge = client.post("/api/design", json={"layers": LENET_CARDS, "data": "digits", "image_size": 10**9})
    assert huge.status_code == 400 and "Expected an image size from 1 to" in huge.json()["error"]
    refused = client.post("/api/jobs", json={"settings": {"data": "digits", "model": "layers", "image_size": 8,
                                                          "model.layers": LENET_CARDS}})
    assert refused.status_code == 400 and "Card 4 (conv)" in refused.json()["error"]
    small_lenet = client.post("/api/jobs", json={"settings": {"data": "digits", "model": "lenet", "image_size": 8}})
    assert small_lenet.status_code == 400 and "The lenet model needs images of at least 28 px" in small_lenet.text
    assert not client.app.state.jobs.procs  # refused before any process started
    started = client.post("/api/jobs", json={"settings": {"data": "digits", "model": "layers", "epochs": 1,
                                                          "model.layers": LENET_CARDS}}).json()["id"]
    jobs = client.app.state.jobs
    jobs.stop(started)
    jobs.procs[started].wait()
    assert client.get(f"/api/jobs/{started}").json()["settings"]["data.image_size"] == 28  # as designed


def test_stop_while_starting_then_resume_starts_the_same_settings_again(client):
    """Stopped before its first checkpoint, a job has nothing to continue from: it says so, and Resume starts the
    same settings again (it once said 'the state is saved' and then refused to resume, 409)."""
    settings = {"data": "digits", "epochs": 500, "audit": False, "baseline": False}
    jobs = client.app.state.jobs
    first = client.post("/api/jobs", json={"settings": settings}).json()["id"]
    client.post(f"/api/jobs/{first}/stop")  # the worker is still starting: nothing is saved yet
    jobs.procs[first].wait()
    status = client.get(f"/api/jobs/{first}").json()
    assert status["state"] == "stopped" and "nothing was saved" in status["message"]
    assert "Resume starts the same settings again" in status["message"]
    again = client.post(f"/api/jobs/{first}/resume")
    assert again.status_code == 200, again.text
    second = again.json()["id"]
    client.post(f"/api/jobs/{second}/stop")
    jobs.procs[second].wait()
    assert client.get(f"/api/jobs/{second}").json()["settings"] == status["settings"]
    assert [p.name for p in client.runs.iterdir()] == [".ui"]  # no empty run folders


@pytest.mark.parametrize("error,state,said", [
    (KeyboardInterrupt, "stopped", "nothing was saved"),
    (ConfigError("The card does not fit."), "failed", "The card does not fit. Its run folder digits-smallcnn was removed"),
])
def test_a_job_that_ends_before_its_first_checkpoint_leaves_no_empty_run_folder(tmp_path, monkeypatch, error, state,
                                                                                   said):
    """Stopped or failed after its run folder was made but before an epoch finished: the folder, which holds nothing
    to keep, is removed (it was listed as 'no epoch finished'); runs made before the job are never touched."""
    import json

    from deepworks.ui import worker

    def ends(self, trainer):
        raise error

    monkeypatch.setattr(worker.ProgressFeed, "on_epoch_start", ends)
    runs = tmp_path / "runs"
    older = runs / "older"
    older.mkdir(parents=True)
    (older / "config.yaml").write_text("task: image\n")  # a run from before, with no epoch either: not this job's
    job = tmp_path / "job"
    job.mkdir()
    (job / "job.json").write_text(json.dumps({"settings": {
        "data": "digits", "epochs": 1, "audit": False, "baseline": False, "runs_dir": str(runs)}}))
    worker.main(str(job))
    done = json.loads((job / "outcome.json").read_text())
    assert done["state"] == state and said in done["message"] and done["run"] is None
    assert [p.name for p in runs.iterdir()] == ["older"]


def progress_of(client, job_id: str) -> dict:
    """The job's status once rank 0 has reported progress (or its process has ended), waiting on the process."""
    import subprocess

    proc = client.app.state.jobs.procs[job_id]
    while True:
        status = client.get(f"/api/jobs/{job_id}").json()
        if status["progress"] or proc.poll() is not None:
            return status
        try:
            proc.wait(timeout=0.2)
        except subprocess.TimeoutExpired:
            pass


def test_a_torchrun_job_reports_from_rank_0_and_its_stop_and_resume_reach_its_workers(client):
    """The UI's progress callback cannot run in torchrun's worker processes (every such job once failed with a
    message about callbacks=): rank 0 writes the job's progress.json itself. Stop is SIGINT to the job's process,
    the torchrun launcher: the workers stop with the state saved (it was ignored, and training went on); Resume goes
    on in the same run, on the same engine. (One worker process is enough to be out of the job's reach.)"""
    settings = {"data": "digits", "model": "mlp", "epochs": 500, "audit": False, "baseline": False,
                "engine": "torchrun", "nproc": 1}
    jobs = client.app.state.jobs
    first = client.post("/api/jobs", json={"settings": settings}).json()["id"]
    running = progress_of(client, first)
    assert running["state"] == "running", running["message"]
    assert running["progress"]["epochs"] == 500 and running["progress"]["run"].endswith("digits-mlp")
    jobs.stop(first)
    jobs.procs[first].wait()
    stopped = client.get(f"/api/jobs/{first}").json()
    assert stopped["state"] == "stopped", stopped["message"]
    assert stopped["message"] == f"Stopped; the state is saved in {stopped['run']}. Resume continues from it."
    second = client.post(f"/api/jobs/{first}/resume").json()["id"]
    resumed = progress_of(client, second)
    assert resumed["state"] == "running" and resumed["progress"]["run"] == stopped["run"], resumed["message"]
    jobs.stop(second)
    jobs.procs[second].wait()
    assert client.get(f"/api/jobs/{second}").json()["state"] == "stopped"


def test_the_runs_list_marks_a_run_with_nothing_in_it_empty(client):
    """A run folder left with no finished epoch and no checkpoint (by a run stopped elsewhere) is marked empty; one
    stopped in its first epoch keeps its checkpoint and is not."""
    for name in ("nothing", "first-epoch"):
        (client.runs / name).mkdir(parents=True)
        (client.runs / name / "config.yaml").write_text("task: image\n")
    (client.runs / "first-epoch" / "checkpoint.pt").write_bytes(b"saved")
    rows = {r["name"]: r for r in client.get("/api/runs").json()["runs"]}
    assert rows["nothing"]["status"] == "no epoch finished" and rows["nothing"]["empty"]
    assert rows["first-epoch"]["status"] == "no epoch finished" and not rows["first-epoch"]["empty"]


def test_a_worker_gone_after_stop_without_a_word_is_stopped_and_resumes_from_its_checkpoint(tmp_path):
    """A second Stop can end a worker while it writes its outcome: the job is still 'stopped' (never 'failed'), and
    says the state is saved when its run has a checkpoint, and Resume continues that run."""
    import json

    from deepworks.ui.jobs import Jobs, resumable

    run = tmp_path / "runs" / "digits-lenet"
    run.mkdir(parents=True)
    (run / "checkpoint.pt").write_bytes(b"saved")
    folder = tmp_path / "runs" / ".ui" / "jobs" / "20261206-000000-abcdef"
    folder.mkdir(parents=True)
    (folder / "job.json").write_text(json.dumps({"settings": {"data": "digits"}}))
    (folder / "progress.json").write_text(json.dumps({"run": str(run), "epoch": 3}))
    (folder / "stop-asked").write_text("1")  # what Stop leaves; no pid: the worker is gone
    status = Jobs(tmp_path / "runs").status(folder.name)
    assert status["state"] == "stopped" and status["message"] == (f"Stopped; the state is saved in {run}. Resume "
                                                                   f"continues from it.")
    assert resumable(status) == "checkpoint"


def test_the_settings_form_of_a_task_has_only_the_settings_it_takes(client):
    keys = {task: {f["key"] for f in client.get("/api/settings", params={"task": task}).json()["fields"]}
            for task in ("audio", "translate", "gan", "image")}
    assert "data.split" in keys["audio"] and "eval.beam" not in keys["audio"]
    assert "eval.beam" in keys["translate"] and "model.latent_size" not in keys["translate"]
    assert "model.latent_size" in keys["gan"] and "train.adversarial" not in keys["gan"]
    assert "train.adversarial" in keys["image"] and "data.split" not in keys["image"]
    assert all({"train.epochs", "train.lr", "seed"} <= form for form in keys.values())


def test_the_docs_are_served_at_docs_behind_the_token_and_nothing_outside_their_folder(tmp_path, monkeypatch):
    site = tmp_path / "site"
    (site / "guides").mkdir(parents=True)
    (site / "index.html").write_text("<h1>deepworks docs</h1>")
    (site / "guides" / "images.html").write_text("the images guide")
    (tmp_path / "secret.txt").write_text("not for the browser")
    monkeypatch.setattr("deepworks.ui.docs_site.DOCS", site)
    app = build_ui_app(tmp_path / "runs", token="s3cret-token")
    auth = {"Authorization": "Bearer s3cret-token"}
    with TestClient(app, base_url=LOCAL) as c:
        index = c.get("/docs/", headers=auth)
        assert index.status_code == 200 and index.text == "<h1>deepworks docs</h1>"
        assert c.get("/docs", headers=auth).text == index.text  # redirected to /docs/
        assert c.get("/docs/guides/images.html", headers=auth).text == "the images guide"
        assert c.get("/docs/", headers={"Accept": "application/json"}).status_code == 401  # the same token
        assert c.get("/docs/", headers={**auth, "Host": "attacker.example"}).status_code == 403  # the same Host check
        for path in ("/docs/..%2Fsecret.txt", "/docs/%2e%2e/secret.txt", "/docs/%2E%2E%2Fsecret.txt",
                     "/docs/..%2F..%2F..%2F..%2F..%2F..%2Fetc%2Fpasswd", "/docs/%2e%2e%2f%2e%2e%2f%2e%2e%2fetc/passwd",
                     "/docs/..%5Csecret.txt", "/docs//etc/passwd"):
            answer = c.get(path, headers=auth)
            assert answer.status_code == 404 and "not for the browser" not in answer.text, path
            assert "root:" not in answer.text, path
        for path in ("/docs/../secret.txt", "/docs/../../etc/passwd"):  # the client resolves these before sending
            answer = c.get(path, headers=auth)
            assert "not for the browser" not in answer.text and "root:" not in answer.text, path
    app.state.jobs.close()
    monkeypatch.setattr("deepworks.ui.docs_site.DOCS", tmp_path / "not-built")
    app = build_ui_app(tmp_path / "runs", insecure=True)
    with TestClient(app, base_url=LOCAL) as c:
        answer = c.get("/docs/guides/images.html")
        assert answer.status_code == 503 and "mkdocs build" in answer.text
    app.state.jobs.close()


def test_the_page_s_files_and_answers_go_out_gzipped_to_a_browser_that_asks(client):
    info = client.get("/api/info", headers={"Accept-Encoding": "gzip"})
    assert info.headers["content-encoding"] == "gzip" and info.json()["tasks"]  # httpx decodes it
    assert "content-encoding" not in client.get("/api/info", headers={"Accept-Encoding": "identity"}).headers


def test_a_worker_takes_the_page_s_stop_even_where_the_server_was_started_ignoring_ctrl_c(tmp_path):
    """A server started as a background job of a script (or under nohup) has SIGINT ignored, and its workers inherit
    that: the page's Stop (a SIGINT) was then lost outside a training loop's own handler."""
    import signal
    import subprocess
    import sys

    code = ("import signal, deepworks.ui.worker as w\ntry:\n    w.main(r'%s')\nexcept FileNotFoundError:\n    pass\n"
            "print(signal.getsignal(signal.SIGINT) is w.stop_asked)" % (tmp_path / "no-job"))
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN))
    assert done.stdout.strip() == "True", done.stderr
