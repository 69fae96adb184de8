"""A trained model with its run: load it, use it through its task's face, evaluate it, list the runs.

`load` rebuilds a model from its run directory (safetensors weights checked against the sha256 model.json recorded,
no pickles); `Trained` uses it: `trained(inputs, **options)` (or `.use`) is every task's one verb, and `predict`,
`detect`, `segment`, `restore`, `generate`, `translate`, `sample` are its names for the task that has them.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from ..cards import BUILTIN_CARDS
from ..config import Config
from ..errors import ConfigError, DeepworksError
from ..exporting.runtime import imported_model
from ..usage import check_options
from ..model_files import check_recorded_sha256
from ..models import prefer_channels_last
from ..registry import get_card, get_task
from ..run import Run, first_line, safetensors_shapes
from ..training import threads
from ..training.engine import resolve_device


GRADIENT_TOOLS = ("attack", "fool", "explain", "visualize", "represent")


class Trained:
    """A trained model with its run: predict, evaluate, and the results of training."""

    def __init__(self, run: Run, cfg: Config, task, model: torch.nn.Module, device: torch.device):
        self.run, self.cfg, self.task, self.model, self.device = run, cfg, task, model, device
        self.face = task.make_face()  # the use of the model (tasks/face.py): what every verb below calls
        self.face.run_folder = run.path
        self._serving = None
        self.imported = None  # for a model made elsewhere (deepworks import): its kind, file and origin

    @property
    def results(self) -> dict:
        return self.run.read_json(self.run.results_file) if self.run.results_file.exists() else {}

    @property
    def classes(self) -> list[str]:
        return self.task.meta.get("classes", [])

    # --- use: every task's one inference face (inference.py), as the server and the CLI call it ----------
    @property
    def serving(self):
        """What the task's face runs (face.serving_model: the model with its pre- and post-processing), made once."""
        if self._serving is None:
            self._serving = self.face.serving_model(self.model).to(self.device)
        return self._serving

    def decoded(self, inputs=None, **options) -> tuple[list, dict]:
        """(the task's items, the checked options): what infer and stream both start from."""
        face = self.face
        options = check_options(face.use_options, options, face.verb)
        return face.decode_inputs(inputs, options), options

    def infer(self, inputs=None, **options) -> tuple[list, dict]:
        """(native answers, the checked options): the task's decode_inputs and infer."""
        items, options = self.decoded(inputs, **options)
        return self.face.infer(self.serving, items, self.device, options), options

    def __call__(self, inputs=None, **options) -> list[dict]:
        """Use the model as its task does, with JSON-able answers, exactly as `deepworks serve` sends them:
        trained(["cat.jpg", pil_image, array]), trained("Dear ", length=100), trained(n=4, seed=1)."""
        results, options = self.infer(inputs, **options)
        return [self.face.encode_result(r, options) for r in results]

    def use(self, inputs=None, **options) -> list[dict]:
        """The one verb of every task (`deepworks use RUN INPUTS`): the same as calling the model."""
        return self(inputs, **options)

    def predict(self, images, top_k: int | None = None) -> list[dict]:
        """Image runs: the top-k classes of images: file paths (or folders), bytes, PIL images or numpy arrays /
        tensors of pixels ((H, W), (H, W, C), or a batch (N, H, W, C) / (N, C, H, W); uint8, or floats in [0, 1]).
        Audio runs: the top-k classes of clips: audio files (or folders), their bytes, or arrays of samples."""
        self.require("predict")
        return self(images, top_k=top_k)

    def classify(self, texts, top_k: int | None = None, explain: bool = False) -> list[dict]:
        """Text classification runs: the top-k classes of a text or a list of texts; explain=True adds each token's
        share in the likeliest class (Integrated Gradients; at most 64 texts a call)."""
        self.require("classify")
        return self(texts, top_k=top_k, explain=explain)

    def transcribe(self, recordings, beam: int | None = None, lm_weight: float | None = None,
                   words: bool | None = None) -> list[dict]:
        """Speech recognition runs: the transcript of each recording (files, their bytes or arrays of samples; one
        or a list), each word with its start and end in seconds. The decoding is the one validation chose,
        unless beam (1: greedy), lm_weight (the character language model's weight) or words (only words of the
        training transcripts) say otherwise."""
        self.require("transcribe")
        options = {k: v for k, v in (("beam", beam), ("lm_weight", lm_weight), ("words", words)) if v is not None}
        return self(recordings, **options)

    def detect(self, images, threshold: float | None = None, max_boxes: int = 100, out: str | Path | None = None,
               class_iou: float | None = None) -> list[dict]:
        """Detection runs: the boxes in images (paths or folders, bytes, PIL images, arrays):
        [{'input', 'width', 'height', 'boxes': [{'class', 'score', 'box': [x1, y1, x2, y2] in the image's pixels}]}].
        threshold None: the run's (the best F1 on its validation split). class_iou: boxes of different classes
        overlapping more than this are one object (default 0.7; 1 keeps a box per class). With `out`, each image is
        also written there with its boxes drawn (NAME-boxes.png)."""
        self.require("detect")
        items, options = self.decoded(images, threshold=threshold, max_boxes=max_boxes, class_iou=class_iou)
        answers = [self.face.encode_result(r, options) for r in self.face.infer(self.serving, items, self.device, options)]
        if out is not None:
            for answer, path in zip(answers, self.face.draw(items, answers, Path(out))):
                answer["drawn"] = str(path)
        return answers

    def segment(self, images, out: str | Path | None = None, rle: bool = False, opacity: float = 0.5) -> list[dict]:
        """Segmentation runs: a class for every pixel of images (paths or folders, bytes, PIL images, arrays):
        [{'input', 'width', 'height', 'mask': uint8 (height, width) class indices, 'classes': [{'class', 'pixels',
        'share'}], and the mask as the server sends it ('mask_png_base64', or 'masks_rle' with rle=True)}]. With
        `out`, each image's mask (NAME-mask.png) and overlay (NAME-overlay.png, tinted by `opacity`) are written
        there too."""
        self.require("segment")
        items, options = self.decoded(images, rle=rle, opacity=opacity)
        results = self.face.infer(self.serving, items, self.device, options)
        answers = [{**self.face.encode_result(r, options), "mask": r["mask"]} for r in results]
        if out is not None:
            for answer, written in zip(answers, self.face.write_out(items, results, Path(out), options)):
                answer.update(written)
        return answers

    def restore(self, images, out: str | Path | None = None) -> list[dict]:
        """Restoration runs: photos of any size (paths or folders, bytes, PIL images, arrays) restored as the run
        learned (upscaled, denoised, freed of JPEG artefacts or coloured): [{'input', 'width', 'height', 'image':
        uint8 (height, width, 3), or 4 with the photo's own alpha, 'image_png_base64'}]. With `out`, each is also
        written there (NAME-x2.png, NAME-denoised.png, ...)."""
        self.require("restore")
        return self.pictures(images, out)

    def stylize(self, images, out: str | Path | None = None) -> list[dict]:
        """Style-transfer runs: photos of any size painted in the run's style, answered as `restore` answers; with
        `out`, each is also written there (NAME-styled.png)."""
        self.require("stylize")
        return self.pictures(images, out)

    def pictures(self, images, out: str | Path | None, **options) -> list[dict]:
        """The answers of a run that makes a picture of each picture (restore, stylize, identify), arrays
        included."""
        items, options = self.decoded(images, **{k: v for k, v in options.items() if v is not None})
        results = self.face.infer(self.serving, items, self.device, options)
        answers = [{**self.face.encode_result(r, options), **({"image": r["image"]} if "image" in r else {})}
                   for r in results]
        if out is not None:
            for answer, written in zip(answers, self.face.write_out(items, results, Path(out), options)):
                answer.update(written)
        return answers

    def identify(self, photos, min_face: int | None = None, max_faces: int = 50,
                 out: str | Path | None = None) -> list[dict]:
        """Face runs: every face of photos (paths or folders, bytes, PIL images, arrays): [{'input', 'width', 'height',
        'faces': [{'box', 'score', 'name' (or 'unknown' below the run's threshold), 'similarity'}]}],
        named from the people enrolled with `enroll`. With `out`, each photo is also written there with its faces
        boxed and named (NAME-faces.png)."""
        self.require("identify")
        return self.pictures(photos, out, min_face=min_face, max_faces=max_faces)

    def enroll(self, name: str, photos, min_face: int | None = None) -> dict:
        """Face runs: remember `name` from the largest face of each photo (no training): {'name', 'photos' used,
        'without_face', 'people' enrolled now}."""
        self.require("identify", "enroll")
        return self.face.enroll(self.serving, name, photos, self.device, min_face)

    def verify(self, a, b, min_face: int | None = None) -> dict:
        """Face runs: whether the largest faces of two photos are one person: {'similarity', 'same_person',
        'threshold'}."""
        self.require("identify", "verify")
        return self.face.verify(self.serving, a, b, self.device, min_face)

    def forget(self, name: str) -> int:
        """Face runs: remove an enrolled person; how many of their photos were kept."""
        self.require("identify", "forget")
        return self.face.gallery().forget(name)

    def people(self) -> dict[str, int]:
        """Face runs: the enrolled people and how many photos of each."""
        self.require("identify", "people")
        return {name: len(e) for name, e in sorted(self.face.gallery().people.items())}

    def audit(self, groups: str | Path, data: str | None = None) -> dict:
        """Face runs: false-accept and false-reject rates per group of people at the run's threshold, with 95 %
        intervals (groups: a CSV of person,group; data: a folder of person folders, else the run's test people)."""
        from ..tasks.faces_audit import audit

        self.require("identify", "audit")
        return audit(self, groups, data)

    def generate(self, prime: str = "", length: int = 500, temperature: float = 0.8, top_k: int | None = None,
                 seed: int | None = None) -> str:
        """Text runs: the prime followed by `length` sampled characters (the same for the same seed)."""
        self.require("generate")
        results, _ = self.infer(prime, length=length, temperature=temperature, top_k=top_k, seed=seed)
        return results[0]["text"]

    def stream(self, prime: str = "", length: int = 500, temperature: float = 0.8, top_k: int | None = None,
               seed: int | None = None):
        """Text runs: the sampled characters one at a time, as they are made (the prime is not repeated)."""
        self.require("generate")
        items, options = self.decoded(prime, length=length, temperature=temperature, top_k=top_k, seed=seed)
        parts = self.face.infer_stream(self.serving, items, self.device, options)
        return (part["token"] for part in parts if "token" in part)

    def translate(self, sentences: list[str] | str, beam: int = 1, length_penalty: float = 0.6) -> list[dict]:
        """Translation runs: [{'source', 'translation', 'tokens', 'source_tokens', 'attention'}] per sentence."""
        self.require("translate")
        return self.infer(sentences, beam=beam, length_penalty=length_penalty)[0]

    def plot_alignment(self, sentence: str, path: str | Path, beam: int = 1) -> Path:
        """Translation runs: save a heatmap of where attention looked while translating `sentence`."""
        from ..tasks.translate_report import plot_alignment

        return plot_alignment(self.translate(sentence, beam)[0], Path(path))

    def sample(self, n: int = 64, seed: int = 0, label: str | int | None = None, path: str | Path | None = None):
        """GAN runs: n new images as uint8 (N, C, H, W), the same for the same seed; `label` picks a class (runs
        trained with conditional=True). With `path`, also saved there as one grid PNG."""
        self.require("sample")
        results, _ = self.infer(None, n=n, seed=seed, label=None if label is None else str(label))
        images = torch.from_numpy(np.stack([r["image"] for r in results]))
        if path is not None:
            from ..report import save_image_grid

            save_image_grid(images, Path(path))
        return images

    def interpolate(self, steps: int = 10, seed: int = 0, label: str | int | None = None,
                    path: str | Path | None = None):
        """GAN runs: a walk of `steps` images between two random points of the noise space (saved as a strip)."""
        self.require("sample", "interpolate")
        images = self.face.interpolate(self.model, steps, seed, self.device, label)
        if path is not None:
            from ..report import save_image_grid

            save_image_grid(images, Path(path), cols=steps)
        return images

    def require(self, verb: str, what: str | None = None) -> None:
        """Refuse `what` (by default the verb itself) on a run whose face's verb is not `verb`, naming the verb it
        has; the trust tools (GRADIENT_TOOLS) on a run whose card does not declare them."""
        what = what or verb
        mine = self.face
        if what in GRADIENT_TOOLS:
            if not get_card(self.cfg.task).trust:
                raise DeepworksError(f"'{what}' works on image classifiers; '{self.run.path}' is {mine.kind} run. "
                                     f"Train one with: deepworks train --data IMAGES")
            if not getattr(self.model, "differentiable", True):
                raise DeepworksError(f"'{what}' needs the model's gradients, and '{self.run.path}' runs an imported "
                                     f"ONNX file in ONNX Runtime, which has none. Import the model as a torch.export "
                                     f".pt2 program or as safetensors weights to {what} it.")
        elif mine.verb != verb:
            wanted = [card.kind for card in BUILTIN_CARDS.values() if verb in card.verbs]
            whose = "for " + " or ".join(f"{kind} run" for kind in wanted) if wanted else "not for this run"
            raise DeepworksError(f"'{what}' is {whose}; '{self.run.path}' is {mine.kind} run. Use '{mine.verb}' "
                                 f"instead.")

    def evaluate(self, split: str = "test", data: str | None = None) -> dict:
        return evaluate(self.run.path, split=split, data=data)

    def examples(self, split: str = "test", data: str | None = None, progress: bool | None = False) -> tuple:
        """The run's own test (or val) split as in training, or every labelled example of another source."""
        task, meta = self.task, dict(self.task.meta)
        if data is None and self.imported:
            raise DeepworksError(f"'{self.run.path}' was imported ({self.imported['origin']}) and has no data of its "
                                 f"own. Evaluate it on labelled images with --data FOLDER.")
        if data is None:
            prepared = self.prepared(progress)
            return prepared.test if split == "test" else prepared.val
        found = task.labelled_examples(data, progress)
        task.meta = meta  # prepared as in training (normalisation, vocabulary), whatever the data now holds
        return found

    def prepared(self, progress: bool | None = False):
        """The run's data split as in training (tasks/common.Prepared), the model's fitted meta kept whatever the
        data now holds."""
        task, meta = self.task, dict(self.task.meta)
        try:
            return task.prepare(progress)
        finally:
            task.meta = meta

    # --- seeing inside and attacking (image runs) -----------------------------------------------
    def in_report(self, result: dict, out) -> dict:
        """Link what a trust tool wrote into the run's report page (when it wrote there rather than to --out)."""
        if out is None:
            from ..report import link_extra_figures

            link_extra_figures(self.run.report_dir)
        return result

    def attack(self, method: str = "pgd", eps: float = 0.1, **options) -> dict:
        """Accuracy under an adversarial attack on the test split, an accuracy-against-epsilon curve and example
        triptychs (see `deepworks attack --help` for the options); `image=` and `target=` attack one image.
        Text classifiers: method="words" changes up to `max_words` words of each test text for their neighbours
        in the model's embedding (trust/text_attack.py), with `samples` and `neighbours`."""
        if method == "words":
            from ..trust.text_attack import word_attack_run

            return self.in_report(word_attack_run(self, **options), options.get("out"))
        from ..trust.tools import attack_run

        self.require("attack")
        return self.in_report(attack_run(self, method, eps, **options), options.get("out"))

    def fool(self, target: str | int, confidence: float = 0.99, out: str | Path | None = None, seed: int = 0) -> dict:
        """An image made from noise that the model calls `target` with at least `confidence`."""
        from ..trust.tools import fooling_run

        self.require("fool")
        return self.in_report(fooling_run(self, target, confidence, out, seed), out)

    def explain(self, image: str | Path, label: str | int | None = None, out: str | Path | None = None,
                steps: int = 64) -> dict:
        """Saliency of one image: integrated gradients and gradient x input for the predicted class and `label`."""
        from ..trust.tools import explain_image

        self.require("explain")
        return self.in_report(explain_image(self, image, label, out, steps), out)

    def visualize(self, label: str | int | None = None, layer: str | None = None, channels: str | None = None,
                  out: str | Path | None = None, steps: int = 128) -> dict:
        """What the network looks for: every class (or `label`), the channels of `layer`, and the first filters."""
        from ..trust.tools import visualize_run

        self.require("visualize")
        return self.in_report(visualize_run(self, label, layer, channels, out, steps), out)

    def representations(self, layer: str | None = None, method: str = "pca", samples: int = 1000,
                        out: str | Path | None = None) -> dict:
        """A hidden layer's view of the test images in 2-D, at the epochs the run kept snapshots of."""
        from ..trust.tools import representation_run

        self.require("represent")
        return self.in_report(representation_run(self, layer, method, samples, out), out)

    def __repr__(self) -> str:
        return f"Trained(run='{self.run.path}', task={self.cfg.task}, model={self.cfg.model.name})"


