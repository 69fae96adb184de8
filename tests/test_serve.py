"""`deepworks serve`: every route of every task, bad requests, batching, the V2 protocol, and a real uvicorn process
driven by dw.Client and tritonclient."""

from __future__ import annotations

import asyncio
import base64
import io
import json
import os
import signal
import socket
import subprocess
import sys

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image

import deepworks as dw
from deepworks.serving import Limits, build_app

TOKEN = "a-test-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture(scope="module")
def client(use_runs):
    app = build_app([str(use_runs[n]) for n in ("img", "txt", "gru", "gan")], token=TOKEN,
                    limits=Limits(max_body_mb=1.0, max_items=64))
    with TestClient(app) as c:
        yield c


def png(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return buffer.getvalue()


def digit_images(use_runs, n=3):
    trained = dw.load(use_runs["img"])
    x, _ = trained.examples("test")
    return trained, x[:n, 0].numpy()  # (n, H, W) uint8 grey


def test_the_image_route_answers_arrays_uploads_and_base64_as_predict_does(client, use_runs):
    trained, images = digit_images(use_runs)
    expected = trained.predict(images, top_k=2)
    r = client.post("/v1/models/img/predict", json={"inputs": images.tolist(), "top_k": 2}, headers=AUTH)
    assert r.status_code == 200
    got = r.json()["outputs"]
    assert [o["predictions"] for o in got] == [e["predictions"] for e in expected]
    files = [("file", (f"{i}.png", png(a), "image/png")) for i, a in enumerate(images)]
    r = client.post("/v1/models/img/predict", files=files, data={"top_k": "2"}, headers=AUTH)
    assert [o["predictions"] for o in r.json()["outputs"]] == [e["predictions"] for e in expected]
    body = {"inputs": [{"base64": base64.b64encode(png(a)).decode()} for a in images], "top_k": 2}
    r = client.post("/v1/models/img/predict", json=body, headers=AUTH)
    assert [o["predictions"] for o in r.json()["outputs"]] == [e["predictions"] for e in expected]


def test_text_translation_and_gan_routes_answer_as_their_runs_do(client, use_runs):
    r = client.post("/v1/models/txt/generate", json={"inputs": "the ", "length": 40, "temperature": 0}, headers=AUTH)
    assert r.json()["outputs"][0]["text"] == dw.load(use_runs["txt"]).generate("the ", 40, temperature=0)
    r = client.post("/v1/models/txt/generate", json={"inputs": "the ", "length": 6, "seed": 3, "stream": True},
                    headers=AUTH)
    assert r.headers["content-type"].startswith("text/event-stream")
    events = [json.loads(line[5:]) for line in r.text.splitlines() if line.startswith("data:")]
    tokens = "".join(e["token"] for e in events if "token" in e)
    assert len(tokens) == 6 and events[-2]["text"] == "the " + tokens and events[-1] == {}
    assert tokens == dw.load(use_runs["txt"]).generate("the ", 6, seed=3)[4:]
    r = client.post("/v1/models/gru/translate", json={"inputs": ["the 3rd of march 1998"], "attention": True},
                    headers=AUTH)
    out = r.json()["outputs"][0]
    assert out["translation"] == dw.load(use_runs["gru"]).translate("the 3rd of march 1998")[0]["translation"]
    assert len(out["attention"]) == len(out["tokens"]) + 1 and len(out["attention"][0]) == len(out["source_tokens"])
    r = client.post("/v1/models/gan/sample", json={"n": 3, "seed": 5}, headers=AUTH)
    images = [np.asarray(Image.open(io.BytesIO(base64.b64decode(o["image_png_base64"])))) for o in r.json()["outputs"]]
    assert np.array_equal(np.stack(images), dw.load(use_runs["gan"]).sample(3, seed=5)[:, 0].numpy())
    r = client.post("/v1/models/gan/sample", json={"n": 4, "seed": 5, "format": "png"}, headers=AUTH)
    assert r.headers["content-type"] == "image/png" and r.content[:4] == b"\x89PNG"


def test_models_cards_health_and_metrics(client):
    models = client.get("/v1/models", headers=AUTH).json()["models"]
    assert [(m["name"], m["use"]) for m in models] == [("img", "predict"), ("txt", "generate"), ("gru", "translate"),
                                                        ("gan", "sample")]
    card = client.get("/v1/models/img", headers=AUTH).json()
    assert card["route"] == "/v1/models/img/predict" and len(card["classes"]) == 10 and card["batched"]
    assert client.get("/v2/health/live").status_code == 200 and client.get("/v2/health/ready").json() == {"ready": True}
    text = client.get("/metrics", headers=AUTH).text
    assert 'deepworks_requests_total{code="200",route="/v1/models"}' in text and "deepworks_request_seconds_bucket" in text
    assert client.get("/openapi.json", headers=AUTH).status_code == 200 and client.get("/docs").status_code in (401, 404)


def test_an_answer_holding_numpy_numbers_or_a_number_that_is_not_finite_is_written_not_a_500():
    """A model gone wrong (NaN, infinity) answers null where it gave a 500; numpy's numbers are written as numbers."""
    import numpy as np

    from deepworks.serving.app import Answer

    assert json.loads(Answer({"p": [float("nan"), float("inf"), np.float32(1.5), np.int64(3), 1e-5]}).body) == {
        "p": [None, None, 1.5, 3, 1e-5]}


def test_v2_metadata_and_infer_for_images_and_text(client, use_runs):
    meta = client.get("/v2/models/img", headers=AUTH).json()
    assert meta["inputs"][0]["name"] == "images" and meta["outputs"] == [
        {"name": "probabilities", "datatype": "FP32", "shape": [-1, 10]}]
    trained, images = digit_images(use_runs, 2)
    size = meta["inputs"][0]["shape"][1]
    batch = np.stack([np.asarray(Image.fromarray(a).resize((size, size), Image.BILINEAR)) for a in images])[..., None]
    body = {"id": "42", "inputs": [{"name": "images", "shape": list(batch.shape), "datatype": "UINT8",
                                    "data": batch.reshape(-1).tolist()}]}
    r = client.post("/v2/models/img/infer", json=body, headers=AUTH).json()
    assert r["id"] == "42" and r["outputs"][0]["shape"] == [2, 10]
    probs = np.array(r["outputs"][0]["data"]).reshape(2, 10)
    assert probs.argmax(1).tolist() == [int(p[0]["class"]) for p in
                                        ([o["predictions"] for o in trained.predict(batch, top_k=1)])]
    body = {"inputs": [{"name": "prime", "shape": [1], "datatype": "BYTES", "data": ["the "]}],
            "parameters": {"length": 10, "temperature": 0}}
    r = client.post("/v2/models/txt/infer", json=body, headers=AUTH).json()
    assert r["outputs"][0]["data"] == [dw.load(use_runs["txt"]).generate("the ", 10, temperature=0)]


def test_the_onnx_runtime_answers_as_torch_does_and_a_loop_stays_in_torch(use_runs, tmp_path):
    import shutil

    run = tmp_path / "img"
    shutil.copytree(use_runs["img"], run, ignore=shutil.ignore_patterns("export"))  # exported on start
    app = build_app([str(run), str(use_runs["txt"])], runtime="onnx")
    trained, images = digit_images(use_runs, 4)
    with TestClient(app) as c:
        cards = {m["name"]: m for m in c.get("/v1/models").json()["models"]}
        r = c.post("/v1/models/img/predict", json={"inputs": images.tolist(), "top_k": 3})
    assert cards["img"]["runtime"] == "onnx" and (run / "export" / "onnx" / "classifier.onnx").is_file()
    assert cards["txt"]["runtime"] == "torch" and "served from torch" in cards["txt"]["runtime_note"]
    for got, want in zip(r.json()["outputs"], trained.predict(images, top_k=3)):
        assert [p["class"] for p in got["predictions"]] == [p["class"] for p in want["predictions"]]
        assert np.allclose([p["probability"] for p in got["predictions"]],
                           [p["probability"] for p in want["predictions"]], atol=1e-5)




def bomb_png() -> bytes:
    """A small PNG whose header claims 30,000 x 30,000 pixels: decoding it would take GBs."""
    import struct
    import zlib

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", 30000, 30000, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 1000)) + chunk(b"IEND", b"")


@pytest.mark.parametrize("what,method,path,kwargs,status,message", [
    ("no token", "get", "/v1/models", {}, 401, "Received: no token"),
    ("a wrong token", "get", "/v1/models", {"headers": {"Authorization": "Bearer nope"}}, 401, "Received: a wrong token"),
    ("an unknown model", "post", "/v1/models/nope/predict", {"json": {}}, 404, "No model named 'nope'. Expected one of"),
    ("the wrong verb", "post", "/v1/models/img/generate", {"json": {}}, 404, "its route is POST /v1/models/img/predict"),
    ("a wrong content type", "post", "/v1/models/img/predict", {"content": b"x", "headers": {"Content-Type": "text/plain"}},
     415, "Expected Content-Type application/json or multipart/form-data. Received: text/plain"),
    ("not JSON", "post", "/v1/models/img/predict", {"content": b"{no", "headers": {"Content-Type": "application/json"}},
     400, "Expected a JSON body"),
    ("not an image", "post", "/v1/models/img/predict", {"files": [("file", ("a.png", b"hello", "image/png"))]}, 400,
     "Cannot read image 0 as an image: not an image"),
    ("a decompression bomb", "post", "/v1/models/img/predict", {"files": [("file", ("b.png", "BOMB", "image/png"))]},
     400, "too large"),
    ("an oversized body", "post", "/v1/models/img/predict", {"content": b"[" + b"0," * 600_000 + b"0]",
                                                             "headers": {"Content-Type": "application/json"}},
     413, "Expected a body of at most 1 MB"),
    ("a path on the server", "post", "/v1/models/img/predict", {"json": {"inputs": "/etc/passwd"}}, 400,
     "Input 0 is text. Expected an image"),
    ("too many inputs", "post", "/v1/models/txt/generate", {"json": {"inputs": ["a"] * 65}}, 413,
     "Expected at most 64 inputs in one request. Received: 65"),
    ("an unknown option", "post", "/v1/models/txt/generate", {"json": {"inputs": "a", "colour": 1}}, 400,
     "generate takes no option 'colour'. Expected one of: length, temperature, top_k, seed"),
    ("an option out of range", "post", "/v1/models/gru/translate", {"json": {"inputs": "a", "beam": 0}}, 400,
     "translate: beam must be from 1 to 100. Received: 0"),
    ("an unknown character", "post", "/v1/models/txt/generate", {"json": {"inputs": "€"}}, 400,
     "The prime text has 1 character(s) the model never saw"),
    ("a ragged array", "post", "/v1/models/img/predict", {"json": {"inputs": [[1, 2], [3]]}}, 400,
     "Expected a rectangular array of numbers"),
    ("pixels out of range", "post", "/v1/models/img/predict", {"json": {"inputs": [[300, 2], [3, 4]]}}, 400,
     "Pixels must lie in 0..1 (floats) or 0..255"),
    ("png from a classifier", "post", "/v1/models/img/predict", {"json": {"inputs": [[1, 2], [3, 4]], "format": "png"}},
     406, "format 'png' is for GAN runs"),
    ("V2 with a wrong shape", "post", "/v2/models/img/infer",
     {"json": {"inputs": [{"name": "images", "shape": [1, 3], "datatype": "UINT8", "data": [1, 2]}]}}, 400,
     "Input 'images': shape [1, 3] needs 3 values. Received: 2"),
    ("V2 with a wrong dtype", "post", "/v2/models/img/infer",
     {"json": {"inputs": [{"name": "images", "shape": [1], "datatype": "COMPLEX", "data": [1]}]}}, 400,
     "expected a datatype among BOOL"),
    ("V2 with no inputs", "post", "/v2/models/img/infer", {"json": {"inputs": []}}, 400, "Expected {\"inputs\""),
    ("V2 noise of the wrong size", "post", "/v2/models/gan/infer",
     {"json": {"inputs": [{"name": "noise", "shape": [1, 3], "datatype": "FP32", "data": [0, 0, 0]}]}}, 400,
     "sample: noise must have shape (N, 100)"),
])
def test_a_bad_request_gets_its_4xx_and_a_message_that_says_what_was_expected(client, what, method, path, kwargs,
                                                                              status, message):
    kwargs = dict(kwargs)
    headers = {**({} if what in ("no token", "a wrong token") else AUTH), **kwargs.pop("headers", {})}
    if "files" in kwargs:
        kwargs["files"] = [(k, (n, bomb_png() if data == "BOMB" else data, t)) for k, (n, data, t) in kwargs["files"]]
    r = getattr(client, method)(path, headers=headers, **kwargs)
    assert r.status_code == status, r.text
    assert message in r.json()["error"]


def test_requests_that_arrive_together_are_answered_in_one_batch_with_the_same_answers(use_runs):
    """While the model is busy, eight requests arrive: what the worker took first (if anything) waits for the model's
    thread, the rest queue and are then answered in one batch (at most two forward passes for eight requests, as
    the histogram says), and each gets the answer it would have got alone."""
    import threading

    app = build_app([str(use_runs["img"])], limits=Limits(max_batch=32, max_wait_ms=0))
    trained, images = digit_images(use_runs, 8)
    alone = [trained.predict(a[None])[0]["predictions"] for a in images]

    async def together():
        import httpx

        transport = httpx.ASGITransport(app=app)
        async with app.router.lifespan_context(app), httpx.AsyncClient(transport=transport, base_url="http://t") as c:
            served, batcher = app.state.served["img"], app.state.batchers["img"]
            release = threading.Event()
            served.executor.submit(release.wait)  # the model's thread is busy until released
            posts = [asyncio.create_task(c.post("/v1/models/img/predict", json={"inputs": a.tolist()})) for a in images]
            for _ in range(1000):  # until all eight are either waiting for the thread or queued
                if batcher.running + sum(len(j.items) for j in batcher.queue) == 8:
                    break
                await asyncio.sleep(0.01)
            release.set()
            answers = await asyncio.gather(*posts)
            metrics = (await c.get("/metrics")).text
        return [r.json()["outputs"][0]["predictions"] for r in answers], metrics

    answers, metrics = asyncio.run(together())
    for got, want in zip(answers, alone):  # the same classes; a batch's sums may round differently in the last digit
        assert [p["class"] for p in got] == [p["class"] for p in want]
        assert np.allclose([p["probability"] for p in got], [p["probability"] for p in want], atol=1e-5)
    value = {line.split("{")[0]: float(line.split()[-1]) for line in metrics.splitlines()
             if line.startswith(("deepworks_batch_size_count", "deepworks_batch_size_sum"))}
    assert value["deepworks_batch_size_sum"] == 8  # eight images computed,
    assert value["deepworks_batch_size_count"] <= 2  # in one or two forward passes, not eight


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(use_runs):
    """`deepworks serve` in its own process on 127.0.0.1, serving an image and a text run with a token."""
    port = free_port()
    cmd = [sys.executable, "-m", "deepworks", "serve", f"digits={use_runs['img']}", f"prose={use_runs['txt']}",
           "--port", str(port), "--token", TOKEN, "--log-level", "info"]
    process = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                               env={**os.environ, "DEEPWORKS_THREADS": "1"})
    lines = []
    for line in process.stderr:  # uvicorn says when the models are warmed up and it listens
        lines.append(line)
        if "Uvicorn running on" in line:
            break
    else:
        raise AssertionError("the server did not start:\n" + "".join(lines))
    yield f"http://127.0.0.1:{port}", process
    if process.poll() is None:
        process.kill()
    process.wait()


