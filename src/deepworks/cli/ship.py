"""`deepworks export`, `package`, `import` and `serve`: a run out of deepworks (as graphs, or as a folder that serves
without torch), a model into it, and a run over HTTP."""

from __future__ import annotations

import json

from ..serving.flags import add_exposure_flags, add_limit_flags, limits_from
from .common import add_command, add_json, add_run_command, add_runs_dir, help_of

SERVE_EXAMPLES = """examples:
  deepworks serve runs/photos-resnet                            http://127.0.0.1:8000, no token needed locally
  deepworks serve runs/photos-resnet runs/notes-gru --token s3cret-token --runtime onnx
  deepworks serve photos=runs/photos-resnet --host 0.0.0.0 --token s3cret-token

  curl -s localhost:8000/v1/models
  curl -s -F file=@cat.jpg -F top_k=2 localhost:8000/v1/models/photos-resnet/predict
  curl -s -H 'Content-Type: application/json' -d '{"inputs": "Dear ", "length": 100, "stream": true}' \\
       localhost:8000/v1/models/notes-gru/generate
"""


def add(sub) -> None:
    add_export(sub)
    add_package(sub)
    add_register(sub)
    add_import(sub)
    add_serve(sub)


def add_export(sub) -> None:
    p = add_run_command(sub, "export", cmd_export)
    p.add_argument("--format", default="onnx", choices=("onnx", "pt2", "torchscript"), help="[default: onnx]")
    p.add_argument("--out", help="the folder to write [default: RUN/export/FORMAT]")
    p.add_argument("--quantize", choices=("int8",), help="also write each ONNX graph in int8 (ONNX Runtime's static "
                   "quantisation, calibrated on the run's training examples; dynamic for a text model's step and a "
                   "translation's graphs), kept where it gives the same top answer for 99%% of the test split (a "
                   "translation's: the next word at each word of the first test references, about 2,000 words) "
                   "and, where the split has labels, loses at most 0.5 point of accuracy (image and sound "
                   "classification, text generation, translation); a detector's where its boxes' mAP on the test "
                   "split is at most a point lower")
    p.add_argument("--exporter", default="auto", choices=("auto", "dynamo", "legacy"),
                   help="ONNX: torch's dynamo exporter, the legacy TorchScript-based one, or auto: dynamo, and legacy "
                        "where dynamo fails or does not match torch [default: auto]")
    add_json(p, "the model card")


def add_package(sub) -> None:
    p = add_run_command(sub, "package", cmd_package, examples=PACKAGE_EXAMPLES)
    p.add_argument("--out", help="the folder to write (new, empty, or an earlier package) [default: RUN/package]")
    p.add_argument("--quantize", choices=("int8",), help="also package the int8 graph, served by default where "
                   "export --quantize int8 keeps it")
    add_json(p, "the package's manifest")


PACKAGE_EXAMPLES = """examples:
  deepworks package runs/photos-resnet --out photos-pkg
  cd photos-pkg && pip install -r requirements.txt && python -m deepworks_runtime      no torch needed
  docker build -t photos photos-pkg && docker run -p 8080:8080 -e DEEPWORKS_TOKEN=s3cret-token photos
  kubectl apply -f photos-pkg/k8s/          (or photos-pkg/kserve/inferenceservice.yaml)
"""


def add_register(sub) -> None:
    p = add_run_command(sub, "register", cmd_register)
    p.add_argument("--name", required=True, help="the model's name in MLflow's registry (a new version is added)")
    add_json(p, "the registered version")


def add_import(sub) -> None:
    p = add_command(sub, "import", cmd_import)
    p.add_argument("file", help="an .onnx file, a torch.export .pt2 program, or .safetensors weights of a deepworks "
                                "architecture (a run's model.safetensors or an export's weights.safetensors, which "
                                "say their settings; other weights with --model)")
    p.add_argument("--task", default="image", help="the task of the model [default: image, the only one for now]")
    p.add_argument("--classes", help="the classes of the outputs, in order: cat,dog,bird (read from a deepworks "
                                     "safetensors file when it says)")
    p.add_argument("--image-size", type=int, help="the side the model takes (read from the file when it says)")
    p.add_argument("--channels", type=int, help="1 or 3 (read from the file when it says)")
    p.add_argument("--normalise", "--normalize", dest="normalise", metavar="MEAN,STD",
                   help="per-channel normalisation of pixels in [0, 1]: MEAN,STD or M1,M2,M3,S1,S2,S3 [default: what a "
                        "deepworks safetensors file records, else 0,1 with a warning]")
    p.add_argument("--model", help="safetensors: the deepworks architecture the weights are for, at its default size: "
                                   "mlp, lenet, smallcnn, resnet, resnet18, airbench or efficientnet_lite0 [default: "
                                   "what a deepworks safetensors file records]")
    p.add_argument("--name", help="the run's name [default: FILE-imported]")
    add_runs_dir(p, "[default: runs]")


