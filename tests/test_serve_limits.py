"""`deepworks serve` against hostile and careless clients: requests that used to give a 500, errors in one shape,
work bounded in cost (and stopped when nobody waits), slow connections timed out, and a banner only once the
server is sure to start."""

from __future__ import annotations

import asyncio
import json
import socket
import threading
from contextlib import contextmanager

import pytest
from fastapi import Request
from fastapi.testclient import TestClient

from deepworks.serving import Limits, build_app, make_app


@pytest.fixture(scope="module")
def client(use_runs):
    app = build_app([str(use_runs[n]) for n in ("img", "txt")], limits=Limits(max_body_mb=1.0, max_items=64,
                                                                                max_work=1000))
    with TestClient(app) as c:
        yield c


def nested(depth: int, leaf: str) -> str:
    """A JSON list nested `depth` deep around `leaf` (as text: json.dumps itself recurses)."""
    return "[" * depth + leaf + "]" * depth


def v2_body(*inputs) -> dict:
    return {"inputs": [{"name": name, "shape": shape, "datatype": kind, **extra} for name, shape, kind, extra in inputs]}


def v2_binary(header: dict, blob: bytes) -> dict:
    text = json.dumps(header).encode()
    return {"content": text + blob, "headers": {"Content-Type": "application/octet-stream",
                                                "Inference-Header-Content-Length": str(len(text))}}


JSON = {"Content-Type": "application/json"}
CASES = [  # (case, path, what to post, status, what the message must say)
    ("JSON 100,000 deep", "/v1/models/img/predict", {"content": b"[" * 100_000 + b"]" * 100_000, "headers": JSON},
     400, "Expected a JSON body nested at most 32 levels deep. Received: 100,000 levels."),
    ("inputs 900 deep", "/v1/models/txt/generate", {"content": '{"inputs": %s}' % nested(900, '"a"'),
                                                    "headers": JSON}, 400, "Received: 901 levels."),
    ("V2 JSON 990 deep", "/v2/models/img/infer", {"content": '{"inputs": %s}' % nested(990, "1"),
                                               "headers": JSON},
     400, "Expected a JSON inference request nested at most 32 levels deep. Received: 991 levels."),
    ("a V2 shape whose count wraps to 0", "/v2/models/img/infer",
     {"json": v2_body(("images", [2 ** 16] * 4, "UINT8", {"data": []}))}, 413,
     "Input 'images': shape [65536, 65536, 65536, 65536] holds 18,446,744,073,709,551,616 values"),
    ("a V2 shape whose count wraps to -1", "/v2/models/img/infer",
     {"json": v2_body(("images", [65535, 42009217, 6700417], "UINT8", {"data": []}))}, 413,
     "holds 18,446,744,073,709,551,615 values"),
    ("a V2 dimension past numpy's", "/v2/models/img/infer",
     {"json": v2_body(("images", [0, 2 ** 63], "UINT8", {"data": []}))}, 400,
     "Input 'images': expected a shape of whole numbers from 0 to 268,435,456. Received: [0, 9223372036854775808]."),
    ("FP32 binary data of 255 bytes", "/v2/models/img/infer",
     v2_binary(v2_body(("images", [1, 8, 8, 1], "FP32", {"parameters": {"binary_data_size": 255}})), b"\0" * 255),
     400, "Input 'images': expected FP32 binary data in whole 4-byte values. Received: 255 bytes."),
    ("a subnormal temperature", "/v1/models/txt/generate", {"json": {"inputs": "th", "length": 5,
                                                                     "temperature": 1e-320}}, 400,
     "generate: temperature must be 0 (always the likeliest) or from 0.001 to 100. Received: 1e-320."),
    ("an image with no pixels", "/v2/models/img/infer", {"json": v2_body(("images", [1, 0, 5, 1], "UINT8",
                                                                          {"data": []}))}, 400,
     "input 0 has shape (1, 0, 5, 1): images with no pixels. Expected images of at least 1 x 1 pixels."),
    ("two V2 inputs of one name", "/v2/models/img/infer",
     {"json": v2_body(("images", [1, 2, 2, 1], "UINT8", {"data": [0] * 4}),
                      ("images", [1, 2, 2, 1], "UINT8", {"data": [255] * 4}))}, 400,
     "Expected each input once. Received: two inputs named 'images'."),
    ("more work than one request may cost", "/v1/models/txt/generate", {"json": {"inputs": ["th"] * 20,
                                                                                 "length": 100}}, 413,
     "Expected at most 1,000 characters written in one request (inputs x length, --max-work). Received: 20 x 100 "
     "= 2,000"),
    ("too many files", "/v1/models/img/predict", {"files": [("f", (f"{i}.png", b"x", "image/png")) for i in range(65)]},
     400, "Expected a multipart/form-data body with at most 64 files and 100 fields. Received: Too many files."),
    ("too many fields", "/v1/models/img/predict", {"files": [("f", ("a.png", b"x", "image/png"))],
                                                   "data": {f"k{i}": "1" for i in range(101)}}, 400,
     "Received: Too many fields."),
    ("no multipart boundary", "/v1/models/img/predict", {"content": b"x", "headers": {
        "Content-Type": "multipart/form-data"}}, 400, "Received: Missing boundary in multipart."),
]


