"""Text classification: sentiment, topics or languages from labelled text.

Data (data/textclass.py): a CSV, TSV or JSONL file with a text and a label column (found by name, or
--text-column / --label-column), a folder with one sub-folder of .txt files per class, or a built-in (`moods`,
generated on the spot; `langid`, Multi30k's English, German and French captions by language; `sst2`, the Stanford
Sentiment Treebank, positive or negative, with its own split). Texts become ids (data/subwords.py): hashed word
unigrams and bigrams for the fastText model, a SentencePiece model fitted on the training split for the others;
the encoder travels in meta, so a trained run reads text alone. Models (models/textclass.py): fastText's bag of
n-grams (the default: fast, and strong on small data), Kim's CNN, a BiGRU with attention pooling, a Transformer
encoder; with --pretrained, MiniLM-L6 (models/minilm.py) and its own WordPiece tokenizer, fine-tuned (the head
first, then every layer at a rate that decays with depth) or, with --freeze, a head on its sentence embeddings,
computed once. Loss: cross-entropy. Metrics: accuracy each epoch; on the test split also macro F1, per class and the
confusion matrix, beside a TF-IDF baseline (word 1-2-grams and character 2-5-grams, logistic regression). This
module is the recipe; the use of a trained model is tasks/textclass_face.py and the report tasks/textclass_report.py.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from ..config import Config, fill_defaults
from ..errors import ConfigError, DataError
from ..registry import builtin_defaults, builtin_models
from .base import Prepared, Task
from .textclass_face import TextClassFace, encoder_of
from .textclass_report import TextClassReport

HASH_BUCKETS = 1 << 18  # the fastText model's hashed n-grams: 262,144 rows of its table, few collisions on a corpus
SUBWORDS = 8000          # SentencePiece pieces for the other models (--vocab-size)
BAG_DROPOUT = 0.5        # fastText's, when --dropout is not given
MAX_CLASSES = 100_000    # a saved run's classes at most (its head is that wide)
# MiniLM's fine-tuning: the head at --lr, the top layer at --body-lr times it and each layer below at LAYER_DECAY
# times the one above (Howard & Ruder 2018's discriminative rates); 5e-5 at the top is BERT's usual rate
MINILM_DEFAULTS = {"model.name": "minilm", "train.lr": 5e-4, "train.batch_size": 32, "train.epochs": 3}
FROZEN_DEFAULTS = {"train.lr": 1e-3, "train.batch_size": 64, "train.epochs": 5}
LAYER_DECAY = 0.8
HEAD_FIRST_TEXTS = 8000  # fine-tuning's head-first step fits the head on at most this many training texts


class TextClassification(Task):
    name = "textclass"
    models = builtin_models("textclass")
    defaults = builtin_defaults("textclass")
    default_monitor = "val_accuracy"
    headline = "accuracy"
    unit = ("text", 1)
    counted = ("texts", "texts")
    augments = ("none",)
    fine_tuning = True
    head_first_noun = "texts"  # what the head-first step's note counts (an image's are its views: mirrored too)
    pretrained_models = ("minilm",)
    face_class, report_class = TextClassFace, TextClassReport

    def __init__(self, cfg: Config, meta: dict | None = None):
        if cfg.model.name == "minilm" and not cfg.model.init_from:
            cfg.model.pretrained = True  # MiniLM is its pretrained weights: from scratch it would be a slow BERT
        if cfg.model.pretrained:
            fill_defaults(cfg, {**MINILM_DEFAULTS, **(FROZEN_DEFAULTS if cfg.model.freeze else {})})
        # a bag of embeddings learns at a rate that would make the deeper models diverge (moods, 10 epochs: 0.97 at
        # 0.03, 0.73 at 0.01); theirs is the rate their papers' Adam runs use
        fill_defaults(cfg, {"train.lr": 0.03 if cfg.model.name in (None, "fasttext") else 0.003})
        super().__init__(cfg, meta)
        self.texts: dict[str, list[str]] = {}  # each split's texts, for the report's mistakes and the baseline
        self.labels: dict[str, np.ndarray] = {}
        self.cache = FeatureCache() if cfg.model.freeze and cfg.model.name == "minilm" else None

    @staticmethod
    def check_meta(meta: dict) -> None:
        classes = meta.get("classes")
        if not (isinstance(classes, list) and 2 <= len(classes) <= MAX_CLASSES and all(isinstance(c, str) for c in
                                                                                      classes)):
            raise ConfigError(f"Expected the run's classes as a list of 2 to {MAX_CLASSES:,} names. Received: "
                              f"{str(classes)[:100]}.")
        encoder_of(meta)  # a hostile or damaged encoder is refused before it sizes a table

    # --- data -----------------------------------------------------------------------------------------------
    def read(self):
        from ..data.textclass import load_texts

        d = self.cfg.data
        return load_texts(d.source, d.data_dir, d.download, d.text_column, d.label_column, d.strict)

    def split_indices(self, texts) -> dict[str, np.ndarray]:
        """The source's own split where it has one (a missing validation part is cut from its training part), else
        seeded stratified test and validation parts."""
        from ..data.arrays import stratified_split

        d, seed, y = self.cfg.data, self.cfg.seed, texts.labels
        if texts.split:
            parts = {k: np.asarray(v, dtype=np.int64) for k, v in texts.split.items()}
            train, test = parts["train"], parts["test"]
        else:
            everything = np.arange(len(y))
            keep, held = stratified_split(y, d.test_fraction, seed)
            train, test, parts = everything[keep], everything[held], {}
        if "val" not in parts:
            keep, held = stratified_split(y[train], d.val_fraction, seed + 1)
            train, parts["val"] = train[keep], train[held]
        if len(train) < 2 or len(test) == 0:
            raise DataError(f"{texts.description} leaves {len(train)} text(s) to train on and {len(test)} to test. "
                            f"Add texts, or lower --val-fraction / --test-fraction.")
        return {"train": train, "val": parts["val"], "test": test}

    def prepare(self, progress: bool | None = True) -> Prepared:
        texts = self.read()
        parts = self.split_indices(texts)
        labels = np.asarray(texts.labels, dtype=np.int64)
        if self.meta is not None:  # a trained run's data read again (evaluate): its own encoder and classes
            encoder, labels = encoder_of(self.meta), self.relabelled(texts)
        else:
            encoder = self.fitted_encoder([texts.texts[i] for i in parts["train"]])
        ids, cut = encoder.encode_counted(texts.texts)
        notes = list(texts.notes)
        if cut:
            notes.append(f"{cut:,} text(s) were longer than --max-len {encoder.max_len} tokens and were cut to it.")
        if self.meta is None:
            self.meta = {"classes": list(texts.classes), "encoder": encoder.to_meta(), "source": texts.description,
                         **self.pretrained_meta()}
        self.texts = {k: [texts.texts[i] for i in v] for k, v in parts.items()}
        self.labels = {k: labels[v] for k, v in parts.items()}
        x, y = torch.from_numpy(ids), torch.from_numpy(labels)

        def part(idx: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
            idx = torch.from_numpy(idx)
            return x[idx], y[idx]

        return Prepared(train=part(parts["train"]), val=part(parts["val"]), test=part(parts["test"]),
                        meta=self.meta, notes=notes)

    def fitted_encoder(self, train_texts: list[str]):
        """The encoder of a new run, fitted on its training texts: hashed n-grams for fastText, else SentencePiece.
        A resumed run fits it again on the same texts, which gives the same encoder (one thread, a fixed order)."""
        from ..data.subwords import TextEncoder

        if self.cfg.model.name == "minilm":
            return minilm_encoder(self.cfg.data.max_len)
        hashed = self.cfg.model.name == "fasttext"
        size = hash_buckets(train_texts, self.cfg.data.max_len) if hashed else self.cfg.data.vocab_size or SUBWORDS
        return TextEncoder.fit(train_texts, "hashed" if hashed else "sentencepiece", size, self.cfg.data.max_len,
                               self.cfg.seed)

    def relabelled(self, texts) -> np.ndarray:
        """The texts' labels as indices of the run's own classes (by name): the data read again may hold them in
        another order, or a class the run never learned, which is refused."""
        known = {c: i for i, c in enumerate(self.meta["classes"])}
        unknown = sorted(set(texts.classes) - set(known))
        if unknown:
            raise DataError(f"{texts.description} has classes this run never learned: {', '.join(unknown[:10])}. "
                            f"Expected only its classes: {', '.join(self.meta['classes'][:20])}.")
        return np.array([known[texts.classes[i]] for i in texts.labels], dtype=np.int64)

    def audit_warnings(self, data: Prepared) -> list[str]:
        """The text audit (data/text_audit.py) before training: its warnings are warned and noted, and what words
        alone tell a class is noted in the report."""
        import warnings

        from ..data.arrays import DataWarning
        from ..data.text_audit import audit_texts

        notes = []
        for finding in audit_texts(self.texts, self.labels, self.meta["classes"]):
            if finding.severity == "warning":
                warnings.warn(finding.text(), DataWarning, stacklevel=3)
            if finding.severity == "warning" or finding.check == "shortcut":
                notes.append(finding.text())
        return notes

    def labelled_examples(self, source: str, progress: bool | None = False) -> tuple[torch.Tensor, torch.Tensor]:
        """Every labelled text of another source (its splits together), as this run's encoder reads it."""
        from ..data.textclass import load_texts

        d = self.cfg.data
        texts = load_texts(source, d.data_dir, d.download, d.text_column, d.label_column, d.strict)
        labels = self.relabelled(texts)
        return torch.from_numpy(encoder_of(self.meta).encode(texts.texts)), torch.from_numpy(labels)

    # --- model and training -----------------------------------------------------------------------------------
    def build_model(self) -> nn.Module:
        from ..models.textclass import build_text_classifier

        m, encoder = self.cfg.model, encoder_of(self.meta)
        # fastText's table learns its training texts within an epoch or two: dropout 0.5 before its layer keeps it
        # from leaning on a few n-grams (SST-2 test: 0.808 against 0.798 without); the others keep their own
        dropout = m.dropout or (BAG_DROPOUT if m.name == "fasttext" else None)
        if m.name == "minilm":
            from ..models.minilm import MiniLMClassifier

            return MiniLMClassifier(len(self.meta["classes"]), 0.1 if dropout is None else dropout)
        return build_text_classifier(m.name, encoder.vocab_size, len(self.meta["classes"]), width=m.width,
                                     depth=m.depth, heads=m.heads, embed_size=m.embed_size, dropout=dropout,
                                     max_len=encoder.max_len)

    def optimizers(self, model: nn.Module) -> list[torch.optim.Optimizer]:
        """--optimizer over the dense parameters, and Adam's sparse form over a table with sparse gradients (the
        fastText model's): only the rows a batch used are read and written."""
        from ..training.finetune import fine_tunes
        from ..training.loop import make_optimizer

        if hasattr(model, "layer_groups") and fine_tunes(self) and not self.cfg.model.freeze:
            return [make_optimizer(decaying_groups(model, self.cfg.train.lr, self.cfg.model.body_lr), self.cfg.train)]
        sparse = [m.weight for m in model.modules() if isinstance(m, nn.Embedding) and m.sparse]
        if not sparse:
            return super().optimizers(model)
        t, held = self.cfg.train, {id(p) for p in sparse}
        return [make_optimizer([p for p in model.parameters() if id(p) not in held], t),
                torch.optim.SparseAdam(sparse, lr=t.lr, betas=(t.momentum, 0.999))]

    def start_from(self, model: nn.Module) -> None:
        if self.cfg.model.pretrained:
            from ..models.pretrained import load_pretrained

            load_pretrained(model, self.cfg.model.name)

    def pretrained_meta(self) -> dict:
        """Where the starting weights came from (package, file, sha256, licence), for model.json and the report."""
        if not self.cfg.model.pretrained:
            return {}
        from ..models.pretrained import describe

        return {"pretrained": describe(self.cfg.model.name)}

    def head_features(self, model: nn.Module, head: nn.Module, train: tuple, device: torch.device):
        """What reaches the head for the training texts (fine-tuning's head-first step): all of them for MiniLM with
        --freeze, kept for the epochs (FeatureCache), else a seeded sample of at most HEAD_FIRST_TEXTS."""
        from ..training.finetune import captured_inputs

        x, y = train
        if self.cache is None and len(x) > HEAD_FIRST_TEXTS:
            pick = torch.from_numpy(np.sort(np.random.default_rng(self.cfg.seed).choice(len(x), HEAD_FIRST_TEXTS,
                                                                                          replace=False)))
            x, y = x[pick], y[pick]
        with captured_inputs(head) as seen:
            self.probabilities(model, x, device)
        features = torch.cat(seen)[torch.argsort(by_length(x))]  # back in the rows' order
        if self.cache is not None:
            self.cache.add(x, features)
        return features, y

    def training_step(self, model: nn.Module, batch: tuple):
        x, y = batch
        if self.cache is not None:  # --freeze on MiniLM: the encoder's answer for each text is computed once
            logits = model.head(self.cache.features(model, x))
        else:
            logits = model(trimmed(x))
        loss = F.cross_entropy(logits, y, label_smoothing=self.cfg.train.label_smoothing or 0.0)
        return loss, {"accuracy": (logits.argmax(1) == y).sum()}

    # --- after training -------------------------------------------------------------------------------------
    @torch.no_grad()
    def probabilities(self, model: nn.Module, x: torch.Tensor, device: torch.device, batch_size: int = 256):
        """The class probabilities of id rows `x`, in eval mode (each batch trimmed of its all-padding columns)."""
        from ..models import evaluating

        order = by_length(x)  # texts of similar lengths together: a batch is padded to its longest
        with evaluating(model):
            probs = torch.cat([model(trimmed(x[order[i:i + batch_size]]).to(device)).float().softmax(1).cpu()
                               for i in range(0, len(x), batch_size)])
        return probs[torch.argsort(order)]

    def test_metrics(self, model: nn.Module, split: tuple, device: torch.device) -> dict:
        from ..metrics.classes import class_metrics, reliability

        x, y = split
        probs = self.probabilities(model, x, device)
        pred = probs.argmax(1)
        return {"texts": len(y), "loss": float(F.nll_loss(probs.clamp(min=1e-12).log(), y)),
                "accuracy": float((pred == y).float().mean()),
                **class_metrics(y.numpy(), pred.numpy(), self.meta["classes"]),
                "reliability": reliability(probs.numpy(), y.numpy())}

    def baseline(self) -> dict | None:
        """TF-IDF of word 1-2-grams and character 2-5-grams, then logistic regression, trained on the same
        training texts and scored on the same test texts: what a text model should beat."""
        import time

        from sklearn.feature_extraction.text import TfidfVectorizer
        from sklearn.linear_model import LogisticRegression
        from sklearn.metrics import f1_score
        from sklearn.pipeline import make_pipeline, make_union

        if not self.texts.get("test"):
            return None
        train, labels = self.texts["train"], self.labels["train"]
        cap = self.cfg.eval.baseline_samples
        if cap and len(train) > cap:  # a bound on its work, as the image task's forest has
            pick = np.sort(np.random.default_rng(self.cfg.seed).choice(len(train), cap, replace=False))
            train, labels = [train[i] for i in pick], labels[pick]
        t0 = time.perf_counter()
        features = make_union(TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, min_df=1, max_features=200_000),
                              TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 5), sublinear_tf=True,
                                              max_features=200_000))
        fitted = make_pipeline(features, LogisticRegression(C=4.0, max_iter=1000)).fit(train, labels)
        pred, truth = fitted.predict(self.texts["test"]), self.labels["test"]
        return {"model": "TF-IDF (word 1-2-grams, character 2-5-grams) + logistic regression",
                "train_samples": len(train), "accuracy": float((pred == truth).mean()),
                "macro_f1": float(f1_score(truth, pred, average="macro", zero_division=0)),
                "seconds": round(time.perf_counter() - t0, 2)}

    def preview(self, prepared: Prepared, per_class: int = 6) -> dict:
        """The classes with a few training texts of each, as the data page shows them."""
        _, y = prepared.train
        rows = [{"class": name, "texts": [self.texts["train"][i][:300]
                                          for i in np.flatnonzero(y.numpy() == c)[:per_class]]}
                for c, name in enumerate(self.meta["classes"])]
        counts = np.bincount(y.numpy(), minlength=len(self.meta["classes"])).tolist()
        return {"text_classes": list(self.meta["classes"]), "class_counts": counts, "text_examples": rows}


