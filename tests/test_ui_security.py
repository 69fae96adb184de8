"""The web UI is the user's own even from the pages their browser has open: a token per launch, its Host, its own
Origin, JSON as JSON, and no path outside the folders the user chose (issue 27, W3)."""

from __future__ import annotations

import sys

import pytest
from fastapi.testclient import TestClient

from deepworks.ui import build_ui_app

LOCAL = "http://127.0.0.1:8080"


@pytest.fixture
def app(tmp_path):
    app = build_ui_app(tmp_path / "runs", port=8080)
    yield app
    app.state.jobs.close()


@pytest.fixture
def client(app):
    with TestClient(app, base_url=LOCAL, headers={"Authorization": f"Bearer {app.state.token}"}) as c:
        yield c


def test_by_default_a_launch_has_its_own_token_and_a_request_without_it_is_refused(app):
    with TestClient(app, base_url=LOCAL) as c:
        refused = c.get("/api/info")
        assert refused.status_code == 401 and "Received: no token" in refused.json()["error"]
    assert len(app.state.token) >= 24 and build_ui_app(app.state.jobs.runs_dir).state.token != app.state.token


def test_the_printed_login_link_sets_the_cookie_the_page_then_carries(app):
    with TestClient(app, base_url=LOCAL) as c:
        login = c.get(f"/?token={app.state.token}", follow_redirects=False)
        assert login.status_code == 303 and login.headers["location"] == "/"
        cookie = login.headers["set-cookie"].lower()
        assert "httponly" in cookie and "samesite=strict" in cookie
        assert c.get("/api/info").status_code == 200


class NoServer:
    """Stands in for serving.net.make_server: keeps what the UI would serve, and serves nothing."""

    def __init__(self, monkeypatch):
        from deepworks.serving import net

        self.made = []
        monkeypatch.setattr(net, "make_server", self)

    def __call__(self, app, host, port, limits, log_level="warning", graceful_s=30):
        self.made.append((app, limits))
        return self

    def run(self):
        pass


def test_the_login_link_printed_at_launch_carries_the_token(capsys, monkeypatch, tmp_path):
    from deepworks.ui import app as ui_app

    server = NoServer(monkeypatch)
    ui_app.ui(str(tmp_path / "runs"), port=8123)
    line = capsys.readouterr().out
    assert "http://127.0.0.1:8123/?token=" in line and len(line.split("?token=")[1].split()[0]) >= 24
    app, limits = server.made[0]
    app.state.jobs.close()
    # served as deepworks serve is (a slow request head times out, connections are capped), uploads given longer
    assert limits.header_timeout_s == 10 and limits.max_connections == 500 and limits.body_timeout_s == 600


def test_the_command_line_takes_data_roots_and_refuses_one_that_is_no_folder(capsys, monkeypatch, tmp_path):
    from deepworks.cli import main

    server = NoServer(monkeypatch)
    assert main(["ui", "--runs-dir", str(tmp_path / "runs"), "--data-root", str(tmp_path / "none")]) == 2
    assert f"--data-root must be a folder. Received: '{tmp_path / 'none'}'" in capsys.readouterr().err
    assert main(["ui", "--runs-dir", str(tmp_path / "runs"), "--data-root", str(tmp_path), "--insecure"]) == 0
    served = [app for app, _ in server.made]
    with TestClient(served[0], base_url=LOCAL) as c:  # --insecure: no token; tmp_path's files may be read
        (tmp_path / "poem.txt").write_text("roses are red, violets are blue. " * 40)
        assert c.post("/api/data/preview", json={"task": "text", "data": str(tmp_path / "poem.txt")}).status_code == 200
    served[0].state.jobs.close()


@pytest.mark.parametrize("origin", ["http://evil.example", "http://127.0.0.1:9999", "null"])
def test_a_request_from_another_site_or_port_changes_nothing(client, origin):
    answer = client.post("/api/jobs", json={"settings": {"data": "digits", "epochs": 1}}, headers={"Origin": origin})
    assert answer.status_code == 403 and f"Received: Origin '{origin}'" in answer.json()["error"]
    assert not client.app.state.jobs.procs
    upload = client.post("/api/data/upload", files={"file": ("a.txt", b"hello")}, headers={"Origin": origin})
    assert upload.status_code == 403 and not (client.app.state.jobs.runs_dir / ".ui").exists()