def test_a_real_server_answers_the_python_client_and_tritonclient(server, use_runs):
    import tritonclient.http as triton

    url, _ = server
    client = dw.Client(url, token=TOKEN)
    assert client.ready() and [m["name"] for m in client.models()] == ["digits", "prose"]
    trained, images = digit_images(use_runs, 2)
    assert [p["predictions"] for p in client.predict("digits", list(images), top_k=1)] == [
        p["predictions"] for p in trained.predict(list(images), top_k=1)]
    assert client.generate("prose", "the ", length=20, temperature=0) == dw.load(use_runs["txt"]).generate(
        "the ", 20, temperature=0)
    assert "".join(client.stream("prose", "the ", length=12, seed=4)) == dw.load(use_runs["txt"]).generate(
        "the ", 12, seed=4)[4:]
    with pytest.raises(dw.ServerError, match="400: generate: length must be from 0"):
        client.generate("prose", length=-1)

    triton_client = triton.InferenceServerClient(url[len("http://"):])
    assert triton_client.is_server_live() and triton_client.is_model_ready("digits", headers=dict(AUTH))
    meta = triton_client.get_model_metadata("digits", headers=dict(AUTH))
    size = meta["inputs"][0]["shape"][1]
    batch = np.random.default_rng(1).integers(0, 256, (3, size, size, 1), dtype=np.uint8)
    tensor = triton.InferInput("images", list(batch.shape), "UINT8")
    tensor.set_data_from_numpy(batch)  # binary by default: Triton's binary tensor extension
    result = triton_client.infer("digits", [tensor], outputs=[triton.InferRequestedOutput("probabilities")],
                                 headers=dict(AUTH))  # (tritonclient adds its own headers to the dict it is given)
    probs = result.as_numpy("probabilities")
    assert probs.shape == (3, 10) and np.allclose(probs.sum(1), 1, atol=1e-5)
    expected = [p["predictions"][0]["class"] for p in trained.predict(batch, top_k=1)]
    assert [str(i) for i in probs.argmax(1)] == expected