def hash_buckets(texts: list[str], max_len: int) -> int:
    """The fastText table's rows: twice the training texts' distinct word 1-2-grams, as a power of two, from 1,024 to
    HASH_BUCKETS. A table sized for the data keeps a small data set's run small (a few hundred texts need a few
    thousand rows, not 262,144) and collisions rare."""
    from ..data.subwords import TextEncoder

    probe = TextEncoder.fit(texts, "hashed", 1 << 24, max_len)
    distinct = len({token for text in texts for token in probe.hashed_tokens(text)[0]})
    return int(min(HASH_BUCKETS, max(1 << 10, 1 << int(np.ceil(np.log2(2 * distinct))))))


def by_length(x: torch.Tensor) -> torch.Tensor:
    """The rows' order from the fewest real ids to the most (stable)."""
    return torch.argsort((x != 0).sum(1), stable=True)


def minilm_encoder(max_len: int):
    """MiniLM's own WordPiece tokenizer, from the weights package; at most its 512 positions."""
    from ..data.subwords import TextEncoder
    from ..models.minilm import POSITIONS
    from ..models.pretrained import weights_file

    if max_len > POSITIONS:
        raise ConfigError(f"--model minilm reads at most {POSITIONS} tokens per text. Received: --max-len {max_len}.")
    return TextEncoder.wordpiece(weights_file("minilm", "tokenizer").read_bytes(), max_len)


