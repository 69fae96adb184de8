"""A package made by `deepworks package`, installed into a fresh virtual environment without torch, against
`deepworks serve` of the same run.

    python bench/package.py     # about a minute on 2 cores

The default run (LeNet-5 on scikit-learn's digits, 3 epochs) is packaged; the package's requirements are installed
into a new virtual environment (no pip inside: only what the runtime needs), with pip's configured indexes. Measured:
the environment's size, the install's time, the time from starting each server to its first 200 from
/v2/health/ready (median of 5 starts), and a lone client's requests a second over 2 s (one connection, an image
upload each), the two servers taking turns. Goals (issue 35): the runtime installs in <= 200 MB and is ready
<= 2 s after start. Writes bench/results/package.json.
"""

from __future__ import annotations

import io
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import calibrate, machine, write  # noqa: E402

import deepworks as dw  # noqa: E402


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(command: list[str], cwd: Path) -> tuple[subprocess.Popen, str, float]:
    """A server started now; (process, url, seconds until /v2/health/ready first answered 200)."""
    import httpx

    port = free_port()
    t0 = time.perf_counter()
    process = subprocess.Popen([*command, "--port", str(port)], cwd=cwd, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL, env={**os.environ, "DEEPWORKS_THREADS": "2"})
    url = f"http://127.0.0.1:{port}"
    while process.poll() is None:
        try:
            if httpx.get(url + "/v2/health/ready", timeout=1).status_code == 200:
                return process, url, time.perf_counter() - t0
        except httpx.TransportError:
            pass
        time.sleep(0.01)
    raise RuntimeError(f"{command} exited with {process.returncode}")


def requests_per_s(url: str, name: str, image: bytes, seconds: float = 2.0) -> float:
    import httpx

    with httpx.Client() as client:
        client.post(f"{url}/v1/models/{name}/predict", files={"file": image})
        done, t0 = 0, time.perf_counter()
        while time.perf_counter() - t0 < seconds:
            assert client.post(f"{url}/v1/models/{name}/predict", files={"file": image}).status_code == 200
            done += 1
        return done / (time.perf_counter() - t0)


def fresh_environment(folder: Path, requirements: Path) -> dict:
    """A virtual environment without pip, the runtime's requirements installed into it by this pip."""
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(folder)], check=True)
    python = folder / "bin" / "python"
    subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "-q",
                    "--disable-pip-version-check", "-r", str(requirements)], check=True)
    seconds = time.perf_counter() - t0
    size = sum(f.stat().st_size for f in folder.rglob("*") if f.is_file()) / 2 ** 20
    has_torch = subprocess.run([str(python), "-c", "import torch"], capture_output=True).returncode == 0
    return {"python": str(python), "install_s": round(seconds, 1), "size_mb": round(size, 1), "torch": has_torch}


def main() -> None:
    from PIL import Image

    before = calibrate()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        trained = dw.train(epochs=3, runs_dir=str(root / "runs"), name="digits", progress=False, baseline=False)
        package = root / "package"
        dw.package(trained.run.path, package)
        env = fresh_environment(root / "venv", package / "requirements.txt")
        buffer = io.BytesIO()
        Image.new("L", (64, 64), 128).save(buffer, format="PNG")
        servers = {"package": [env["python"], "-m", "deepworks_runtime", str(package)],
                   "deepworks serve": [sys.executable, "-m", "deepworks", "serve", str(trained.run.path)]}
        ready = {name: [] for name in servers}
        rate = {name: [] for name in servers}
        for _ in range(5):
            for name, command in servers.items():
                process, url, seconds = start(command, package)
                ready[name].append(seconds)
                rate[name].append(requests_per_s(url, "digits", buffer.getvalue(), 1.0))
                process.terminate()
                process.wait()
    result = {
        "what": "deepworks package: the runtime in a fresh virtual environment without torch, against deepworks "
                "serve of the same run (LeNet-5, digits)",
        "environment": {k: v for k, v in env.items() if k != "python"},
        "ready_s": {name: round(statistics.median(v), 2) for name, v in ready.items()},
        "lone_client_requests_per_s": {name: round(statistics.median(v), 1) for name, v in rate.items()},
        "goals": {"size_mb_at_most": 200, "ready_s_at_most": 2.0},
        "met": {"size": env["size_mb"] <= 200 and not env["torch"], "ready": statistics.median(ready["package"]) <= 2},
        "machine": machine(), "calibration": {"before": before, "after": calibrate()},
    }
    ready_s = result["ready_s"]
    result["ratio_ready_package_vs_serve"] = round(ready_s["deepworks serve"] / ready_s["package"], 2)
    print(result)
    write("package", result)


if __name__ == "__main__":
    main()