def test_the_server_stays_healthy_under_ten_thousand_requests_at_50_connections(server, use_runs, tmp_path):
    """wrk (a C load generator; .ci/run installs it) sends at least 10,000 requests over 50 connections: not one
    error, and the server's memory does not grow (a leak would)."""
    import re
    import shutil

    if shutil.which("wrk") is None:
        pytest.skip("wrk is not installed here (apt-get install wrk); .ci/run installs it")
    url, process = server
    _, images = digit_images(use_runs, 1)
    (tmp_path / "body.json").write_text(json.dumps({"inputs": images[0].tolist()}))
    (tmp_path / "post.lua").write_text(
        'wrk.method = "POST"\nwrk.headers["Content-Type"] = "application/json"\n'
        f'wrk.headers["Authorization"] = "Bearer {TOKEN}"\n'
        f'local f = io.open("{tmp_path / "body.json"}", "r")\nwrk.body = f:read("*all")\nf:close()\n')

    def rss_mb() -> float:
        with open(f"/proc/{process.pid}/status") as f:
            return next(int(line.split()[1]) for line in f if line.startswith("VmRSS")) / 1024

    def load(seconds: int) -> tuple[int, str]:
        out = subprocess.run(["wrk", "-t1", "-c50", f"-d{seconds}s", "-s", str(tmp_path / "post.lua"),
                              f"{url}/v1/models/digits/predict"], capture_output=True, text=True, check=True).stdout
        return int(re.search(r"(\d+) requests in", out).group(1)), out

    load(1)  # allocations settle
    before, sent = rss_mb(), 0
    while sent < 10_000:
        count, out = load(4)
        sent += count
        assert "Non-2xx" not in out and "Socket errors" not in out, out
    assert rss_mb() - before < 50