def load(run_path: str | Path, device: str = "auto", runs_dir: str | Path = "runs") -> Trained:
    """Rebuild a trained model from its run directory (safetensors weights, no pickles)."""
    run = Run.open(run_path, runs_dir)
    run.tidy()
    cfg = Config.load(run.config_file)
    if not run.model_file.exists():
        raise DeepworksError(f"Run '{run.path}' has not finished training (no model.json). "
                             f"Resume it with: deepworks train --resume {run.path}")
    saved = run.read_json(run.model_file)
    if not isinstance(saved, dict) or not isinstance(saved.get("meta"), dict) or not isinstance(saved.get("task"), str):
        raise DeepworksError(f"'{run.model_file}' does not describe a model: it needs 'task' and 'meta'. It was damaged "
                             f"or edited by hand; restore it from a copy, or train the run again.")
    threads.configure()
    try:
        task = get_task(saved["task"]).from_meta(cfg, saved["meta"])
    except (KeyError, TypeError, ValueError) as err:
        raise DeepworksError(f"'{run.model_file}' has an incomplete or invalid 'meta' ({type(err).__name__}: "
                             f"{first_line(err)}). Restore it from a copy, or train the run again.") from None
    except ConfigError as err:
        raise DeepworksError(f"'{run.model_file}' or '{run.config_file}' does not describe a model this version of "
                             f"deepworks can build: {err}") from None
    model = imported_model(run, saved) or build_to_fit(task, run, saved.get("files"))
    dev = resolve_device(device)
    prefer_channels_last(model.to(dev)).eval()
    trained = Trained(run, cfg, task, model, dev)
    trained.imported = saved.get("imported")
    return trained


