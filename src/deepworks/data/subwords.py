"""Texts -> token ids for the text classifiers: hashed words and bigrams, or a SentencePiece unigram model.

Id 0 is padding and id 1 the unknown token, in both kinds. 'hashed' is fastText's input (Joulin et al. 2016): the
lower-case words and their bigrams, each hashed into a bucket, with nothing to learn. The hash is zlib.crc32 of the
UTF-8 bytes, not Python's hash(), which is salted per process: a model trained today must read tomorrow's texts with
the same ids. 'sentencepiece' learns subwords from the training texts (Kudo 2018), so a rare word becomes known
pieces instead of one unknown; the model (a few hundred kB) travels as base64 in the run's meta. 'wordpiece' is a
pretrained encoder's own tokenizer (MiniLM's: BERT's lower-cased WordPiece, [CLS] first and [SEP] last), run by the
`tokenizers` library from its tokenizer.json, which travels in the run's meta as text (466 kB for MiniLM).

Both kinds lowercase: a small data set does not have enough of each word to learn 'Great' and 'great' apart.
Control characters (NUL included) and lone surrogates become spaces before anything else sees the text:
SentencePiece reads C strings, and a surrogate cannot be encoded to UTF-8 at all.
"""

from __future__ import annotations

import base64
import binascii
import io
import re
import zlib

import numpy as np

from ..errors import ConfigError, DataError

KINDS = ("hashed", "sentencepiece", "wordpiece")
PAD, UNK = 0, 1  # 'wordpiece' has its own unknown id (BERT's [UNK] is 100): TextEncoder.unk_id
# ids an embedding table could hold; more is refused
MAX_VOCAB = {"hashed": 1 << 24, "sentencepiece": 1 << 20, "wordpiece": 1 << 20}
MAX_LEN = 10_000  # longest id sequence a run may ask for (--max-len's own limit)
FIT_SENTENCES = 200_000  # SentencePiece learns from at most this many texts ...
FIT_CHARS = 10_000_000  # ... and this much text (about 10 MB): more costs minutes and memory, and teaches little
FIT_TEXT_CHARS = 16_000  # a longer training text is cut (SentencePiece skips a sentence over max_sentence_length)
PIECE_CHARS = 16  # SentencePiece's own longest piece (max_sentencepiece_length): bounds the text a cut id row needs
MAX_MODEL_B64 = 64 << 20  # a SentencePiece model in meta larger than this is not one deepworks wrote

WORDS = re.compile(r"\w+|[^\w\s]")
UNSAFE = re.compile(r"[\x00-\x1f\x7f-\x9f\ud800-\udfff]")


def clean(text: str) -> str:
    """Lowercased, with control characters and lone surrogates made spaces (see the module's docstring)."""
    return UNSAFE.sub(" ", text).lower()


def bucket(token: str, vocab_size: int) -> int:
    """A word's or bigram's id in [2, vocab_size): the same in every process and on every machine."""
    return 2 + zlib.crc32(token.encode("utf-8")) % (vocab_size - 2)