def test_sigterm_lets_a_request_in_flight_finish_then_stops_the_server(server):
    url, process = server
    chars = dw.Client(url, token=TOKEN).stream("prose", "the ", length=3000, seed=1)
    first = next(chars)  # the request is in flight
    process.send_signal(signal.SIGTERM)
    assert len(first + "".join(chars)) == 3000  # it was answered in full
    assert process.wait(timeout=60) in (0, -signal.SIGTERM)  # uvicorn exits by re-raising the signal it handled
    with pytest.raises(OSError):
        dw.Client(url, token=TOKEN, timeout=5).models()


def test_the_client_says_when_no_server_listens_at_its_url():
    url = f"http://127.0.0.1:{free_port()}"  # a port just closed: nothing listens there
    client = dw.Client(url, timeout=5)
    expected = f"Expected a deepworks server at {url} (is `deepworks serve` running?). Received: connection refused."
    for call in (client.models, lambda: client.predict("digits", np.zeros((8, 8), np.uint8)),
                 lambda: "".join(client.stream("prose", "the "))):
        with pytest.raises(dw.ServerUnreachable) as caught:
            call()
        assert str(caught.value) == expected and isinstance(caught.value, ConnectionError)  # OSError, as before
    assert client.ready() is False


def test_a_server_open_to_other_machines_needs_a_token(use_runs, capsys):
    from deepworks.cli import main

    assert main(["serve", str(use_runs["img"]), "--host", "0.0.0.0"]) == 2
    assert "--host 0.0.0.0 lets other machines reach the server, so it needs --token" in capsys.readouterr().err
    assert main(["serve", str(use_runs["img"]), "--token", "short"]) == 2
    assert "--token must be at least 8 characters long" in capsys.readouterr().err