@pytest.mark.parametrize("case,path,kwargs,status,message", CASES, ids=[c[0] for c in CASES])
def test_a_hostile_request_gets_a_4xx_that_says_what_was_expected(client, case, path, kwargs, status, message):
    r = client.post(path, **kwargs)
    assert r.status_code == status, r.text
    assert message in r.json()["error"]


@pytest.mark.parametrize("length", ["²", "٣", "9" * 5000, "-1", " 2", "99"])
def test_a_v2_header_length_that_is_not_a_size_in_ascii_digits_is_refused(length):
    """(uvicorn reads headers as latin-1, so curl's byte 0xb2 arrives as '²', which str.isdigit() accepts.)"""
    from deepworks.serving.app import ClientError
    from deepworks.serving.v2 import read_infer_request

    with pytest.raises(ClientError, match="Expected Inference-Header-Content-Length to be the JSON header's size in "
                                          "bytes \\(at most 2\\). Received: ") as refused:
        read_infer_request(b"{}", length)
    assert refused.value.status == 400


def test_starlette_s_own_errors_come_in_the_server_s_one_shape(client):
    r = client.get("/nope")
    assert r.status_code == 404 and r.json() == {"error": "Expected a route of this server (GET /v1/models lists the "
                                                          "models, /openapi.json every route). Received: GET /nope."}
    r = client.delete("/v1/models")
    assert r.status_code == 405 and r.json() == {"error": "Expected GET for /v1/models. Received: DELETE."}
    assert r.headers["allow"] == "GET"


# --- work: bounded in cost, and stopped when nobody waits for it ---------------------------------------------------
def counting_steps(served) -> list:
    """Counts the model's steps (one per character a text model writes, one per word of a translation)."""
    steps, step = [], served.model.step

    def counted(*args):
        steps.append(1)
        return step(*args)

    served.model.step = counted
    return steps


def finished(served) -> None:
    """Returns once the model's thread has finished what it was doing."""
    served.executor.submit(lambda: None).result()


@pytest.mark.parametrize("run,inputs,options", [("txt", ["th", "he"], {"length": 10_000}),
                                                ("gru", ["the 3rd of march 1998"], {}),
                                                ("gru", ["the 3rd of march 1998"], {"beam": 4})])
def test_a_cancelled_request_stops_before_the_model_s_next_step(use_runs, run, inputs, options):
    from deepworks.usage import Cancelled
    from deepworks.serving import Served

    served = Served(run, use_runs[run])
    options = served.options(options)
    steps, cancel = counting_steps(served), threading.Event()
    cancel.set()
    with pytest.raises(Cancelled):
        served.infer(served.decode(inputs, options), options, cancel)
    assert steps == []


def test_a_generate_over_its_time_stops_early_and_frees_the_model(use_runs):
    app = build_app([str(use_runs["txt"])], limits=Limits(timeout_s=0.05))
    with TestClient(app) as c:
        served = app.state.served["txt"]
        steps = counting_steps(served)
        r = c.post("/v1/models/txt/generate", json={"inputs": "th", "length": 10_000})
        finished(served)
    assert r.status_code == 503 and "Expected the answer within 0.05 s (--timeout)" in r.json()["error"]
    assert len(steps) < 10_000  # it stopped when the time was up, not after the 10,000 characters nobody waits for