class TextEncoder:
    """Texts -> (N, L) int64 ids with 0 as padding; `fit` makes one, `to_meta` / `from_meta` keep it with a run."""

    def __init__(self, kind: str, vocab_size: int, max_len: int, model: bytes | None = None):
        self.kind, self.vocab_size, self.max_len = kind, int(vocab_size), int(max_len)  # numpy ints are not JSON
        self.model = model  # the SentencePiece model's serialized bytes, or the WordPiece tokenizer.json
        self.processor = (load_processor(model) if kind == "sentencepiece" else load_wordpiece(model)
                          if kind == "wordpiece" else None)
        self.unk_id = self.processor.token_to_id("[UNK]") if kind == "wordpiece" else UNK
        self.last_truncated = 0  # how many texts the last encode() cut at max_len

    @classmethod
    def wordpiece(cls, tokenizer_json: bytes, max_len: int) -> TextEncoder:
        """A pretrained model's WordPiece tokenizer (nothing to fit), from its tokenizer.json."""
        check_settings("wordpiece", 3, max_len)
        encoder = cls("wordpiece", 0, max_len, tokenizer_json)
        encoder.vocab_size = encoder.processor.get_vocab_size()
        return encoder

    @classmethod
    def fit(cls, texts: list[str], kind: str = "sentencepiece", vocab_size: int = 8000, max_len: int = 256,
            seed: int = 0) -> TextEncoder:
        """An encoder for these (training) texts. 'hashed' keeps the settings; 'sentencepiece' learns a model of
        at most `vocab_size` pieces (fewer when the texts do not have that many: the encoder's vocab_size says)."""
        check_settings(kind, vocab_size, max_len)
        if kind == "hashed":
            return cls(kind, vocab_size, max_len)
        model = train_sentencepiece(fit_sample(texts, seed), vocab_size)
        encoder = cls(kind, 0, max_len, model)
        encoder.vocab_size = encoder.processor.get_piece_size()
        return encoder

    def encode(self, texts: list[str]) -> np.ndarray:
        """(N, L) int64 ids, L = min(max_len, the longest text's ids), at least 1; 0 pads the shorter rows. An empty
        text is one unknown id. `last_truncated` says how many texts were cut at max_len."""
        ids, self.last_truncated = self.encode_counted(texts)
        return ids

    def encode_counted(self, texts: list[str]) -> tuple[np.ndarray, int]:
        """encode's ids and how many texts were cut at max_len (for a caller that shares the encoder)."""
        if isinstance(texts, str) or not all(isinstance(t, str) for t in texts):
            shown = type(texts).__name__ if isinstance(texts, str) else next(
                type(t).__name__ for t in texts if not isinstance(t, str))
            raise DataError(f"Expected a list of texts (str) to encode. Received: a {shown}.")
        if self.kind == "wordpiece":  # the tokenizers library encodes a batch at once, in Rust
            answers = self.processor.encode_batch([self.wordpiece_text(t)[0] for t in texts])
            found = [self.wordpiece_ids(text, answer) for text, answer in zip(texts, answers)]
        else:
            found = [self.row(text) for text in texts]
        rows, cut = [ids for ids, _ in found], sum(was_cut for _, was_cut in found)
        out = np.zeros((len(rows), max((len(r) for r in rows), default=1)), dtype=np.int64)
        for i, row in enumerate(rows):
            out[i, :len(row)] = row
        return out, cut

    def row(self, text: str) -> tuple[list[int], bool]:
        """One text's ids, cut at max_len, and whether it was cut."""
        if self.kind == "hashed":
            tokens, cut = self.hashed_tokens(text)
            ids = [bucket(t, self.vocab_size) for t in tokens]
        elif self.kind == "wordpiece":
            ids, cut = self.wordpiece_ids(text)
        else:
            ids, cut = self.piece_ids(text)
        return (ids or [UNK]), cut

    def pieces(self, text: str) -> list[str]:
        """The tokens behind encode([text])[0], one per id, in order: words and 'w1 w2' bigrams, or SentencePiece
        pieces ('▁' marks a piece that starts a word). An empty text is ['<unk>']."""
        if self.kind == "hashed":
            tokens = self.hashed_tokens(text)[0]
        elif self.kind == "wordpiece":
            ids = self.wordpiece_ids(text)[0]
            tokens = [self.processor.id_to_token(i) for i in ids]
        else:
            tokens = [self.processor.id_to_piece(i) for i in self.piece_ids(text)[0]]
        return tokens or ["<unk>"]

    def hashed_tokens(self, text: str) -> tuple[list[str], bool]:
        """Each word followed by the bigram it ends, so that a cut at max_len keeps a prefix of the text; the words
        are found lazily, so a huge text costs only the max_len tokens kept."""
        tokens, previous = [], None
        for match in WORDS.finditer(clean(text)):
            word = match.group()
            tokens.append(word)
            if previous is not None:
                tokens.append(f"{previous} {word}")
            previous = word
            if len(tokens) > self.max_len:
                return tokens[:self.max_len], True
        return tokens, False

    def piece_ids(self, text: str) -> tuple[list[int], bool]:
        """SentencePiece ids, cut at max_len. Only the start of a long text is encoded: no piece is longer than
        PIECE_CHARS characters, so max_len pieces never need more than that many characters each."""
        keep = self.max_len * PIECE_CHARS + 1
        text = " ".join(clean(text).split())  # a long run of spaces or control characters must not fill the cut
        ids = self.processor.encode(text[:keep])
        return ids[:self.max_len], len(ids) > self.max_len or len(text) > keep

    def wordpiece_text(self, text: str) -> tuple[str, bool]:
        """What the WordPiece tokenizer reads, and whether it is cut: control characters made spaces, runs of spaces
        made one, and only the start of a long text (no token but an unknown one covers more than PIECE_CHARS
        characters, so max_len tokens never need more than that many characters each)."""
        keep = self.max_len * PIECE_CHARS + 1
        words = " ".join(UNSAFE.sub(" ", text[:2 * keep]).split())
        return words[:keep], len(words) > keep or len(text) > 2 * keep

    def wordpiece_ids(self, text: str, encoding=None) -> tuple[list[int], bool]:
        """A text's ids cut at max_len with its closing [SEP] kept, and whether it was cut (`encoding`: the
        tokenizer's answer for wordpiece_text(text), when a batch already has it)."""
        words, cut = self.wordpiece_text(text)
        ids = (encoding or self.processor.encode(words)).ids
        if len(ids) <= self.max_len:
            return ids, cut
        return ids[:self.max_len - 1] + ids[-1:], True

    def to_meta(self) -> dict:
        """JSON-able settings, with the SentencePiece model as base64 text, or the tokenizer.json as text."""
        meta = {"kind": self.kind, "vocab_size": self.vocab_size, "max_len": self.max_len, "lowercase": True}
        if self.kind == "wordpiece":  # as loaded: its own padding and truncation off (the encoder pads and cuts)
            meta["model"] = self.processor.to_str()
        elif self.model is not None:
            meta["model"] = base64.b64encode(self.model).decode("ascii")
        return meta

    @classmethod
    def from_meta(cls, meta: dict) -> TextEncoder:
        """The encoder `to_meta` described, after checking it: a ConfigError for anything deepworks did not write."""
        if not isinstance(meta, dict):
            raise ConfigError(f"Expected the text encoder's settings as a mapping. Received {type(meta).__name__}.")
        kind, vocab_size, max_len = meta.get("kind"), meta.get("vocab_size"), meta.get("max_len")
        check_settings(kind, vocab_size, max_len)
        if kind == "hashed":
            return cls(kind, vocab_size, max_len)
        if kind == "wordpiece":
            encoder = cls.wordpiece(wordpiece_json(meta.get("model")), max_len)
            pieces = encoder.vocab_size
        else:
            encoder = cls(kind, vocab_size, max_len, decode_model(meta.get("model")))
            pieces = encoder.processor.get_piece_size()
        if pieces != vocab_size:
            raise ConfigError(f"Expected the text encoder's {kind} model to have vocab_size = {vocab_size} "
                              f"pieces. Received a model of {pieces}.")
        return encoder

    def __repr__(self) -> str:
        return f"TextEncoder(kind={self.kind!r}, vocab_size={self.vocab_size}, max_len={self.max_len})"