# --- fuzz: no request a client can send makes the server fail (5xx) ---------------------------------------------
from hypothesis import HealthCheck, example, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

JSON = st.recursive(st.none() | st.booleans() | st.integers(-10 ** 12, 10 ** 12) | st.floats() | st.text(max_size=12),
                    lambda inner: st.lists(inner, max_size=6) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
                    max_leaves=40)
OPTIONS = ("top_k", "length", "temperature", "seed", "beam", "length_penalty", "attention", "n", "label", "stream",
           "format", "colour")
BODIES = st.fixed_dictionaries({"inputs": JSON}, optional={k: JSON for k in OPTIONS})
V2_INPUT = st.fixed_dictionaries({"name": st.sampled_from(["images", "prime", "noise", "labels", "x"]),
                                  "shape": st.lists(st.integers(-2, 40), max_size=4) | JSON,
                                  "datatype": st.sampled_from(["UINT8", "FP32", "INT64", "BYTES", "BOOL", "FP16", "X"]),
                                  "data": JSON}, optional={"parameters": JSON})
V2_BODIES = st.fixed_dictionaries({"inputs": st.lists(V2_INPUT, max_size=3) | JSON},
                                  optional={"parameters": st.dictionaries(st.sampled_from(OPTIONS), JSON),
                                            "outputs": JSON, "id": JSON})