def build_to_fit(task, run: Run, recorded: dict | None = None) -> torch.nn.Module:
    """The model the run's config.yaml and model.json describe, with its trained weights. It is first built on
    torch's meta device, which allocates nothing, and its tensor shapes compared with those the weights file
    declares: a damaged or edited config (10 million classes, width 3,000) is refused before it can ask for GBs.
    The weights must then have the sha256 model.json `recorded` for them, or they are not loaded."""
    if not run.weights_file.exists():
        run.load_weights()  # the message: training did not finish
    declared = safetensors_shapes(run.weights_file)
    try:
        with torch.device("meta"):
            skeleton = task.build_model()
    except (KeyError, TypeError, ValueError, RuntimeError) as err:
        raise DeepworksError(f"'{run.model_file}' or '{run.config_file}' does not describe a model this version of "
                             f"deepworks can build ({first_line(err)}). Restore them from a copy, or train the run "
                             f"again.") from None
    wanted = {k: tuple(v.shape) for k, v in skeleton.state_dict().items()}
    if wanted != declared:
        missing = [k for k in wanted if k not in declared]
        extra = [k for k in declared if k not in wanted]
        wrong = [f"{k} {declared[k]} where the model has {wanted[k]}" for k in wanted
                 if k in declared and declared[k] != wanted[k]]
        what = "; ".join(part for part in (
            f"shapes differ: {', '.join(wrong[:3])}" if wrong else "",
            f"missing {', '.join(missing[:3])}" if missing else "",
            f"unexpected {', '.join(extra[:3])}" if extra else "") if part)
        raise DeepworksError(f"The weights in '{run.weights_file}' do not fit the {task.cfg.model.name} model that "
                             f"'{run.config_file}' and '{run.model_file}' describe ({what}). One of them was changed "
                             f"after training, or the run was made by another version of deepworks: restore the "
                             f"files, or train the run again.")
    recorded = recorded if isinstance(recorded, dict) else {}
    check_recorded_sha256(run.weights_file, recorded.get(run.weights_file.name), run.model_file)
    model = task.build_model()
    model.load_state_dict(run.load_weights())
    return model