def add_serve(sub) -> None:
    from ..cards import BUILTIN_CARDS

    verbs = list(dict.fromkeys(v for card in BUILTIN_CARDS.values() for v in card.verbs))
    words = ", ".join(verbs[:-1]) + f" or {verbs[-1]}"
    p = add_command(sub, "serve", cmd_serve, examples=SERVE_EXAMPLES,
                    description=help_of(cmd_serve)["description"].replace("VERBS", words))
    p.add_argument("runs", nargs="+", metavar="RUN", help="run directories (or names inside runs/), or NAME=RUN")
    add_exposure_flags(p, 8000, "every request but the health probes")
    p.add_argument("--runtime", default="torch", choices=("torch", "onnx", "int8"),
                   help="onnx: answer from the run's ONNX export in ONNX Runtime (exported now if needed): image, "
                        "sound, detection and GAN runs, one graph each (text and translation, loops over graphs, "
                        "stay in torch); int8: image and sound classifiers and detectors from its int8 graph (export "
                        "--quantize int8, made now if needed; other one-graph runs from their float graph, text and "
                        "translation from torch, said at start) [default: torch]")
    add_limit_flags(p)


def cmd_export(args) -> int:
    """export a run to ONNX, torch.export (.pt2) or TorchScript, usable without deepworks

    Write a folder that works without deepworks: the model's graphs with their preprocessing inside (an image model
    takes uint8 pixels and returns probabilities), model.json (classes or vocabulary, inputs and outputs, metrics,
    the weights' sha256), the weights as safetensors with that card inside, and a README. Each graph is loaded back
    and checked against torch at another batch size before it is kept. Text and translation runs export their step
    (and encoder) graphs; the card says how to run the loop around them."""
    from ..exporting.exporter import export_run

    card = export_run(args.run, args.format, args.out, args.exporter, quantize=args.quantize)
    if args.json:
        print(json.dumps(card, indent=2))
        return 0
    for g in card["graphs"]:
        print(f"wrote {card['folder']}/{g['file']} ({g['exporter']}; matches torch to {g['max_abs_diff']:.1g} at batch "
              f"{g['verified']['batch']})" + (f"; dynamo failed: {g['fallback_reason']}" if g.get("fallback_reason") else ""))
        if g.get("int8"):
            print(int8_said(card["folder"], g))
    print(f"wrote {card['folder']}/model.json, weights.safetensors and README.md (how to use it without deepworks)")
    return 0


def int8_said(folder: str, graph: dict) -> str:
    """One line on a graph's int8 twin: kept (its size, answers and speed against the float graph), or why not."""
    from ..exporting.quantize import checked_words, slower, speed_words

    int8 = graph["int8"]
    if not int8["kept"]:
        return f"int8 not kept for {graph['file']}: {int8['reason']}"
    speed = int8.get("speed_vs_float")
    said = f"; {speed_words(speed)} on this machine" if speed else ""
    slow = "; serve the float graph where speed matters" if slower(speed) else ""
    found = checked_words(int8["checked"])
    kept = f"; {found}" if found else ""
    return (f"wrote {folder}/{int8['file']} (int8, {int8['bytes'] / 1e6:.2f} MB against "
            f"{int8['float_bytes'] / 1e6:.2f}{kept}{said}){slow}")