ROUTES = [("img", "predict"), ("txt", "generate"), ("gru", "translate"), ("gan", "sample")]


@pytest.fixture(scope="module")
def fuzz_client(use_runs):
    limits = Limits(max_body_mb=1.0, max_items=16, max_length=20, timeout_s=20)
    app = build_app([str(use_runs[n]) for n in ("img", "txt", "gru", "gan")], limits=limits)
    with TestClient(app, raise_server_exceptions=False) as c:
        yield c


@settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
@given(route=st.sampled_from(ROUTES), body=BODIES)
def test_fuzzed_json_requests_never_make_the_server_fail(fuzz_client, route, body):
    name, verb = route
    r = fuzz_client.post(f"/v1/models/{name}/{verb}", content=json.dumps(body), headers={"Content-Type": "application/json"})
    assert r.status_code < 500, r.text
    if r.status_code >= 400:
        assert r.json()["error"]


@settings(max_examples=200, deadline=None, suppress_health_check=list(HealthCheck))
@given(name=st.sampled_from([n for n, _ in ROUTES]), body=V2_BODIES)
def test_fuzzed_v2_requests_never_make_the_server_fail(fuzz_client, name, body):
    r = fuzz_client.post(f"/v2/models/{name}/infer", content=json.dumps(body), headers={"Content-Type": "application/json"})
    assert r.status_code < 500, r.text


# hostile shapes that random JSON rarely reaches: nesting past Python's stack, shapes whose element count overflows
# 64 bits, binary data of any size, digits that are not ASCII, subnormal floats
def deep(depth: int, opener: str, leaf: str = "1") -> str:
    return opener * depth + leaf + ("]" if opener == "[" else "}") * depth