def evaluate(run_path: str | Path, split: str = "test", data: str | None = None, progress: bool | None = False) -> dict:
    """Evaluate a trained run again: on its own test (or val) split, or on all images of another labelled source."""
    if split not in ("test", "val"):
        raise ConfigError(f"--split must be test or val. Received: {split!r}.")
    trained = load(run_path)
    examples = trained.examples(split, data, progress)
    split = split if data is None else "all"
    task = trained.task
    metrics = task.test_metrics(trained.model, examples, trained.device)
    trained.run.log(kind="evaluation", split=split, data=data or trained.cfg.data.source,
                    **{k: v for k, v in metrics.items() if not isinstance(v, (list, dict))})  # the scalars
    return {"run": str(trained.run.path), "task": trained.cfg.task, "split": split,
            "data": data or trained.cfg.data.source, **metrics}


def generate(run_path: str | Path, prime: str = "", length: int = 500, temperature: float = 0.8,
             top_k: int | None = None, seed: int | None = None) -> str:
    """Sample text from a trained text run: the prime followed by `length` new characters."""
    return load(run_path).generate(prime, length, temperature, top_k, seed)


def run_status(run: Run, epochs_done: int, epochs: int | None) -> str:
    """Finished, training (a live process holds the run), stopped, or never past its first epoch."""
    if run.results_file.exists():
        return "finished"
    if run.is_training():
        return f"training (epoch {epochs_done} of {epochs})" if epochs else f"training (epoch {epochs_done})"
    return f"stopped after epoch {epochs_done}" if epochs_done else "no epoch finished"