def check_settings(kind, vocab_size, max_len) -> None:
    if kind not in KINDS:
        raise ConfigError(f"Expected a text encoder kind of {', '.join(KINDS)}. Received {kind!r}.")
    top = MAX_VOCAB[kind]
    if not is_int(vocab_size) or not 3 <= vocab_size <= top:
        raise ConfigError(f"Expected a {kind} vocabulary size from 3 to {top:,}. Received {vocab_size!r}.")
    if not is_int(max_len) or not 1 <= max_len <= MAX_LEN:
        raise ConfigError(f"Expected a longest token sequence (max_len) from 1 to {MAX_LEN:,}. Received {max_len!r}.")


def is_int(value) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def fit_sample(texts: list[str], seed: int) -> list[str]:
    """The texts SentencePiece learns from: the non-empty ones, cleaned and cut at FIT_TEXT_CHARS, and when there
    are more than FIT_SENTENCES or FIT_CHARS of them a seeded random sample within both, in the texts' own order
    (the same texts and seed give the same sample, hence the same model)."""
    kept = [t for t in (clean(text[:FIT_TEXT_CHARS]).strip() for text in texts) if t]
    if not kept:
        raise DataError(f"Expected some text to learn subwords from. Received {len(texts)} text(s), all empty.")
    if len(kept) <= FIT_SENTENCES and sum(map(len, kept)) <= FIT_CHARS:
        return kept
    chosen, chars = [], 0
    for i in np.random.default_rng(seed).permutation(len(kept)):
        if len(chosen) == FIT_SENTENCES or chars + len(kept[i]) > FIT_CHARS:
            break
        chosen.append(i)
        chars += len(kept[i])
    return [kept[i] for i in sorted(chosen)]


