"""Sentence pairs for translation: a TSV of source<TAB>target, two line-aligned files, or a built-in set.

Built-ins: `dates` is generated on the spot (dates written many human ways -> ISO 8601), so it needs no
download; `multi30k` (German -> English image captions; `multi30k:en-fr` and the like pick other sides) is read
from the data directory or downloaded from its canonical repository and checked against each file's sha256.
Word-level tokenisation lives here too: lowercase, punctuation split off, a vocabulary with a minimum count.
"""

from __future__ import annotations

import calendar
import datetime as dt
import re
import warnings
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import DataError
from .builtin import Remote, RemoteFile, built_in_size, default_data_dir, ensure_files, inflate, verify_file
from .text import decode_text

PAD, UNK, BOS, EOS = "<pad>", "<unk>", "<s>", "</s>"
SPECIALS = (PAD, UNK, BOS, EOS)
MULTI30K_COMMIT = "a3d2e0d26b56f3846f66a952536ffed4e401d05a"
MULTI30K = Remote("multi30k", (f"https://raw.githubusercontent.com/multi30k/dataset/{MULTI30K_COMMIT}/data/task1/raw/",), (
    RemoteFile("train.en.gz", "d79cfa999dd4c51d2cb42499b6796d5a882c3a8a961923c25a898c90f8bbd56f"),
    RemoteFile("train.de.gz", "726e39b2fa9eb9ffb6dc763fb35a179f80fae06ffc5d28b6ace5faa883de28a6"),
    RemoteFile("train.fr.gz", "622e75069e9f4c577425c4f277116ce66e63a2401c0a2312d90073cb12379a3c"),
    RemoteFile("val.en.gz", "14f7d25ddd868909a9213e361768460edcacdd6ab9d1e77b92560dc10c10dc28"),
    RemoteFile("val.de.gz", "f0cba2f995189cf5770f29a8a9a537a3ad3f51657ad873405082ff6863a5e75a"),
    RemoteFile("val.fr.gz", "ca3106f1a72390591d25f6c45cb4cd39dec4cd3f123e099748a3ce5256c160e9"),
    RemoteFile("test_2016_flickr.en.gz", "611d361c6334bc7246101d48097c13cf5c4413c5befc793cc629934359d532d9"),
    RemoteFile("test_2016_flickr.de.gz", "9204244e408ccb38d2a55cfcd344df15005fc42a07a6e55ca6c52b6ababb8cc8"),
    RemoteFile("test_2016_flickr.fr.gz", "6d326e188d259fb1d04ac19eae3af956559b3a0b93d7635e56c90987c40c8b90"),
))
PAIR_BUILTINS = ("dates", "multi30k")


class PairWarning(UserWarning):
    """Problems with pairs that do not stop a run (skipped lines, truncated sentences)."""


@dataclass
class Pairs:
    source: list[str]
    target: list[str]
    description: str
    val: tuple[list[str], list[str]] | None = None
    test: tuple[list[str], list[str]] | None = None
    notes: list[str] = field(default_factory=list)


def load_pairs(source: str, target: str | None = None, data_dir: str | None = None, download: bool = True,
               strict: bool = False, encoding: str = "utf-8") -> Pairs:
    name, _, langs = source.partition(":")
    if name in PAIR_BUILTINS and not Path(source).exists():
        if name == "dates":  # dates:N, N pairs (20,000 without)
            return dates_pairs(built_in_size(source, langs, 100, 200_000, "pairs") if langs else 20_000)
        return multi30k(langs or "de-en", data_dir, download)
    path = Path(source)
    if not path.is_file():
        raise DataError(f"No such file '{source}'. Pass a TSV of source<TAB>target lines, a source file with "
                        f"--target FILE (line-aligned), or a built-in: {', '.join(PAIR_BUILTINS)}.")
    if target is not None:
        src, tgt = read_aligned(path, Path(target), encoding)
        return Pairs(src, tgt, f"'{path}' + '{target}': {len(src):,} line pairs")
    src, tgt, notes = read_tsv(path, strict, encoding)
    return Pairs(src, tgt, f"'{path}': {len(src):,} pairs", notes=notes)


def read_lines(path: Path, encoding: str = "utf-8") -> list[str]:
    """The lines of a text file (or a .gz of one, inflated with a cap), decoded as --encoding says. Line ends may be
    Unix, Windows or, for a file that has no other, old Macintosh carriage returns."""
    if not path.is_file():
        raise DataError(f"No such file '{path}'. Check the path.")
    raw = inflate(path, fix="Check the file.") if path.suffix == ".gz" else path.read_bytes()
    text = decode_text(raw, path, encoding)
    if "\r" in text and "\n" not in text:
        text = text.replace("\r", "\n")
    lines = text.split("\n")
    return lines[:-1] if lines[-1] == "" else lines  # a final newline ends the last line; it starts none