def cmd_package(args) -> int:
    """package a run as a folder that serves it without torch: ONNX, a small runtime, a Dockerfile, Kubernetes

    Write a folder that serves the run anywhere Python runs, without torch or deepworks: the ONNX graph (and its int8
    twin with --quantize int8) with its card, a runtime that answers the same routes as `deepworks serve` (token,
    limits, errors, metrics, health) with numpy, onnxruntime, fastapi and uvicorn, requirements.txt, a Dockerfile
    (slim Python, non-root, a health check), Kubernetes manifests (a Deployment and a Service) and a KServe
    InferenceService speaking V2. package.json records each model file's sha256, which the runtime checks."""
    from pathlib import Path

    from ..exporting.exporter import read_card
    from ..exporting.package import package_run

    manifest = package_run(args.run, args.out, args.quantize)
    if args.json:
        print(json.dumps(manifest, indent=2))
        return 0
    folder = manifest["folder"]
    int8 = read_card(Path(folder) / "model")["graphs"][0].get("int8") or {}
    if args.quantize and not int8.get("kept"):
        print(f"int8 not kept: {int8.get('reason')}; the package serves the float graph")
    print(f"wrote {folder}: model/ ({', '.join(n.split('/')[-1] for n in manifest['files'])}), deepworks_runtime/, "
          f"requirements.txt, Dockerfile, k8s/, kserve/ and README.md")
    print(f"serve it without torch: cd {folder} && pip install -r requirements.txt && python -m deepworks_runtime "
          f"(it serves the {manifest['runtime']} graph; the README says how to build and run the image)")
    return 0


def cmd_register(args) -> int:
    """register a run's model in MLflow's registry, as a new version with its weights' sha256

    Add the run's weights to MLflow's model registry as a new version of NAME, tagged with their sha256, in
    $MLFLOW_TRACKING_URI or MLflow's default store in this folder (SQLite: mlflow.db). A run trained without
    --track mlflow is logged to MLflow first (its settings, test metrics, report, card and weights). The same
    weights twice under NAME are refused."""
    from ..training.tracking import register

    done = register(args.run, args.name)
    if args.json:
        print(json.dumps(done, indent=2))
    else:
        print(f"registered {args.run} as {done['name']} version {done['version']} (weights sha256 "
              f"{done['weights_sha256'][:16]}...) in {done['tracking_uri']}; mlflow ui shows it")
    return 0


def cmd_import(args) -> int:
    """wrap a classifier trained elsewhere (ONNX, .pt2, safetensors) in a run

    Make a run directory from a model made elsewhere, so that evaluate, predict, export and serve work on it (and
    attack and explain, except on ONNX, which has no gradients). The model takes float images (N, C, H, W),
    normalised per channel with --normalise, and returns one score per class.

    An .onnx or .pt2 file carries its own graph: give --classes, and --image-size or --channels where its input
    leaves them open. A .safetensors file holds the weights of a deepworks architecture. The
    safetensors files deepworks writes (a run's model.safetensors, an export's weights.safetensors) record the
    architecture, classes, image size, channels and normalisation in their metadata, and the import uses them, so
    the file alone is enough; a flag that says otherwise wins, with a warning. Other safetensors files need --model,
    --classes, --image-size and --channels, and are built at the architecture's default depth and width (a
    deepworks file's recorded ones are used): weights of another size are refused as not fitting. Where neither
    --normalise nor the file says the normalisation, pixels in [0, 1] are assumed (mean 0, std 1), with a warning."""
    from ..exporting.importer import import_model

    trained = import_model(args.file, args.task, args.classes, args.image_size, args.normalise, args.channels,
                           args.model, args.name, args.runs_dir)
    meta = trained.task.meta
    print(f"wrote {trained.run.path}: {len(meta['classes'])} classes, {meta['channels']}x{meta['image_size']}x"
          f"{meta['image_size']} images. Try: deepworks predict {trained.run.path} IMAGE; deepworks evaluate "
          f"{trained.run.path} --data LABELLED-FOLDER; deepworks serve {trained.run.path}")
    return 0


def cmd_serve(args) -> int:
    """serve runs over HTTP: friendly JSON routes and the Open Inference Protocol (V2)

    Serve trained runs on FastAPI + uvicorn until Ctrl-C (requests in flight are finished). Each run is a model named
    after its folder (or NAME=RUN): GET /v1/models lists them with their cards, POST /v1/models/NAME/VERB uses one
    (VERBS, as its task does), and the V2 routes (/v2/models/NAME/infer,
    /v2/health/ready ...) answer KServe, Triton and MLServer clients. Image and GAN requests are micro-batched when
    they arrive together. Prometheus metrics at /metrics; the OpenAPI schema at /openapi.json."""
    import os

    from ..serving import serve

    limits = limits_from(args)
    token = args.token or os.environ.get("DEEPWORKS_TOKEN") or None
    serve(args.runs, args.host, args.port, token, args.runtime, limits, args.insecure, args.log_level)
    return 0