@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
@example(route=ROUTES[0], depth=900, opener="[", leaf='"x"', encoding="utf-16")
@given(route=st.sampled_from(ROUTES), depth=st.integers(1, 3000), opener=st.sampled_from(["[", '{"a":']),
       leaf=st.sampled_from(["1", '"x"']), encoding=st.sampled_from(["utf-8", "utf-16", "utf-16-le", "utf-32"]))
def test_fuzzed_deep_nesting_never_makes_the_server_fail(fuzz_client, route, depth, opener, leaf, encoding):
    """In any encoding: an escaped quote written in UTF-16 or UTF-32 hid a deep body from the depth check, which
    reads UTF-8; such bodies are refused as JSON is only UTF-8."""
    name, verb = route
    quoted = '"\\"", '  # an escaped quote on each side of the deep part
    nested = deep(depth, opener, leaf)
    for path, body in ((f"/v1/models/{name}/{verb}", '{"a": %s"inputs": %s, "b": %s}' % (quoted, nested, quoted[:-2])),
                       (f"/v2/models/{name}/infer", '{"inputs": [{"name": "x", "shape": [1], "datatype": "FP32", '
                                                    '"data": %s}]}' % nested)):
        r = fuzz_client.post(path, content=body.encode(encoding), headers={"Content-Type": "application/json"})
        assert r.status_code < 500, r.text
        assert r.status_code == 200 or r.json()["error"]
        if encoding != "utf-8":
            assert r.status_code == 400, r.text


DIMENSIONS = st.sampled_from([0, 1, 3, 2 ** 16, 2 ** 31, 2 ** 32, 2 ** 32 + 1, 2 ** 63, 2 ** 64]) | st.integers(0, 2 ** 65)


@settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
@example(name="img", shape=[0, 135447, 2097133, 4058863], kind="FP64", size=0, extra=0)  # empty, yet unshapeable
@given(name=st.sampled_from([n for n, _ in ROUTES]), shape=st.lists(DIMENSIONS, max_size=4),
       kind=st.sampled_from(["UINT8", "FP16", "FP32", "FP64", "INT64", "BOOL", "BYTES"]), size=st.integers(0, 70),
       extra=st.integers(0, 9))
def test_fuzzed_v2_shapes_and_binary_sizes_never_make_the_server_fail(fuzz_client, name, shape, kind, size, extra):
    header = json.dumps({"inputs": [{"name": "x", "shape": shape, "datatype": kind,
                                     "parameters": {"binary_data_size": size}}]}).encode()
    r = fuzz_client.post(f"/v2/models/{name}/infer", content=header + b"\1" * (size + extra),
                         headers={"Content-Type": "application/octet-stream",
                                  "Inference-Header-Content-Length": str(len(header))})
    assert r.status_code < 500, r.text
    assert r.status_code == 200 or r.json()["error"]


@settings(max_examples=100, deadline=None)
@given(length=st.text(st.characters(categories=["Nd", "No", "Zs"]), min_size=1, max_size=4) | st.just("9" * 5000))
def test_fuzzed_v2_header_lengths_in_any_digits_are_refused_cleanly(length):
    from deepworks.serving.app import ClientError
    from deepworks.serving.v2 import read_infer_request

    try:
        read_infer_request(b'{"inputs": []}' + b"\0" * 9, length)
    except ClientError as err:
        assert err.status == 400 and str(err).startswith("Expected")


@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
@given(tiny=st.floats(0, 1e-300) | st.sampled_from([5e-324, 1e-320, 2.2250738585072014e-308, 1e-5]),
       option=st.sampled_from([("txt", "generate", "temperature"), ("gru", "translate", "length_penalty")]))
def test_fuzzed_subnormal_options_never_make_the_server_fail(fuzz_client, tiny, option):
    name, verb, key = option
    r = fuzz_client.post(f"/v1/models/{name}/{verb}", json={"inputs": "the", key: tiny, "length": 3} if verb ==
                         "generate" else {"inputs": "the 3rd of march 1998", key: tiny})
    assert r.status_code < 500, r.text
