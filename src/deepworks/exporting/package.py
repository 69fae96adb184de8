"""`deepworks package RUN`: a folder that serves a run anywhere, without torch and without deepworks.

What it holds: the run's ONNX export (model/: the graph, its int8 twin with --quantize int8, and the card), a small
runtime (deepworks_runtime/: deepworks' own torch-free serving modules, copied unchanged, so that the routes, the
token, the limits, the errors, the metrics and the health probes are those of `deepworks serve`), requirements.txt
(numpy, onnxruntime, fastapi, uvicorn, Pillow, python-multipart, prometheus-client, orjson), a Dockerfile, Kubernetes
manifests (a Deployment and a Service) and a KServe InferenceService, a README, and package.json: the manifest,
with each model file's sha256, which the runtime checks before it loads a graph. Built like BentoML's bentos and
Ultralytics' exports: one folder that a container build, a cluster, or `python -m deepworks_runtime` takes as is.
"""

from __future__ import annotations

import datetime
import re
import shutil
from pathlib import Path

from .._version import __version__
from ..errors import DeepworksError
from ..digests import sha256_of
from ..serving.packaged import MANIFEST, PACKAGE_FORMAT, USES, read_manifest
from ..run import atomic_write_json, atomic_write_text
from .manifests import dockerfile, kubernetes_manifests, readme

SOURCE = Path(__file__).resolve().parents[1]  # the deepworks package, whose torch-free modules the runtime copies
RUNTIME_MODULES = ("errors.py", "_version.py", "digests.py", "usage.py", "sessions.py", "data/decode.py", "serving/app.py",
                   "serving/batcher.py", "serving/flags.py", "serving/metrics.py", "serving/net.py",
                   "serving/packaged.py", "serving/reading.py", "serving/requests.py", "serving/served.py",
                   "serving/v2.py")
REQUIREMENTS = ("numpy>=1.24", "onnxruntime>=1.17", "fastapi>=0.110", "uvicorn>=0.29", "pillow>=10.0",
                "python-multipart>=0.0.9", "prometheus-client>=0.20", "orjson>=3.9")
RUNTIME = "deepworks_runtime"


def package_run(run_path: str | Path, out: str | Path | None = None, quantize: str | None = None,
                runs_dir: str | Path = "runs") -> dict:
    """Write the package of a run (see the module's docstring); returns its manifest with 'folder' set."""
    from ..api.trained import load
    from .exporter import export_run

    trained = load(run_path, device="cpu", runs_dir=runs_dir)
    task = trained.cfg.task
    if task not in USES:
        raise DeepworksError(f"deepworks package serves {' and '.join(USES)} runs so far, without torch; "
                             f"'{trained.run.path}' is {trained.face.kind} run. Serve it with `deepworks serve`, or "
                             f"export its graphs with `deepworks export`.")
    folder = Path(out) if out is not None else trained.run.path / "package"
    clear_previous(folder)
    card = export_run(trained.run.path, "onnx", folder / "model", quantize=quantize, runs_dir=runs_dir)
    for leftover in ("weights.safetensors", "README.md"):  # the graphs hold the weights; the package has its README
        (folder / "model" / leftover).unlink(missing_ok=True)
    copy_runtime(folder / RUNTIME)
    manifest = write_manifest(folder, trained, card)
    (folder / "requirements.txt").write_text("\n".join(REQUIREMENTS) + "\n")
    (folder / "Dockerfile").write_text(dockerfile(manifest))
    (folder / ".dockerignore").write_text("**/__pycache__\n*.pyc\nvenv/\n.venv/\n")  # (the README's venv is here)
    for name, text in kubernetes_manifests(manifest).items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text(text)
    atomic_write_text(folder / "README.md", readme(manifest))
    return {**manifest, "folder": str(folder)}


def clear_previous(folder: Path) -> None:
    """The package's folder, new, empty, or an earlier package of which the runtime and model are removed (a file
    of a graph no longer made must not stay); any other folder with files in it is refused rather than mixed
    into."""
    if folder.exists() and not folder.is_dir():
        raise DeepworksError(f"--out '{folder}' is a file. Expected a folder to write the package into (a new one "
                             f"is made).")
    if folder.is_dir() and any(folder.iterdir()):
        try:
            read_manifest(folder)
        except DeepworksError:
            raise DeepworksError(f"--out '{folder}' holds other files. Expected a new or empty folder, or an "
                                 f"earlier package (its {MANIFEST} says {PACKAGE_FORMAT}); pass --out another "
                                 f"folder.") from None
        for part in ("model", RUNTIME, "k8s", "kserve"):
            shutil.rmtree(folder / part, ignore_errors=True)


def copy_runtime(target: Path) -> None:
    """deepworks' torch-free serving modules under deepworks_runtime/, in their own layout (their relative
    imports work unchanged), with the package's entry point."""
    for module in RUNTIME_MODULES:
        (target / module).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(SOURCE / module, target / module)
    (target / "__init__.py").write_text(f'"""deepworks {__version__}\'s serving runtime, without torch: python -m '
                                        f'{RUNTIME} --help."""\n')
    (target / "data" / "__init__.py").write_text('"""Decoding inputs (data/decode.py)."""\n')
    (target / "serving" / "__init__.py").write_text('"""The routes of deepworks serve, and a package\'s model '
                                                    '(packaged.py)."""\n')
    (target / "__main__.py").write_text("from .serving.packaged import main\n\nraise SystemExit(main())\n")


def write_manifest(folder: Path, trained, card: dict) -> dict:
    """package.json: what the package is, each model file's sha256, and the versions of its requirements it was
    checked with here."""
    from importlib.metadata import version

    files = sorted(p.relative_to(folder).as_posix() for p in (folder / "model").iterdir() if p.is_file())
    graph = card["graphs"][0]
    tested = {r.split(">=")[0]: version(r.split(">=")[0]) for r in REQUIREMENTS}
    manifest = {"format": PACKAGE_FORMAT, "name": trained.run.name, "task": trained.cfg.task,
                "made": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
                "deepworks_version": __version__,
                "runtime": "int8" if (graph.get("int8") or {}).get("kept") else "onnx",
                "files": {name: sha256_of(folder / name) for name in files}, "requirements": list(REQUIREMENTS),
                "made_with": tested, "resource_name": resource_name(trained.run.name)}
    atomic_write_json(folder / MANIFEST, manifest)
    return manifest


def resource_name(run: str) -> str:
    """The run's name as Kubernetes names a Service (a DNS label that starts with a letter: lower case, digits and
    '-', at most 40 here, so that KServe's derived names stay within 63)."""
    name = re.sub(r"[^a-z0-9-]+", "-", run.lower()).strip("-")[:40].strip("-")
    return name if name[:1].isalpha() else f"m-{name}".rstrip("-")