def test_the_ui_s_own_page_may_change_things(client):
    answer = client.post("/api/design", json={"layers": [{"type": "dense", "units": 4}]}, headers={"Origin": LOCAL})
    assert answer.status_code == 200


def test_a_json_body_sent_as_text_plain_is_refused(client):
    answer = client.post("/api/jobs", content=b'{"settings": {"data": "digits", "epochs": 1}}',
                         headers={"Content-Type": "text/plain"})
    assert answer.status_code == 415 and "Expected a JSON body with the header 'Content-Type: application/json'" in \
        answer.json()["error"]
    assert not client.app.state.jobs.procs


@pytest.mark.parametrize("host", ["attacker.example:8080", "attacker.example", "127.0.0.1:9999"])
def test_a_request_naming_another_host_is_refused_dns_rebinding(client, host):
    answer = client.get("/api/runs", headers={"Host": host})
    assert answer.status_code == 403 and f"Received: Host '{host}'" in answer.json()["error"]


@pytest.mark.parametrize("host", ["127.0.0.1:8080", "localhost:8080", "[::1]:8080"])
def test_this_machine_s_names_are_welcome(client, host):
    assert client.get("/api/runs", headers={"Host": host}).status_code == 200


@pytest.mark.parametrize("body", [{"task": "text", "data": "/etc/passwd"},
                                  {"task": "text", "data": "runs/../../../../../../etc/passwd"},
                                  {"task": "image", "data": "digits", "data_dir": "/etc"}])
def test_the_preview_never_reads_outside_the_chosen_folders(client, body):
    answer = client.post("/api/data/preview", json=body)
    assert answer.status_code == 403 and "Expected data" in answer.json()["error"]
    assert "root:" not in answer.text and "--data-root FOLDER" in answer.json()["error"]


def test_jobs_the_audit_and_the_designer_never_name_files_outside_the_chosen_folders(client):
    for path, body in [("/api/jobs", {"settings": {"data": "/etc", "epochs": 1}}),
                       ("/api/jobs", {"settings": {"init_from": "/etc/passwd", "epochs": 1}}),
                       ("/api/jobs", {"settings": {"task": "style", "style": "/etc/x.png", "epochs": 1}}),
                       ("/api/jobs", {"settings": {"task": "translate", "val_data": "runs/a.txt,/etc/passwd"}}),
                       ("/api/automl", {"settings": {"data": "/etc"}}),
                       ("/api/audit", {"data": "/etc"}),
                       ("/api/design", {"data": "/etc"})]:
        answer = client.post(path, json=body)
        assert answer.status_code == 403 and "/etc" in answer.json()["error"], (path, answer.text)
    assert not client.app.state.jobs.procs


def test_data_in_a_data_root_or_an_upload_is_read(tmp_path):
    poem = tmp_path / "mine" / "poem.txt"
    poem.parent.mkdir()
    poem.write_text("the quick brown fox jumps over the lazy dog. " * 50)
    app = build_ui_app(tmp_path / "runs", data_roots=[poem.parent])
    with TestClient(app, base_url=LOCAL, headers={"Authorization": f"Bearer {app.state.token}"}) as c:
        assert c.post("/api/data/preview", json={"task": "text", "data": str(poem)}).status_code == 200
        uploaded = c.post("/api/data/upload", files={"file": ("poem.txt", poem.read_bytes())}).json()["data"]
        assert c.post("/api/data/preview", json={"task": "text", "data": uploaded}).status_code == 200
    app.state.jobs.close()


def test_a_task_named_as_module_and_class_is_refused_without_importing_the_module(client):
    assert "tabnanny" not in sys.modules
    answer = client.post("/api/jobs", json={"settings": {"task": "tabnanny:Task", "epochs": 1}})
    assert answer.status_code == 400 and "Received: 'tabnanny:Task'" in answer.json()["error"]
    preview = client.post("/api/data/preview", json={"task": "tabnanny:Task"})
    assert preview.status_code == 400 and "Expected a task" in preview.json()["error"]
    assert "tabnanny" not in sys.modules


def test_with_insecure_there_is_no_token_but_host_and_origin_still_hold(tmp_path):
    app = build_ui_app(tmp_path / "runs", insecure=True)
    with TestClient(app, base_url=LOCAL) as c:
        assert c.get("/api/info").status_code == 200
        assert c.get("/api/info", headers={"Host": "attacker.example"}).status_code == 403
        assert c.post("/api/jobs", json={}, headers={"Origin": "http://evil.example"}).status_code == 403
    app.state.jobs.close()