def test_a_generate_whose_client_has_gone_stops_early(use_runs):
    app = build_app([str(use_runs["txt"])])
    body = json.dumps({"inputs": "th", "length": 10_000}).encode()
    scope = {"type": "http", "method": "POST", "path": "/v1/models/txt/generate", "raw_path": b"/v1/models/txt/generate",
             "query_string": b"", "headers": [(b"content-type", b"application/json")], "http_version": "1.1",
             "scheme": "http", "server": ("t", 80), "client": ("c", 1), "root_path": "", "asgi": {"version": "3.0"}}
    messages = [{"type": "http.request", "body": body, "more_body": False}, {"type": "http.disconnect"}]
    sent = []

    async def receive():
        return messages.pop(0) if messages else await asyncio.Event().wait()

    async def send(message):
        sent.append(message)

    async def request_then_leave():
        async with app.router.lifespan_context(app):
            served = app.state.served["txt"]
            steps = counting_steps(served)
            await app(scope, receive, send)
            await asyncio.get_running_loop().run_in_executor(None, finished, served)
        return steps

    steps = asyncio.run(request_then_leave())
    assert len(steps) < 10_000  # the client left at once: the model stopped at its next step
    assert sent[0]["status"] == 499


# --- connections: slow clients are timed out, and their number is bounded ---------------------------------------
@contextmanager
def live_server(limits: Limits):
    """A real uvicorn server in a thread on 127.0.0.1 (no model: an /echo route reads the body) with these limits."""
    from deepworks.serving.net import make_server

    app = make_app([], limits=limits)

    @app.post("/echo")
    async def echo(request: Request):
        return {"bytes": len(await request.body())}

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(64)  # connections queue here from now on, so clients need not wait for the server to start
    server = make_server(app, "127.0.0.1", 0, limits)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [listener]})
    thread.start()
    try:
        yield listener.getsockname()
    finally:
        server.should_exit = True
        thread.join()
        listener.close()


def connect(address, request: bytes = b"") -> socket.socket:
    c = socket.create_connection(address, timeout=30)  # (a guard against a hang: the server answers long before)
    c.sendall(request)
    return c


def until_closed(c: socket.socket) -> bytes:
    """Everything the server sends until it closes the connection."""
    data = b""
    while chunk := c.recv(65536):
        data += chunk
    c.close()
    return data


def test_slow_clients_get_a_408_and_the_connection_is_closed():
    with live_server(Limits(header_timeout_s=0.2, body_timeout_s=0.2)) as address:
        quick = until_closed(connect(address, b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\n"
                                              b"Connection: close\r\n\r\nabc"))
        trickled_head = until_closed(connect(address, b"POST /echo HTTP/1.1\r\nHost: t\r\n"))
        trickled_body = until_closed(connect(address, b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 1000\r\n"
                                                      b"\r\n0123456789"))
    assert quick.startswith(b"HTTP/1.1 200") and quick.endswith(b'{"bytes":3}')
    assert trickled_head.startswith(b"HTTP/1.1 408")
    assert json.loads(trickled_head.split(b"\r\n\r\n")[1]) == {
        "error": "Expected a request's line and headers within 0.2 s (--header-timeout). Received: part of them."}
    assert trickled_body.startswith(b"HTTP/1.1 408")
    assert json.loads(trickled_body.split(b"\r\n\r\n")[1]) == {
        "error": "Expected the request's body within 0.2 s (--body-timeout). Received: 10 bytes by then."}


def test_bytes_that_are_not_http_get_a_400_in_the_one_shape():
    with live_server(Limits()) as address:
        answer = until_closed(connect(address, b"HELLO\r\n\r\n"))
    assert answer.startswith(b"HTTP/1.1 400") and json.loads(answer.split(b"\r\n\r\n")[1]) == {
        "error": "Expected an HTTP/1.1 request. Received: bytes that are not one (Invalid HTTP request received.)"}