def read_tsv(path: Path, strict: bool = False, encoding: str = "utf-8") -> tuple[list[str], list[str], list[str]]:
    """source<TAB>target per line; lines with no tab, extra columns or an empty side are skipped with one warning
    that names them (or stop the run with `strict`)."""
    src, tgt, bad = [], [], []
    for number, line in enumerate(read_lines(path, encoding), 1):
        parts = line.split("\t")
        if len(parts) != 2 or not parts[0].strip() or not parts[1].strip():
            why = "no tab" if len(parts) == 1 else f"{len(parts)} columns" if len(parts) > 2 else "an empty side"
            bad.append(f"line {number} ({why})")
            continue
        src.append(parts[0].strip())
        tgt.append(parts[1].strip())
    notes = []
    if bad:
        shown = ", ".join(bad[:5]) + (f" and {len(bad) - 5} more" if len(bad) > 5 else "")
        message = (f"'{path}': {len(bad)} line(s) are not source<TAB>target pairs and were skipped: {shown}. "
                   f"Each line needs exactly one tab between two non-empty sentences.")
        if strict:
            raise DataError(message.replace("and were skipped", "").replace("  ", " ") + " (--strict is on.)")
        warnings.warn(message, PairWarning, stacklevel=2)
        notes.append(message)
    if not src:
        raise DataError(f"'{path}' has no source<TAB>target pairs. Each line needs one tab between a sentence and "
                        f"its translation.")
    return src, tgt, notes


def read_aligned(source: Path, target: Path, encoding: str = "utf-8") -> tuple[list[str], list[str]]:
    src, tgt = read_lines(source, encoding), read_lines(target, encoding)
    if len(src) != len(tgt):
        raise DataError(f"'{source}' has {len(src):,} lines but '{target}' has {len(tgt):,}. Line i of one must be "
                        f"the translation of line i of the other.")
    empty = [i + 1 for i, (a, b) in enumerate(zip(src, tgt)) if not a.strip() or not b.strip()]
    if empty:
        raise DataError(f"Line(s) {', '.join(map(str, empty[:10]))} of '{source}' / '{target}' are empty on one side. "
                        f"Remove those lines from both files.")
    return [s.strip() for s in src], [t.strip() for t in tgt]


def multi30k(langs: str, data_dir: str | None, download: bool) -> Pairs:
    try:
        src_lang, tgt_lang = langs.split("-")
    except ValueError:
        src_lang = tgt_lang = ""
    if {src_lang, tgt_lang} - {"en", "de", "fr"} or src_lang == tgt_lang:
        raise DataError(f"Unknown Multi30k direction '{langs}'. Use multi30k (German to English) or multi30k:SRC-TGT "
                        f"with two of en, de, fr, like multi30k:en-fr.")
    folder = ensure_files(MULTI30K, Path(data_dir) if data_dir else default_data_dir(), download, "Multi30k")
    for f in MULTI30K.files:
        verify_file(folder / f.name, f)

    def split(name: str) -> tuple[list[str], list[str]]:
        return read_lines(folder / f"{name}.{src_lang}.gz"), read_lines(folder / f"{name}.{tgt_lang}.gz")

    src, tgt = split("train")
    return Pairs(src, tgt, f"Multi30k {src_lang}->{tgt_lang}: {len(src):,} train / 1,014 val / 1,000 test2016 pairs "
                           f"from '{folder}'", val=split("val"), test=split("test_2016_flickr"))


# --- the generated default: dates ---------------------------------------------------------------
def ordinal(n: int) -> str:
    return f"{n}{'th' if 11 <= n % 100 <= 13 else {1: 'st', 2: 'nd', 3: 'rd'}.get(n % 10, 'th')}"


def human_date(d: dt.date, rng: np.random.Generator) -> str:
    month, short, day = calendar.month_name[d.month].lower(), calendar.month_abbr[d.month].lower(), d.day
    weekday = calendar.day_name[d.weekday()].lower()
    forms = [
        f"{day} {month} {d.year}", f"{month} {day}, {d.year}", f"the {ordinal(day)} of {month} {d.year}",
        f"{weekday}, {month} {day}, {d.year}", f"{short} {day} {d.year}", f"{day:02d}.{d.month:02d}.{d.year}",
        f"{ordinal(day)} {short} {d.year}", f"{weekday} {day} {month} {d.year}", f"{month} {ordinal(day)} {d.year}",
    ]
    return forms[int(rng.integers(len(forms)))]


def dates_pairs(n: int = 20_000, seed: int = 0) -> Pairs:
    """`n` random dates between 1950 and 2049, each written one of nine human ways, paired with its ISO form."""
    rng = np.random.default_rng(seed)
    start, span = dt.date(1950, 1, 1).toordinal(), (dt.date(2049, 12, 31) - dt.date(1950, 1, 1)).days + 1
    days = [dt.date.fromordinal(start + int(k)) for k in rng.integers(0, span, n)]
    return Pairs([human_date(d, rng) for d in days], [d.isoformat() for d in days],
                 f"dates: {n:,} dates written in nine human ways, to ISO 8601 (generated, seed {seed})")


# --- word-level tokenisation ---------------------------------------------------------------------
TOKEN = re.compile(r"\w+|[^\w\s]")


def tokenize(sentence: str, lowercase: bool = True) -> list[str]:
    return TOKEN.findall(sentence.lower() if lowercase else sentence)


def detokenize(tokens: list[str]) -> str:
    """Words joined by spaces, with no space before closing punctuation or around hyphens and apostrophes."""
    text = " ".join(tokens)
    text = re.sub(r" ([.,!?;:%)\]}])", r"\1", text)
    text = re.sub(r"([(\[{]) ", r"\1", text)
    return re.sub(r" ?([-'/]) ?", r"\1", text)


def build_vocab(sentences: list[list[str]], min_freq: int) -> list[str]:
    """The special tokens, then every token seen at least `min_freq` times, most frequent first (ties by name)."""
    counts = Counter(t for s in sentences for t in s)
    kept = sorted((t for t, c in counts.items() if c >= min_freq and t not in SPECIALS), key=lambda t: (-counts[t], t))
    return [*SPECIALS, *kept]
