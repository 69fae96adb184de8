"""`deepworks package`: a folder that serves a run without torch, answering as `deepworks serve` does; its model files
checked by sha256; its Dockerfile and its manifests valid for Kubernetes and KServe; and its runtime installed into a
fresh virtual environment with no torch."""

from __future__ import annotations

import base64
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from fastapi.testclient import TestClient
from PIL import Image

from deepworks.errors import DeepworksError
from test_serve import free_port

TOKEN = "package-token-123"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
BLOCK_TORCH = "import sys; sys.modules['torch'] = None; import runpy; runpy.run_module('deepworks_runtime', " \
              "run_name='__main__')"


@pytest.fixture(scope="module")
def package(use_runs, tmp_path_factory) -> Path:
    from deepworks.exporting.package import package_run

    out = tmp_path_factory.mktemp("package") / "digits-package"
    package_run(use_runs["img"], out)
    return out


def start_runtime(python: str, folder: Path, *flags: str, block_torch: bool = False):
    """The package's runtime in its own process (torch made unimportable with block_torch); (url, process) once it
    listens."""
    port = free_port()
    head = [python, "-c", BLOCK_TORCH] if block_torch else [python, "-m", "deepworks_runtime"]
    process = subprocess.Popen([*head, str(folder), "--port", str(port), "--log-level", "info", *flags], cwd=folder,
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                               env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"})
    lines = []
    for line in process.stderr:
        lines.append(line)
        if "Uvicorn running on" in line:
            return f"http://127.0.0.1:{port}", process
    raise AssertionError("the package's runtime did not start:\n" + "".join(lines))


def png(seed: int, size: int = 20) -> bytes:
    pixels = np.random.default_rng(seed).integers(0, 256, (size, size, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def requests_both_answer(size: int) -> list[tuple[str, str, dict]]:
    """(method, route, JSON body) of requests put to both servers: uploads in base64, an array, a V2 tensor, and
    mistakes."""
    batch = np.random.default_rng(3).integers(0, 256, (2, size, size, 1), dtype=np.uint8)
    v2 = {"inputs": [{"name": "images", "shape": list(batch.shape), "datatype": "UINT8",
                      "data": batch.reshape(-1).tolist()}]}
    return [("POST", "/v1/models/digits/predict", {"inputs": [{"base64": base64.b64encode(png(s)).decode()}
                                                              for s in range(3)], "top_k": 3}),
            ("POST", "/v1/models/digits/predict", {"inputs": batch[0, :, :, 0].tolist()}),
            ("POST", "/v2/models/digits/infer", v2),
            ("POST", "/v1/models/digits/predict", {"inputs": "/etc/passwd"}),
            ("POST", "/v1/models/digits/predict", {"inputs": [{"base64": "bm90IGFuIGltYWdl"}]}),
            ("POST", "/v1/models/digits/predict", {"inputs": [[1, 2], [3]]}),
            ("POST", "/v1/models/digits/predict", {"inputs": [[0] * size] * size, "top_k": 0}),
            ("GET", "/v2/models/digits", None)]


def same_answers(a, b) -> bool:
    """Equal JSON, numbers to 1e-6."""
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same_answers(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(same_answers(x, y) for x, y in zip(a, b))
    if isinstance(a, float) or isinstance(b, float):
        return abs(a - b) <= 1e-6 + 1e-9
    return a == b


def test_the_package_answers_as_deepworks_serve_does_with_torch_unimportable(package, use_runs):
    import httpx

    from deepworks.serving import Limits, build_app

    url, process = start_runtime(sys.executable, package, "--name", "digits", "--token", TOKEN, block_torch=True)
    try:
        with TestClient(build_app([f"digits={use_runs['img']}"], TOKEN, "torch", Limits())) as full:
            size = full.get("/v1/models/digits", headers=AUTH).json()["inputs"][0]["shape"][1]
            for method, route, body in requests_both_answer(size):
                want = full.request(method, route, json=body, headers=AUTH)
                got = httpx.request(method, url + route, json=body, headers=AUTH)
                assert got.status_code == want.status_code, (route, got.text, want.text)
                got_json, want_json = got.json(), want.json()
                if "platform" in got_json:  # the model's metadata: the runtime is the one difference
                    platforms = got_json.pop("platform"), want_json.pop("platform")
                    assert platforms == ("deepworks_onnx", "deepworks_torch")
                assert same_answers(got_json, want_json), (route, got.text, want.text)
            card = full.get("/v1/models/digits", headers=AUTH).json()
        packaged = httpx.get(url + "/v1/models/digits", headers=AUTH).json()
        assert {**packaged, "runtime": "torch"} == card and packaged["runtime"] == "onnx"
        upload = httpx.post(url + "/v1/models/digits/predict", files={"file": png(5)}, headers=AUTH).json()
        assert len(upload["outputs"][0]["predictions"]) == 5
        assert httpx.get(url + "/v1/models").status_code == 401  # the token guards it
        assert httpx.get(url + "/v2/health/ready").json() == {"ready": True}  # the probes answer without one
        assert 'route="/v1/models/{name}/{verb}"' in httpx.get(url + "/metrics", headers=AUTH).text
        health = dockerfile_instructions(package)["HEALTHCHECK"]  # the image's health check, run on this server
        command = json.loads(health[health.index("CMD") + 3:].replace(":8080/", url[len("http://127.0.0.1"):] + "/"))
        assert subprocess.run([sys.executable if c == "python" else c for c in command]).returncode == 0
    finally:
        process.kill()
        process.wait()


def test_a_changed_or_damaged_package_is_refused_before_it_is_served(package, tmp_path):
    import shutil

    from deepworks.digests import sha256_of
    from deepworks.serving.packaged import PackagedModel

    copy = tmp_path / "copy"
    shutil.copytree(package, copy)
    assert PackagedModel(copy).card()["name"] == "img"
    manifest = json.loads((copy / "package.json").read_text())
    card_path, graph = copy / "model" / "model.json", copy / "model" / "classifier.onnx"
    card, graph_bytes = json.loads(card_path.read_text()), graph.read_bytes()

    def changed(card_change=None, graph_bytes_now=None, **manifest_change):
        """The copy with its card, graph or manifest changed, the manifest's sha256s made to match."""
        card_path.write_text(json.dumps({**card, **(card_change or {})}))
        graph.write_bytes(graph_bytes_now or graph_bytes)
        files = {name: sha256_of(copy / name) for name in manifest["files"]}
        (copy / "package.json").write_text(json.dumps({**manifest, "files": files, **manifest_change}))
        return copy

    graph.write_bytes(graph_bytes[:-1] + b"\0")
    with pytest.raises(DeepworksError, match="is not the file the package was made with: its sha256"):
        PackagedModel(copy)
    for damage, message in (
            (dict(card_change={"classes": ["a", "b", "c"]}), "does not describe its graph: it says 28x28x1 images and "
                                                             "3 classes"),
            (dict(card_change={"preprocessing": {"resize": [10 ** 6] * 2}}), "does not describe a model this runtime"),
            (dict(card_change={"graphs": []}), "does not describe a model this runtime serves \\(IndexError"),
            (dict(graph_bytes_now=b"not onnx"), "ONNX Runtime cannot load"),
            (dict(files=["model/model.json"]), "is not among the model files"),
            (dict(name="a/b"), "The package's name must be a name of letters"),
            (dict(format="other"), "not a deepworks package's manifest")):
        with pytest.raises(DeepworksError, match=message):
            PackagedModel(changed(**damage))


def test_the_runtime_says_what_is_wrong_on_its_command_line(package):
    for flags, message in ((["--host", "0.0.0.0"], "lets other machines reach the server, so it needs --token"),
                           (["--max-items", "0"], "--max-items must be at least 1"),
                           (["--name", "a/b"], "--name must be a name of letters"),
                           (["--threads", "100000"], "--threads must be from 1 to 256"),
                           (["--runtime", "int8"], "this package has no int8 graph")):
        done = subprocess.run([sys.executable, "-c", BLOCK_TORCH, str(package), *flags], capture_output=True,
                              text=True, cwd=package, env={k: v for k, v in os.environ.items()
                                                           if k != "DEEPWORKS_TOKEN"})
        assert done.returncode == 2 and message in done.stderr and "Traceback" not in done.stderr, done.stderr


def test_package_refuses_a_task_it_cannot_serve_and_a_folder_of_other_files(use_runs, tmp_path):
    from deepworks.exporting.package import package_run

    with pytest.raises(DeepworksError, match="deepworks package serves image runs so far"):
        package_run(use_runs["txt"], tmp_path / "text")
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("mine")
    with pytest.raises(DeepworksError, match="holds other files"):
        package_run(use_runs["img"], tmp_path / "mine")
    (tmp_path / "mine" / "package.json").write_text('{"name": "my-node-app"}')  # npm's, not a package of ours
    with pytest.raises(DeepworksError, match="holds other files"):
        package_run(use_runs["img"], tmp_path / "mine")
    assert sorted(p.name for p in (tmp_path / "mine").iterdir()) == ["notes.txt", "package.json"]


def test_arrays_of_another_size_are_resized_as_torch_resizes_them():
    from deepworks.data.arrays import resize
    from deepworks.data.decode import resize_like_torch

    rng = np.random.default_rng(0)
    for height, width, size in ((8, 8, 28), (5, 7, 32), (64, 48, 28), (300, 200, 64), (28, 28, 28)):
        x = rng.integers(0, 256, (3, 3, height, width), dtype=np.uint8)
        apart = np.abs(resize(x, size).astype(int) - resize_like_torch(x, size).astype(int))
        assert apart.max() <= 1 and apart.mean() < (0.03 if size > height else 0.001), (height, width, apart.mean())


def test_the_manifests_are_valid_kubernetes_and_kserve_resources(package):
    import kubernetes_validate

    resources = {p.name: yaml.safe_load(p.read_text()) for p in sorted((package / "k8s").glob("*.yaml"))}
    assert set(resources) == {"deployment.yaml", "service.yaml"}
    for resource in resources.values():
        kubernetes_validate.validate(resource, "1.30.0", strict=True)
    deployment = resources["deployment.yaml"]
    pod = deployment["spec"]["template"]["spec"]
    assert pod["containers"][0]["readinessProbe"]["httpGet"]["path"] == "/v2/health/ready"
    assert pod["containers"][0]["securityContext"]["runAsNonRoot"] is True
    inference = yaml.safe_load((package / "kserve" / "inferenceservice.yaml").read_text())
    kserve_problems = kserve_check(inference)
    assert kserve_problems == [], kserve_problems
    predictor = inference["spec"]["predictor"]
    predictor["replicas"], predictor["containers"][0]["port"] = 2, 8080  # misspelt fields: the checks see them
    assert sorted(kserve_check(inference)) == [".spec.predictor.containers[0]: Additional properties are not allowed "
                                               "('port' was unexpected)",
                                               ".spec.predictor.replicas: no such field in V1beta1PredictorSpec"]
    pod["containers"][0]["port"] = 8080
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, "1.30.0", strict=True)
    docker = dockerfile_instructions(package)
    assert docker["FROM"] == "python:3.11-slim" and docker["USER"] == "10001" and docker["EXPOSE"] == "8080"
    assert json.loads(docker["ENTRYPOINT"])[:3] == ["python", "-m", "deepworks_runtime"]
    copied = [name for line in (package / "Dockerfile").read_text().splitlines() if line.startswith("COPY")
              for name in line.split()[1:-1]]
    assert len(copied) == 5 and all((package / name).exists() for name in copied), copied
    assert not any("torch" in line for line in (package / "requirements.txt").read_text().splitlines())


def dockerfile_instructions(package: Path) -> dict[str, str]:
    """The Dockerfile's instructions as Docker reads them (continued lines joined, comments dropped): {name: the
    last one's arguments}."""
    lines = [line for line in (package / "Dockerfile").read_text().replace("\\\n", "").splitlines()
             if line.strip() and not line.startswith("#")]
    return {line.split(" ", 1)[0]: line.split(" ", 1)[1] for line in lines}


def kserve_check(resource: dict) -> list[str]:
    """Every field of an InferenceService checked against KServe's own API models (the kserve SDK's generated
    classes, read from its installed files without importing the SDK, whose server needs packages the tests do not
    install), and each Kubernetes object inside it (a container, a volume) against Kubernetes' schema, strictly."""
    import importlib.util

    spec = importlib.util.find_spec("kserve")
    if spec is None:
        pytest.skip("KServe's SDK is not installed (.ci/run installs it: pip install --no-deps kserve)")
    models = Path(spec.submodule_search_locations[0]) / "models"
    return check_against(resource, "V1beta1InferenceService", models, "")


def check_against(value, kind: str, models: Path, where: str) -> list[str]:
    import re

    if kind.startswith("list["):
        return [p for i, v in enumerate(value) for p in check_against(v, kind[5:-1], models, f"{where}[{i}]")]
    if kind.startswith("dict("):
        return [p for k, v in value.items() for p in check_against(v, kind[5:-1].split(", ", 1)[1], models, where)]
    if kind in ("str", "int", "bool", "float", "object"):
        return [] if kind == "object" or isinstance(value, {"str": str, "int": int, "bool": bool,
                                                            "float": (int, float)}[kind]) else [f"{where}: not {kind}"]
    source = models / (re.sub(r"(?<!^)(?=[A-Z])", "_", kind).lower() + ".py")  # V1beta1PredictorSpec: its module
    if not source.exists():
        return kubernetes_check(value, kind, where)
    text = source.read_text()
    types = dict(re.findall(r"'(\w+)': '([^']+)'", text.split("openapi_types = {", 1)[1].split("}", 1)[0]))
    names = dict(re.findall(r"'(\w+)': '(\w+)'", text.split("attribute_map = {", 1)[1].split("}", 1)[0]))
    by_json = {json_name: types[attr] for attr, json_name in names.items()}
    if not isinstance(value, dict):
        return [f"{where}: expected an object ({kind})"]
    return [p for k, v in value.items() for p in (check_against(v, by_json[k], models, f"{where}.{k}") if k in by_json
                                                  else [f"{where}.{k}: no such field in {kind}"])]


def kubernetes_check(value, kind: str, where: str) -> list[str]:
    """A Kubernetes object (V1Container, V1ObjectMeta ...) against Kubernetes' own schema, strictly."""
    import jsonschema
    import kubernetes_validate

    folder = Path(kubernetes_validate.__file__).parent / "kubernetes-json-schema" / "v1.30.0-local-strict"
    definitions = json.loads((folder / "_definitions.json").read_text())["$defs"]
    found = [name for name in definitions if kind.startswith("V1") and name.endswith(".v1." + kind[2:])]
    if len(found) != 1:
        return [f"{where}: no single Kubernetes definition for {kind} ({found})"]
    schema = {"$ref": f"#/$defs/{found[0]}", "$defs": definitions}
    errors = jsonschema.Draft202012Validator(schema).iter_errors(value)
    return [f"{where}: {e.message}" for e in errors]


def local_index() -> list[str] | None:
    """pip's local package indexes (file:// URLs that exist), for an install that needs no network; None without."""
    done = subprocess.run([sys.executable, "-m", "pip", "config", "list"], capture_output=True, text=True)
    urls = [u for line in done.stdout.splitlines() if "index-url" in line
            for u in line.split("=", 1)[1].strip("'\" ").split() if u.startswith("file://")]
    urls = [u for u in urls if Path(u[len("file://"):]).is_dir()]
    return urls or None


def test_the_runtime_installs_into_a_fresh_environment_without_torch_and_answers_the_same(package, use_runs, tmp_path):
    indexes = local_index()
    if indexes is None:
        pytest.skip("no local package index for pip (a file:// index): installing the runtime offline needs one")
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = str(venv / "bin" / "python")
    index_flags = ["--index-url", indexes[0], *[f for u in indexes[1:] for f in ("--extra-index-url", u)]]
    subprocess.run([sys.executable, "-m", "pip", "--python", python, "install", "-q", "--disable-pip-version-check",
                    *index_flags, "-r", str(package / "requirements.txt")], check=True)
    site = next((venv / "lib").glob("python*/site-packages"))
    size_mb = sum(f.stat().st_size for f in site.rglob("*") if f.is_file()) / 2 ** 20
    assert size_mb <= 200, f"the runtime's packages take {size_mb:.0f} MB"
    assert subprocess.run([python, "-c", "import torch"], capture_output=True).returncode != 0
    url, process = start_runtime(python, package, "--name", "digits")
    try:
        import httpx

        import deepworks as dw

        answer = httpx.post(url + "/v1/models/digits/predict", files={"file": png(7)}).json()["outputs"][0]
        assert same_answers(answer["predictions"], dw.load(use_runs["img"]).predict(png(7))[0]["predictions"])
    finally:
        process.kill()
        process.wait()