def test_connections_past_the_cap_are_answered_503_and_closed():
    with live_server(Limits(max_connections=2)) as address:
        first, second = connect(address), connect(address)
        refused = until_closed(connect(address))
        first.sendall(b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
        answered = until_closed(first)
        second.close()
    assert refused.startswith(b"HTTP/1.1 503") and b"Expected at most 2 open connections (--max-connections)" in refused
    assert answered.startswith(b"HTTP/1.1 200")


# --- the banner --------------------------------------------------------------------------------------------------
def test_serve_says_serving_only_once_everything_is_checked(use_runs, tmp_path, capsys):
    from deepworks.cli import main

    for argv in (["--host", "0.0.0.0"], ["--token", "short"]):
        assert main(["serve", str(use_runs["img"]), *argv]) == 2
        assert "on http://" not in capsys.readouterr().err  # the banner: "serving RUN on http://HOST:PORT ..."
    assert main(["serve", str(tmp_path / "no-such-run")]) == 2
    err = capsys.readouterr().err
    assert "on http://" not in err and "no-such-run" in err


@pytest.mark.parametrize("flag,value,message", [
    ("--header-timeout", "0", "--header-timeout must be a positive number. Received: 0.0."),
    ("--body-timeout", "inf", "--body-timeout must be a positive number. Received: inf."),
    ("--max-connections", "0", "--max-connections must be at least 1. Received: 0."),
    ("--max-work", "-5", "--max-work must be at least 1. Received: -5."),
])
def test_the_new_limits_are_range_checked_before_anything_loads(flag, value, message, capsys):
    from deepworks.cli import main

    assert main(["serve", "no-such-run", flag, value]) == 2
    err = capsys.readouterr().err
    assert message in err and "on http://" not in err


def test_the_card_says_the_most_inputs_the_server_takes_in_one_request(use_runs):
    """GET /v1/models's max_items is what a request is held to: the server's --max-items, or the task's own bound
    where that is lower (text generation: 64 prompts); one more is refused, saying that figure."""
    app = build_app([str(use_runs[n]) for n in ("img", "txt")], limits=Limits(max_items=100))
    with TestClient(app) as c:
        cards = {m["name"]: m for m in c.get("/v1/models").json()["models"]}
        assert cards["img"]["max_items"] == 100 and cards["txt"]["max_items"] == 64
        assert c.get("/v1/models/img").json()["max_items"] == 100
        for name, verb, item, options in (("img", "predict", [[0] * 8] * 8, {}), ("txt", "generate", "a", {"length": 1})):
            most = cards[name]["max_items"]
            answer = c.post(f"/v1/models/{name}/{verb}", json={"inputs": [item] * most, **options})
            assert answer.status_code == 200 and len(answer.json()["outputs"]) == most, answer.text
            over = c.post(f"/v1/models/{name}/{verb}", json={"inputs": [item] * (most + 1), **options})
            assert over.status_code in (400, 413) and f"at most {most}" in over.json()["error"], over.text


def test_a_header_is_echoed_as_the_client_wrote_it():
    from deepworks.serving.app import ClientError
    from deepworks.serving.v2 import read_infer_request

    with pytest.raises(ClientError, match="Received: '²'"):  # its UTF-8 bytes, which HTTP hands over as 'Â²'
        read_infer_request(b"{}", "²".encode().decode("latin-1"))


def test_a_run_s_own_default_beam_is_held_to_the_server_s_cap_and_a_client_s_wider_beam_is_refused():
    """A recogniser's default beam (what validation chose, 16) on a server started with --max-beam 8: requests that
    name no beam are answered at 8, not refused; a request asking for 12 is refused with the flag to raise."""
    from deepworks.serving.requests import ClientError, Limits, checked_options

    class Run:
        def options(self, raw):
            return {"beam": raw.get("beam", 16)}

    assert checked_options(Run(), {}, Limits(max_beam=8)) == {"beam": 8}
    with pytest.raises(ClientError, match=r"Expected beam of at most 8 on this server \(--max-beam\). Received: 12"):
        checked_options(Run(), {"beam": 12}, Limits(max_beam=8))