def train_sentencepiece(texts: list[str], vocab_size: int) -> bytes:
    """A unigram model, trained in memory, the same for the same texts: one thread, the texts in their order
    (no shuffling, no sampling of SentencePiece's own). hard_vocab_limit=False lets a small corpus give fewer
    pieces than asked for instead of failing."""
    import sentencepiece as spm

    model = io.BytesIO()
    try:
        spm.SentencePieceTrainer.train(
            sentence_iterator=iter(texts), model_writer=model, vocab_size=vocab_size, model_type="unigram",
            pad_id=PAD, unk_id=UNK, bos_id=-1, eos_id=-1, hard_vocab_limit=False, num_threads=1,
            input_sentence_size=0, shuffle_input_sentence=False, max_sentence_length=4 * FIT_TEXT_CHARS,
            max_sentencepiece_length=PIECE_CHARS, minloglevel=2)
    except RuntimeError as err:
        raise DataError(f"Expected texts SentencePiece can learn {vocab_size:,} subwords from. Received "
                        f"{len(texts):,} text(s), and SentencePiece said: {str(err).strip()[:300]}") from None
    return model.getvalue()


def decode_model(text) -> bytes:
    if not isinstance(text, str) or not text or len(text) > MAX_MODEL_B64:
        size = f"{len(text):,} characters" if isinstance(text, str) else type(text).__name__
        raise ConfigError(f"Expected the text encoder's SentencePiece model as base64 text of at most "
                          f"{MAX_MODEL_B64:,} characters. Received {size}.")
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise ConfigError("Expected the text encoder's SentencePiece model as base64 text. Received text that is "
                          "not base64.") from None


def load_processor(model: bytes | None):
    """A SentencePiece processor of these bytes, checked: it parses, has padding at 0 and unknown at 1, and
    encodes a probe text with ids inside its vocabulary."""
    import sentencepiece as spm

    if not model:  # empty bytes parse as an empty model, which then fails on every call
        raise ConfigError("Expected a SentencePiece model in the text encoder's settings. Received none.")
    processor = spm.SentencePieceProcessor()
    try:
        processor.LoadFromSerializedProto(model)
        size = processor.get_piece_size()
        ok = size >= 3 and processor.pad_id() == PAD and processor.unk_id() == UNK
        probe = processor.encode("deepworks probe 123") if ok else []
    except (RuntimeError, OSError, ValueError, TypeError) as err:
        raise ConfigError(f"Expected a SentencePiece model in the text encoder's settings. Received bytes that "
                          f"do not load as one ({str(err).strip()[:200]}).") from None
    if not ok or not all(0 <= i < size for i in probe):
        raise ConfigError("Expected a SentencePiece model with padding at id 0 and unknown at id 1 (as deepworks "
                          "trains them). Received a model without them.")
    return processor


def wordpiece_json(text) -> bytes:
    if not isinstance(text, str) or not text or len(text) > MAX_MODEL_B64:
        size = f"{len(text):,} characters" if isinstance(text, str) else type(text).__name__
        raise ConfigError(f"Expected the text encoder's WordPiece tokenizer as tokenizer.json text of at most "
                          f"{MAX_MODEL_B64:,} characters. Received {size}.")
    return text.encode("utf-8")


def load_wordpiece(model: bytes | None):
    """A `tokenizers` WordPiece tokenizer of this tokenizer.json, without its own padding and truncation (the
    encoder pads and cuts), checked: it parses (in Rust: JSON, never code), has [PAD] at 0 and an [UNK], and
    encodes a probe text with ids inside its vocabulary."""
    from tokenizers import Tokenizer

    try:
        tokenizer = Tokenizer.from_str((model or b"").decode("utf-8"))
        tokenizer.no_padding()
        tokenizer.no_truncation()
        size, probe = tokenizer.get_vocab_size(), tokenizer.encode("deepworks probe 123").ids
    except Exception as err:  # the library raises its own exception types for a malformed file
        raise ConfigError(f"Expected a WordPiece tokenizer.json in the text encoder's settings. Received text that "
                          f"does not load as one ({str(err).strip()[:200]}).") from None
    if tokenizer.token_to_id("[PAD]") != PAD or tokenizer.token_to_id("[UNK]") is None or not probe or not all(
            0 <= i < size for i in probe):
        raise ConfigError("Expected a WordPiece tokenizer with [PAD] at id 0 and an [UNK] token (as BERT's are). "
                          "Received one without them.")
    return tokenizer