def runs(runs_dir: str | Path = "runs") -> list[dict]:
    """Every run under `runs_dir` with its status and best metric, newest first."""
    root = Path(runs_dir)
    if not root.is_dir():
        return []
    out = []
    for path in sorted((p for p in root.iterdir() if (p / "config.yaml").is_file()),
                       key=lambda p: p.stat().st_mtime, reverse=True):
        run = Run(path)
        try:
            cfg = Config.load(run.config_file)
        except DeepworksError:
            continue
        records = run.metrics()
        epochs = [r for r in records if r.get("kind") == "epoch"]
        monitor = cfg.train.monitor
        values = [r[monitor] for r in epochs if monitor and monitor in r]
        task = get_task(cfg.task)
        best = ((max if task.monitor_mode(monitor) == "max" else min)(values)) if values else None
        test = next((r for r in reversed(records) if r.get("kind") == "test"), None)
        headline = task.headline
        status = run_status(run, len(epochs), cfg.train.epochs)
        row = {"name": run.name, "path": str(path), "task": cfg.task, "data": cfg.data.source, "model": cfg.model.name,
               "epochs": f"{len(epochs)}/{cfg.train.epochs}", "monitor": monitor, "best": best,
               "test_metric": headline, "test": test.get(headline) if test else None, "status": status}
        out.append({**row, **imported_row(run)})
    return out


def imported_row(run: Run) -> dict:
    """What `deepworks runs` says of an imported run (nothing was trained): its kind of file, where it came from."""
    try:
        info = json.loads(run.results_file.read_text(encoding="utf-8")).get("imported")
    except (OSError, ValueError, AttributeError):
        return {}
    if not isinstance(info, dict) or info.get("kind") not in ("onnx", "pt2", "safetensors"):
        return {}
    origin = Path(str(info.get("origin") or "")).name
    row = {"epochs": "-", "imported": info["kind"], "status": f"imported {info['kind']}" + (
        f" from {origin}" if origin else "")}
    return row if info["kind"] == "safetensors" else {**row, "model": info["kind"]}
