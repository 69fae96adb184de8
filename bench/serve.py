"""Serving and export speed: deepworks serve against a hand-written FastAPI endpoint and LitServe, same model, same
client, in one run; raw forward passes in torch and ONNX Runtime; the Transformer decoder's cache.

    python bench/serve.py                      # every section (about 10 minutes on 2 cores)
    python bench/serve.py --sections raw,server --seconds 3

Load model: wrk (closed loop, 1 thread, C connections each sending its next request when the last is answered,
no think time), `--seconds` per step after a 1 s warm-up, all on 127.0.0.1. The client shares the 2 cores with the
server, as a laptop's would. The load average is logged beside every figure.

Models: LeNet-5 at 28x28x1 (MNIST's shape) and ResNet-20 at 32x32x3 (CIFAR-10's), trained one epoch on random
pixels: a forward pass costs the same whatever the weights, and this keeps the benchmark to minutes. Each request
is one image as JSON numbers, as a browser or script would send it.

Sections:
  raw     p50 / p99 of one forward pass at batch 1 and 32, torch and ONNX Runtime
  server  req/s and p50 / p99 at concurrency 1, 8, 32, 64: deepworks (torch and onnx runtimes, with and without
          micro-batching), a plain FastAPI endpoint calling the same ONNX model once per request, and LitServe 0.2
          with its batching (32, 2 ms), same ONNX model; deepworks' batched ONNX server and the plain endpoint
          (the targets' ratio) in three alternated rounds, their medians kept
  soak    10,000 requests at 50 connections against deepworks: errors and the server's memory growth
  decode  greedy decoding of Multi30k's 1,000 test sources by a Transformer of the benchmark's size (width 256,
          3 layers, 7.9k / 5.9k vocabularies), with the key/value cache against re-reading the prefix every step
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import SHARED_DATA, calibrate, machine, write  # noqa: E402

CONCURRENCY = (1, 8, 32, 64)
MODELS = {"lenet": (28, 1), "resnet20": (32, 3)}


def load_average() -> float:
    return round(os.getloadavg()[0], 2)


def make_runs(root: Path) -> dict[str, Path]:
    import deepworks as dw

    runs = {}
    rng = np.random.default_rng(0)
    for name, (size, channels) in MODELS.items():
        x = rng.integers(0, 256, (512, size, size, channels), dtype=np.uint8)
        y = rng.integers(0, 10, 512)
        trained = dw.train(data=(x, y), model="lenet" if name == "lenet" else "resnet", epochs=1, name=name,
                           runs_dir=str(root), progress=False, augment="none")
        dw.export(trained.run.path, "onnx")
        runs[name] = trained.run.path
    return runs


def percentiles(times: list[float]) -> dict:
    a = np.array(times) * 1000
    return {"p50_ms": round(float(np.percentile(a, 50)), 4), "p99_ms": round(float(np.percentile(a, 99)), 4)}


def raw_section(runs: dict[str, Path]) -> dict:
    import onnxruntime as ort

    import deepworks as dw

    out = {}
    for name, path in runs.items():
        serving = dw.load(path).serving
        options = ort.SessionOptions()
        options.intra_op_num_threads = torch.get_num_threads()
        session = ort.InferenceSession(str(path / "export" / "onnx" / "classifier.onnx"), options)
        size, channels = MODELS[name]
        for batch in (1, 32):
            x = torch.randint(0, 256, (batch, size, size, channels), dtype=torch.uint8)
            row = {}
            for runtime, call in (("torch", lambda: serving(x)),
                                  ("onnxruntime", lambda: session.run(None, {"images": x.numpy()}))):
                with torch.inference_mode():
                    for _ in range(20):
                        call()
                    times = []
                    for _ in range(300 if batch == 1 else 60):
                        t0 = time.perf_counter()
                        call()
                        times.append(time.perf_counter() - t0)
                row[runtime] = percentiles(times)
            row["onnxruntime_speedup_p50"] = round(row["torch"]["p50_ms"] / row["onnxruntime"]["p50_ms"], 2)
            row["load"] = load_average()
            out[f"{name}_batch{batch}"] = row
            print(name, batch, row, flush=True)
    return out


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


PLAIN_SERVER = textwrap.dedent('''
    """The endpoint a user would write by hand: FastAPI, one ONNX Runtime call per request."""
    import sys, numpy as np, onnxruntime as ort, uvicorn
    from fastapi import FastAPI
    options = ort.SessionOptions(); options.intra_op_num_threads = int(sys.argv[3])
    session = ort.InferenceSession(sys.argv[1], options)
    app = FastAPI()

    @app.post("/predict")
    def predict(body: dict):
        x = np.asarray(body["inputs"], dtype=np.uint8)
        x = x.reshape(1, *x.shape) if x.ndim == 3 else x.reshape(1, *x.shape, 1)
        probs = session.run(None, {"images": x})[0][0]
        return {"probabilities": probs.tolist()}

    uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[2]), log_level="warning")
''')

LITSERVE_SERVER = textwrap.dedent('''
    """LitServe 0.2 with its batching, the same ONNX model."""
    import sys, numpy as np, onnxruntime as ort, litserve as ls

    class Api(ls.LitAPI):
        def setup(self, device):
            options = ort.SessionOptions(); options.intra_op_num_threads = int(sys.argv[3])
            self.session = ort.InferenceSession(sys.argv[1], options)

        def decode_request(self, request):
            x = np.asarray(request["inputs"], dtype=np.uint8)
            return x if x.ndim == 3 else x[..., None]

        def batch(self, inputs):
            return np.stack(inputs)

        def predict(self, x):
            return self.session.run(None, {"images": x})[0]

        def unbatch(self, output):
            return list(output)

        def encode_response(self, output):
            return {"probabilities": output.tolist()}

    if __name__ == "__main__":
        server = ls.LitServer(Api(max_batch_size=32, batch_timeout=0.002), accelerator="cpu", workers_per_device=1)
        server.run(port=int(sys.argv[2]), generate_client_file=False)
''')


def wait_until_up(url: str, process: subprocess.Popen, seconds: float = 120) -> None:
    import urllib.request

    deadline = time.time() + seconds
    while time.time() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode}")
        try:
            urllib.request.urlopen(url, timeout=1)
            return
        except Exception:
            time.sleep(0.2)
    raise RuntimeError(f"{url} did not answer")


def wrk(url: str, body_file: Path, connections: int, seconds: float) -> dict:
    lua = body_file.with_suffix(".lua")
    lua.write_text(f'wrk.method = "POST"\nwrk.headers["Content-Type"] = "application/json"\n'
                   f'local f = io.open("{body_file}", "r")\nwrk.body = f:read("*all")\nf:close()\n')
    subprocess.run(["wrk", "-t1", f"-c{connections}", "-d1s", "-s", str(lua), url], capture_output=True)  # warm-up
    load = load_average()
    text = subprocess.run(["wrk", "-t1", f"-c{connections}", f"-d{int(round(seconds))}s", "--latency", "-s", str(lua), url],
                          capture_output=True, text=True).stdout

    def ms(label: str) -> float | None:
        m = re.search(rf"^\s+{label}%\s+([\d.]+)(us|ms|s)\s*$", text, re.M)
        if not m:
            return None
        return round(float(m.group(1)) * {"us": 1e-3, "ms": 1.0, "s": 1000.0}[m.group(2)], 3)

    rps = re.search(r"Requests/sec:\s+([\d.]+)", text)
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    errors = re.search(r"Socket errors: (.*)", text)
    return {"req_per_s": round(float(rps.group(1)), 1) if rps else None, "p50_ms": ms("50"), "p99_ms": ms("99"),
            "non_2xx": int(non2xx.group(1)) if non2xx else 0, "socket_errors": errors.group(1) if errors else None,
            "load_before": load}


def stop(process: subprocess.Popen) -> None:
    """The server and every process it started (LitServe's inference workers outlive their parent otherwise)."""
    import signal

    try:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
    except ProcessLookupError:
        pass


ALTERNATED = ("deepworks_onnx_batched", "plain_fastapi_onnx")  # the ratio the targets name: both servers up, their
                                                              # rounds alternated, so that a noisy minute hits both


def server_configs(path: Path, tmp: Path) -> dict:
    onnx = str(path / "export" / "onnx" / "classifier.onnx")
    serve = [sys.executable, "-m", "deepworks", "serve", f"m={path}"]
    v1 = "/v1/models/m/predict"
    return {"deepworks_onnx_batched": (serve + ["--runtime", "onnx"], v1),
            "deepworks_onnx_unbatched": (serve + ["--runtime", "onnx", "--max-batch", "1"], v1),
            "deepworks_torch_batched": (serve, v1),
            "deepworks_torch_unbatched": (serve + ["--max-batch", "1"], v1),
            "plain_fastapi_onnx": ([sys.executable, str(tmp / "plain.py"), onnx], "/predict"),
            "litserve_onnx_batched": ([sys.executable, str(tmp / "lit.py"), onnx], "/predict")}


@contextlib.contextmanager
def running(config: str, cmd: list, route: str, threads: str):
    """A server of `config` on a free port, until the block ends: its URL."""
    port = free_port()
    full = cmd + (["--port", str(port)] if cmd[1] == "-m" else [str(port), threads])
    process = subprocess.Popen(full, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
                               env={**os.environ, "DEEPWORKS_THREADS": threads})
    try:
        health = "/v2/health/ready" if "deepworks" in config else ("/health" if "lit" in config else "/docs")
        wait_until_up(f"http://127.0.0.1:{port}{health}", process)
        yield f"http://127.0.0.1:{port}{route}"
    finally:
        stop(process)


def median_row(tries: list[dict]) -> dict:
    """Rounds of one configuration at one concurrency: the median of each figure, and every round's req/s."""
    row = {k: round(float(np.median([t[k] for t in tries if t[k] is not None])), 3)
           for k in ("req_per_s", "p50_ms", "p99_ms") if any(t[k] is not None for t in tries)}
    return {**row, "rounds_req_per_s": [t["req_per_s"] for t in tries], "non_2xx": sum(t["non_2xx"] for t in tries),
            "socket_errors": [t["socket_errors"] for t in tries if t["socket_errors"]],
            "load_before": tries[0]["load_before"]}


def server_section(runs: dict[str, Path], seconds: float, tmp: Path, rounds: int = 3) -> dict:
    """Each model: deepworks' batched ONNX server and the plain endpoint up together, `rounds` alternated rounds
    at each concurrency (their ratio is the target's); then each other configuration alone, one round."""
    threads = str(torch.get_num_threads())
    (tmp / "plain.py").write_text(PLAIN_SERVER)
    (tmp / "lit.py").write_text(LITSERVE_SERVER)
    results = {}
    for name, path in runs.items():
        size, channels = MODELS[name]
        body = tmp / f"{name}.json"
        image = np.random.default_rng(1).integers(0, 256, (size, size, channels) if channels > 1 else (size, size))
        body.write_text(json.dumps({"inputs": image.tolist()}))
        configs = server_configs(path, tmp)
        results[name] = {config: {} for config in configs}
        with contextlib.ExitStack() as stack:
            urls = {config: stack.enter_context(running(config, *configs[config], threads)) for config in ALTERNATED}
            for c in CONCURRENCY:
                tries = {config: [] for config in ALTERNATED}
                for _ in range(rounds):
                    for config in ALTERNATED:
                        tries[config].append(wrk(urls[config], body, c, seconds))
                for config in ALTERNATED:
                    results[name][config][f"c{c}"] = median_row(tries[config])
                    print(name, config, c, results[name][config][f"c{c}"], flush=True)
        for config, (cmd, route) in configs.items():
            if config in ALTERNATED:
                continue
            with running(config, cmd, route, threads) as url:
                for c in CONCURRENCY:
                    results[name][config][f"c{c}"] = wrk(url, body, c, seconds)
                    print(name, config, c, results[name][config][f"c{c}"], flush=True)
        results[name]["ratios"] = ratios(results[name])
    return results


def ratios(rows: dict) -> dict:
    """The figures the issue's targets name, per concurrency."""
    out = {}
    for c in CONCURRENCY:
        k = f"c{c}"

        def rps(config):
            return (rows.get(config, {}).get(k) or {}).get("req_per_s") or float("nan")

        out[k] = {"onnx_batched_over_unbatched": round(rps("deepworks_onnx_batched") / rps("deepworks_onnx_unbatched"), 2),
                  "torch_batched_over_unbatched": round(rps("deepworks_torch_batched") / rps("deepworks_torch_unbatched"), 2),
                  "deepworks_onnx_over_plain_fastapi": round(rps("deepworks_onnx_batched") / rps("plain_fastapi_onnx"), 2),
                  "deepworks_onnx_over_litserve": round(rps("deepworks_onnx_batched") / rps("litserve_onnx_batched"), 2)}
    return out


def soak_section(runs: dict[str, Path], tmp: Path) -> dict:
    """At least 10,000 requests at 50 connections (wrk in 5 s rounds until the count is reached): errors, and the
    server's memory before and after."""
    path = runs["lenet"]
    port = free_port()
    process = subprocess.Popen([sys.executable, "-m", "deepworks", "serve", f"m={path}", "--port", str(port),
                                "--runtime", "onnx"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def rss() -> float:
        with open(f"/proc/{process.pid}/status") as f:
            return next(int(line.split()[1]) for line in f if line.startswith("VmRSS")) / 1024

    try:
        wait_until_up(f"http://127.0.0.1:{port}/v2/health/ready", process)
        body = tmp / "soak.json"
        body.write_text(json.dumps({"inputs": np.zeros((28, 28), int).tolist()}))
        url = f"http://127.0.0.1:{port}/v1/models/m/predict"
        wrk(url, body, 50, 1)  # allocations settle
        before, load, t0 = rss(), load_average(), time.perf_counter()
        done, non2xx, errors = 0, 0, []
        while done < 10_000:
            row = wrk(url, body, 50, 5)
            done += int(round(row["req_per_s"] * 5)) if row["req_per_s"] else 0
            non2xx += row["non_2xx"]
            errors += [row["socket_errors"]] if row["socket_errors"] else []
        return {"requests_about": done, "connections": 50, "seconds": round(time.perf_counter() - t0, 1),
                "non_2xx": non2xx, "socket_errors": errors, "rss_before_mb": round(before, 1),
                "rss_after_mb": round(rss(), 1), "rss_growth_mb": round(rss() - before, 1), "load_before": load}
    finally:
        process.terminate()
        process.wait(timeout=30)


def decode_section() -> dict:
    """Greedy decoding with the cache (deepworks' step) against re-reading the prefix every step (what the decoder
    did before), the same untrained model: the same tokens, and the time. Untrained weights never write </s>, so
    every sentence runs to the step limit (2 x its length + 10): more steps than a trained model takes."""
    import gzip

    from deepworks.models.seq2seq import TransformerSeq2Seq

    path = SHARED_DATA / "multi30k" / "test_2016_flickr.de.gz"
    if not path.exists():
        return {"skipped": f"{path} is not here"}
    from deepworks.training.threads import free_cores

    torch.set_num_threads(free_cores())  # deepworks' own choice: the cores no other process is busy on (2 threads
    #                                      that wait for a core another process holds decoded in 18.6 s, 1 in 8 s)
    sources = [line.split() for line in gzip.open(path, "rt", encoding="utf-8").read().splitlines()][:1000]
    torch.manual_seed(0)
    model = TransformerSeq2Seq(7882, 5898, 256, 8, 3, 512, 0.1, 52, True).eval()
    rng = np.random.default_rng(0)
    order = sorted(range(len(sources)), key=lambda i: len(sources[i]))  # batches of similar length, as translate does
    batches = []
    for i in range(0, len(order), 128):
        chunk = [sources[j][:50] for j in order[i:i + 128]]
        width = max(len(s) for s in chunk)
        src = torch.zeros(len(chunk), width, dtype=torch.long)
        for r, s in enumerate(chunk):
            src[r, :len(s)] = torch.from_numpy(rng.integers(4, 7882, len(s)))
        batches.append(src)

    @torch.inference_mode()
    def greedy(src, cached: bool):
        enc = model.encode(src)
        state, prev, out = enc["state"], torch.full((len(src),), 2), []
        steps = int(min(2 * src.shape[1] + 10, 52))
        for _ in range(steps):
            if cached:
                logits, state, _ = model.step(prev, state, enc)
            else:
                prefix = torch.stack([torch.full((len(src),), 2)] + out, 1)
                logits = model.decode(prefix, enc)[0][:, -1]
            prev = logits.argmax(1)
            out.append(prev)
        return torch.stack(out, 1)

    result = {"sentences": len(sources), "batch": 128, "threads": torch.get_num_threads(), "load_before": load_average()}
    tokens = {}
    for cached in (True, False):
        t0 = time.perf_counter()
        tokens[cached] = [greedy(b, cached) for b in batches]
        result["cached_seconds" if cached else "prefix_seconds"] = round(time.perf_counter() - t0, 2)
    result["same_tokens"] = all(torch.equal(a, b) for a, b in zip(tokens[True], tokens[False]))
    result["speedup"] = round(result["prefix_seconds"] / result["cached_seconds"], 2)
    result["beam5"] = beam_timing(model, batches)
    print("decode", result, flush=True)
    return result


def beam_timing(model, batches: list[torch.Tensor], sentences: int = 200) -> dict:
    """Beam search of width 5 over the first `sentences` sources: the batched search (every sentence's beams in one
    decoder batch) against the same search called one sentence at a time, as translate did before."""
    from types import SimpleNamespace

    from deepworks.tasks.translate_face import TranslateFace

    task = SimpleNamespace(vocab=lambda side: {"<s>": 2, "</s>": 3})  # the ids the search needs
    src = torch.cat([b[:, :min(b.shape[1] for b in batches)] for b in batches])[:sentences]
    out, timing = {}, {"sentences": sentences, "beam": 5, "load_before": load_average()}
    with torch.inference_mode():
        for name, parts in (("batched", [src[i:i + 128] for i in range(0, len(src), 128)]),
                            ("one_at_a_time", [src[i:i + 1] for i in range(len(src))])):
            t0 = time.perf_counter()
            out[name] = [ids for part in parts for ids, _ in TranslateFace.beam_search(task, model, part, 5, 0.6, 24)]
            timing[f"{name}_seconds"] = round(time.perf_counter() - t0, 2)
    timing["same_tokens"] = out["batched"] == out["one_at_a_time"]
    timing["speedup"] = round(timing["one_at_a_time_seconds"] / timing["batched_seconds"], 2)
    return timing


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sections", default="raw,server,soak,decode")
    parser.add_argument("--seconds", type=int, default=4, help="wrk's time per concurrency step")
    args = parser.parse_args()
    sections = args.sections.split(",")
    if shutil.which("wrk") is None and ({"server", "soak"} & set(sections)):
        sys.exit("bench/serve.py needs wrk (Debian: apt-get install wrk).")
    result = {"benchmark": "serve", "machine": machine(), "calibration_before": calibrate(),
              "load_model": f"wrk, closed loop, 1 thread, {args.seconds:g} s per step after a 1 s warm-up, 127.0.0.1, "
                            f"one JSON image per request", "date": time.strftime("%Y-%m-%d %H:%M")}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        runs = make_runs(tmp / "runs") if {"raw", "server", "soak"} & set(sections) else {}
        if "raw" in sections:
            result["raw"] = raw_section(runs)
        if "server" in sections:
            result["server"] = server_section(runs, args.seconds, tmp)
        if "soak" in sections:
            result["soak"] = soak_section(runs, tmp)
            print("soak", result["soak"], flush=True)
    if "decode" in sections:
        result["decode"] = decode_section()
    result["calibration_after"] = calibrate()
    write("serve", merged(result, sections))


def merged(result: dict, sections: list[str]) -> dict:
    """A run of some sections replaces those in the last results and keeps the others, each section with the
    calibration and date of the run that measured it."""
    from common import RESULTS

    every = ("raw", "server", "soak", "decode")
    path = RESULTS / "serve.json"
    if set(every) <= set(sections) or not path.exists():
        return result
    old = json.loads(path.read_text())
    measured = {k: result[k] for k in ("machine", "calibration_before", "calibration_after", "date", "load_model")}
    for name in sections:
        old[name] = {**result[name], "measured": measured} if isinstance(result.get(name), dict) else result.get(name)
    return old


if __name__ == "__main__":
    main()