def decaying_groups(model: nn.Module, lr: float, body_lr: float) -> list[dict]:
    """The head at lr, the body's top layer at lr * body_lr and each layer below at LAYER_DECAY times the one
    above (model.layer_groups(), from the top)."""
    from ..models import head_name

    head = head_name(model)
    groups = [{"params": [p for n, p in model.named_parameters() if n.startswith(head)], "lr": lr}]
    return groups + [{"params": params, "lr": lr * body_lr * LAYER_DECAY ** k}
                     for k, params in enumerate(model.layer_groups())]


class FeatureCache:
    """--freeze: what reaches the head of each text, computed once and kept by the text's id row, so that the
    epochs train the head at its own speed instead of running the frozen encoder again. The encoder is in eval
    mode (callbacks.FrozenBody) and learns nothing, so its answer for a row never changes."""

    def __init__(self):
        self.rows: dict[bytes, torch.Tensor] = {}

    def add(self, x: torch.Tensor, features: torch.Tensor) -> None:
        self.rows.update(zip(row_keys(x), features.cpu()))

    @torch.no_grad()
    def features(self, model: nn.Module, x: torch.Tensor) -> torch.Tensor:
        keys = row_keys(x)
        missing = [i for i, k in enumerate(keys) if k not in self.rows]
        if missing:  # the validation texts, on the first epoch
            modes = [(m, m.training) for m in model.modules()]  # FrozenBody's: the body in eval, the head not
            model.eval()
            self.add(x[missing], model.embed(trimmed(x[missing])))
            for m, mode in modes:
                m.training = mode
        return torch.stack([self.rows[k] for k in keys]).to(x.device)


def row_keys(x: torch.Tensor) -> list[bytes]:
    return [row.tobytes() for row in x.cpu().numpy()]


def trimmed(x: torch.Tensor) -> torch.Tensor:
    """A batch of id rows without the columns that are padding in every row: the rows are padded to the longest
    text of the whole data set, and most batches are shorter."""
    used = (x != 0).any(0)
    last = int(used.nonzero().max()) + 1 if bool(used.any()) else 1
    return x[:, :last]
