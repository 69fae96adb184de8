"""Labelled texts for text classification: a CSV, TSV or JSONL file, a folder with one sub-folder of .txt files per
class, or a built-in: `moods` (short English sentences, happy, sad or angry) is generated on the spot; `langid`
(Multi30k's captions, en/de/fr) and `sst2` (the Stanford Sentiment Treebank, with its own split) are read from the data
directory or downloaded, and checked against their sha256.

Texts are read as UTF-8 and stripped. A row without a text or a label is skipped and named in a note (`strict` stops
instead), a text longer than MAX_TEXT_CHARS is cut and counted. What cannot be read as meant (ragged rows, duplicate
columns, a quote left open, bytes that are not UTF-8, a label column of numbers to predict rather than classes) stops
with a DataError saying where and how to fix it. The work is bounded: MAX_ROWS examples, MAX_FILE_BYTES bytes."""

from __future__ import annotations

import csv
import io
import json
import random
import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import DataError
from .arrays import DataWarning
from .builtin import (Remote, RemoteFile, built_in_size, default_data_dir, ensure_files, inflate, read_verified,
                      verify_file)
from .images import is_hidden
from .pairs import MULTI30K, read_lines

TEXT_BUILTINS = ("moods", "langid", "sst2")
MAX_TEXT_CHARS = 10_000   # a longer text is cut to this, with a note naming how many were cut (lines of megabytes)
MAX_ROWS = 2_000_000      # examples (rows, lines, files) at most: a bound on the work and the memory
MAX_FILE_BYTES = 2 * 10 ** 9  # a file (decompressed), or a folder's .txt files together, at most
# The csv module refuses a field longer than its limit (131,072 characters by default, one setting for the whole
# process). It is raised while a file is read and put back after: a text of megabytes is then cut with a note rather
# than refused, while a quote left open still stops at a bound instead of making the rest of a 2 GB file one field.
FIELD_LIMIT = 32 * 2 ** 20
MAX_NUMERIC_CLASSES = 20  # more distinct numbers than this, unless they are ids 0..K-1 or 1..K: a regression target
SHOWN = 10                # places named in a note or an error, at most
BINARY = object()         # the text of a file holding NUL bytes
TEXT_NAMES = ("text", "sentence", "review", "content", "comment", "document", "body", "message", "tweet")
LABEL_NAMES = ("label", "labels", "class", "category", "sentiment", "target", "topic", "language", "lang", "y")
KINDS = {".csv": "csv", ".tsv": "tsv", ".jsonl": "jsonl", ".ndjson": "jsonl"}
INTEGER = re.compile(r"[+-]?\d+")


@dataclass
class Texts:
    texts: list[str]             # one string per example, as read (stripped; capped at MAX_TEXT_CHARS)
    labels: np.ndarray           # int64 (N,), indices into classes
    classes: list[str]           # sorted class names (whole numbers in numeric order: 2 before 10), at least 2
    description: str             # one line for the report: what was read, from where, how many
    split: dict[str, list[int]] | None = None   # the source's own split, {"train": [...], "val": [...], "test": [...]}
                                                # (indices into texts; "val" may be absent) or None: the task splits
    notes: list[str] = field(default_factory=list)  # warnings said before training (skipped rows, capped texts)


def load_texts(source: str, data_dir: str | None = None, download: bool = True, text_column: str | None = None,
               label_column: str | None = None, strict: bool = False) -> Texts:
    """Texts and their labels from a .csv/.tsv/.jsonl file (or its .gz), a folder of class sub-folders of .txt files,
    or a built-in (moods, moods:N, langid, langid:N, sst2) when no such path exists."""
    path = Path(source)
    name, colon, size = source.partition(":")
    if name in TEXT_BUILTINS and not path.exists():
        if name == "moods":
            return make_moods(built_in_size(source, size, 10, 100_000, "sentences per class") if colon else 200)
        if name == "langid":
            n = built_in_size(source, size, 10, LANGID_MAX, "sentences per language") if colon else 3000
            return load_langid(n, data_dir, download)
        if colon:
            raise DataError(f"--data {source}: Expected sst2 (its size is fixed by its release). Received: '{source}'.")
        return load_sst2(data_dir, download)
    if path.is_dir():
        return read_text_folder(path, strict)
    if path.is_file():
        return read_table(path, text_column, label_column, strict)
    raise DataError(f"No such file or folder '{source}'. Expected a .csv, .tsv or .jsonl file with a text and a label "
                    f"column, a folder with one sub-folder of .txt files per class, or a built-in: "
                    f"{', '.join(TEXT_BUILTINS)}.")


# --- bytes to text ---------------------------------------------------------------------------------------------------
def read_raw(path: Path) -> bytes:
    """The file's bytes (inflated for .gz), refused past MAX_FILE_BYTES before they are read."""
    try:
        if path.stat().st_size > MAX_FILE_BYTES:
            raise DataError(too_much(path, f"{path.stat().st_size:,} bytes", f"{MAX_FILE_BYTES:,} bytes"))
        if path.name.lower().endswith(".gz"):
            return inflate(path, MAX_FILE_BYTES, fix="Check the file, or pass it decompressed.")
        return path.read_bytes()
    except OSError as err:
        raise DataError(f"Cannot read '{path}' ({err.strerror or err}).") from None


def too_much(path: Path, received: str, bound: str) -> str:
    return (f"'{path}' holds {received}: Expected at most {bound}, a bound on the work and the memory. Train on a "
            f"sample of it (shuf -n 1000000 big.csv > sample.csv keeps a million lines; put the header back).")


def decode(raw: bytes, path: Path) -> str:
    """UTF-8 text (a byte-order mark dropped). NUL bytes (binary files, UTF-16) and bytes that are not UTF-8 are errors
    that name the line: guessing another encoding could train on garbled text without a word said."""
    nul = raw.find(b"\0")
    if nul >= 0:
        line = raw.count(b"\n", 0, nul) + 1
        raise DataError(f"'{path}' holds NUL bytes (the first on line {line:,}): Expected plain UTF-8 text. It is a "
                        f"binary file (or UTF-16 text): export or re-save it as UTF-8 text.")
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        at = err.start
        line, column = raw.count(b"\n", 0, at) + 1, at - (raw.rfind(b"\n", 0, at) + 1) + 1
        raise DataError(f"'{path}' is not UTF-8 text: byte 0x{raw[at]:02x} on line {line:,}, column {column:,} is not "
                        f"valid UTF-8. Re-save the file as UTF-8 (in Excel: 'CSV UTF-8'; a Windows-1252 file: "
                        f"iconv -f WINDOWS-1252 -t UTF-8 < old.csv > new.csv).") from None


# --- tables: CSV, TSV, JSON Lines ------------------------------------------------------------------------------------
def read_table(path: Path, text_column: str | None, label_column: str | None, strict: bool) -> Texts:
    name = path.name.lower()
    kind = KINDS.get(Path(name[:-3] if name.endswith(".gz") else name).suffix)
    if kind is None:
        raise DataError(f"'{path}': Expected a .csv, .tsv, .jsonl or .ndjson file (or one gzipped, like .csv.gz), or a "
                        f"folder of class folders of .txt files. Received a '{''.join(path.suffixes)}' file.")
    raw = read_raw(path)
    if not raw.strip():
        raise DataError(f"'{path}' is empty. Expected a header naming a text and a label column, a row per example.")
    text = decode(raw, path)
    columns, rows, header_line = parse_jsonl(text, path) if kind == "jsonl" else parse_delimited(text, path, kind)
    if not rows:
        raise DataError(f"'{path}' has a header ({', '.join(map(repr, columns))}) but no rows: Expected one row per "
                        f"example below it.")
    ti, li, rows, notes = pick_columns(path, columns, rows, header_line, text_column, label_column)
    texts, labels, skipped = collect(path, [(f"line {n}", r[ti], r[li]) for n, r in rows], strict)
    description = (f"'{path}': {len(texts):,} texts in {len(set(labels))} classes (text column '{columns[ti]}', "
                   f"label column '{columns[li]}')")
    return to_texts(path, texts, labels, description, notes + skipped, column=f"the label column '{columns[li]}'")


def parse_delimited(text: str, path: Path, kind: str) -> tuple[list[str], list[tuple[int, list]], int]:
    """(column names, rows as (line number, fields), the header's line number) of a CSV or TSV text."""
    # TSV files (GLUE's, SST's) are not quoted: a sentence may start with a quote mark it never closes. CSV is read
    # strictly: a quote left open, or text after a closing one, is an error naming the line, not rows merged into one.
    options = {"delimiter": "\t", "quoting": csv.QUOTE_NONE} if kind == "tsv" else {"strict": True}
    header, header_line, rows, start = None, 0, [], 1
    old_limit = csv.field_size_limit(FIELD_LIMIT)
    reader = csv.reader(io.StringIO(text, newline=""), **options)
    try:
        for fields in reader:
            line, start = start, reader.line_num + 1
            if not fields or (len(fields) == 1 and not fields[0].strip()):
                continue  # a blank line holds no example
            if header is None:
                header, header_line = check_columns(path, fields), line
            elif len(fields) != len(header):
                raise DataError(ragged(path, line, header, fields, kind))
            else:
                rows.append((line, fields))
                if len(rows) > MAX_ROWS:
                    raise DataError(too_much(path, f"more than {MAX_ROWS:,} rows", f"{MAX_ROWS:,}"))
    except csv.Error as err:
        raise DataError(f"'{path}', the row that starts on line {start:,}: Expected CSV quoting: a field holding "
                        f"commas, quotes or line breaks in double quotes, its own quotes doubled (\"say \"\"hi\"\"\"). "
                        f"Received: {err} (a quote left open runs on to the end of the file).") from None
    finally:
        csv.field_size_limit(old_limit)
    return header or [], rows, header_line


def ragged(path: Path, line: int, header: list[str], fields: list[str], kind: str) -> str:
    shown = ", ".join(repr(f[:40] + ("..." if len(f) > 40 else "")) for f in fields[:5]) + (", ..." * (len(fields) > 5))
    fix = "a text holding commas goes in double quotes" if kind == "csv" else "a text may not hold a tab"
    return (f"'{path}' line {line:,}: Expected {len(header)} fields, as the header has ({', '.join(map(repr, header))})"
            f". Received {len(fields)}: {shown}. Every row needs one value per column: {fix}.")


def check_columns(path: Path, columns: list[str]) -> list[str]:
    """The column names, refused when two are the same (letter case and spaces aside): which one would be meant?"""
    keys = [c.strip().lower() for c in columns]
    twice = [i for i, k in enumerate(keys) if k in keys[:i]]
    if twice:
        i, j = keys.index(keys[twice[0]]), twice[0]
        raise DataError(f"'{path}': Expected distinct column names. Received {columns[i]!r} and {columns[j]!r} "
                        f"(columns {i + 1} and {j + 1}), the same name: rename one.")
    return columns


def unique_keys(pairs: list[tuple[str, object]]) -> dict:
    keys = [k for k, _ in pairs]
    if len(set(keys)) < len(keys):
        raise ValueError(f"Expected distinct keys. Received '{next(k for k in keys if keys.count(k) > 1)}' twice.")
    return dict(pairs)


def parse_jsonl(text: str, path: Path) -> tuple[list[str], list[tuple[int, list]], int]:
    """(keys, rows as (line number, values), 0) of JSON Lines: one object per line, blank lines skipped."""
    objects, names = [], {}
    for number, line in enumerate(text.split("\n"), 1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line, object_pairs_hook=unique_keys)
        except ValueError as err:  # invalid JSON, or a key twice (unique_keys)
            raise DataError(f"'{path}' line {number:,}: " + (str(err) if not isinstance(err, json.JSONDecodeError) else
                            f"Expected one JSON object per line, like {{\"text\": \"...\", \"label\": \"...\"}}. "
                            f"Received invalid JSON ({err.msg}, column {err.colno}). A .json file holding one array "
                            f"is not JSON Lines: write one object per line.")) from None
        if not isinstance(obj, dict):
            raise DataError(f"'{path}' line {number:,}: Expected a JSON object like {{\"text\": \"...\", \"label\": "
                            f"\"...\"}}. Received {type(obj).__name__}: {line.strip()[:60]}")
        names.update(dict.fromkeys(obj))
        objects.append((number, obj))
        if len(objects) > MAX_ROWS:
            raise DataError(too_much(path, f"more than {MAX_ROWS:,} lines", f"{MAX_ROWS:,}"))
    columns = check_columns(path, list(names))
    return columns, [(n, [o.get(c) for c in columns]) for n, o in objects], 0


def pick_columns(path: Path, columns: list[str], rows: list, header_line: int, text_column: str | None,
                 label_column: str | None) -> tuple[int, int, list, list[str]]:
    """(text column, label column, rows, notes): by the names given, else by the usual names; two columns named
    otherwise are told apart by length (see guess_two_columns)."""
    lower = [c.strip().lower() for c in columns]
    found: list[int | None] = []
    for given, names, flag in ((text_column, TEXT_NAMES, "text"), (label_column, LABEL_NAMES, "label")):
        if given and given.strip().lower() not in lower:
            raise DataError(f"'{path}': Expected a column '{given}' (--{flag}-column). Received the columns: "
                            f"{', '.join(map(repr, columns))}.")
        wanted = [given.strip().lower()] if given else [n for n in names if n in lower and lower.index(n) not in found]
        found.append(lower.index(wanted[0]) if wanted else None)
    ti, li = found
    if ti is not None and ti == li:
        raise DataError(f"'{path}': Expected different text and label columns. Received '{columns[ti]}' for both.")
    notes = []
    if len(columns) == 2 and ti is None and li is None:
        ti, li, rows, note = guess_two_columns(path, columns, rows, header_line)
        notes.append(note)
    elif len(columns) == 2 and (ti is None or li is None):
        ti, li = (1 - li, li) if ti is None else (ti, 1 - ti)
    if ti is None or li is None:
        raise DataError(f"'{path}': Expected a text column (named {', '.join(TEXT_NAMES)}) and a label column (named "
                        f"{', '.join(LABEL_NAMES)}). Received the columns: {', '.join(map(repr, columns))}. Name "
                        f"them with --text-column and --label-column.")
    return ti, li, rows, notes


def guess_two_columns(path: Path, columns: list[str], rows: list, header_line: int) -> tuple[int, int, list, str]:
    """Two columns with no usual names: the longer on average is the text. The first line is a header unless its
    label occurs again below (then the file has no header, and that line is an example too); a note says which."""
    mean = [np.mean([len(str(r[i] or "")) for _, r in rows]) for i in (0, 1)]
    ti = 0 if mean[0] >= mean[1] else 1
    li = 1 - ti
    as_data = bool(header_line) and columns[li].strip() in {str(r[li]).strip() for _, r in rows}
    if as_data:
        rows = [(header_line, list(columns)), *rows]
    first = (f"line {header_line} read as an example (its label occurs again below)" if as_data else
             f"line {header_line} read as the header" if header_line else "the keys read as column names")
    return ti, li, rows, (f"'{path}' names no text or label column ({columns[0]!r}, {columns[1]!r}): column {ti + 1} "
                          f"is read as the text (the longer on average), column {li + 1} as the label, {first}. "
                          f"Name them with --text-column and --label-column if that is wrong.")


# --- from rows to examples -------------------------------------------------------------------------------------------
def as_string(value, path: Path, where: str, what: str) -> str:
    """A text or label as a stripped string: JSON numbers and booleans as written (1.0 as 1), null as missing."""
    if isinstance(value, (list, dict)):
        raise DataError(f"'{path}' {where}: Expected one {what} (a string or a number). Received "
                        f"{json.dumps(value)[:60]}. One label per example: multi-label data is not supported.")
    if value is None or isinstance(value, bool):
        return "" if value is None else str(value).lower()
    return str(int(value) if isinstance(value, float) and value.is_integer() else value).strip()


def collect(path: Path, items: list[tuple[str, object, object]], strict: bool) -> tuple[list, list, list[str]]:
    """(texts, labels, notes) of (where, text, label) items: those without a text (or BINARY) or a label skipped and
    named in a note (an error with `strict`), texts longer than MAX_TEXT_CHARS cut and counted."""
    texts, labels, bad, cut, longest = [], [], [], 0, 0
    for where, text, label in items:
        if text is BINARY:
            bad.append(f"{where} (binary: NUL bytes)")
            continue
        text, label = as_string(text, path, where, "text"), as_string(label, path, where, "label")
        if not text or not label:
            bad.append(f"{where} ({'empty text' if not text else 'no label'})")
            continue
        if len(text) > MAX_TEXT_CHARS:
            cut, longest, text = cut + 1, max(longest, len(text)), text[:MAX_TEXT_CHARS]
        texts.append(text)
        labels.append(label)
    notes = []
    if bad:
        shown = ", ".join(bad[:SHOWN]) + (f" and {len(bad) - SHOWN:,} more" if len(bad) > SHOWN else "")
        if strict or not texts:
            raise DataError(f"'{path}': Expected a text and a label in every example"
                            f"{' (--strict is on)' if strict else ''}. Received {len(bad):,} without: {shown}.")
        notes.append(f"'{path}': {len(bad):,} example(s) without a text or a label skipped: {shown}.")
    if cut:
        notes.append(f"'{path}': {cut:,} text(s) longer than {MAX_TEXT_CHARS:,} characters (the longest {longest:,}) "
                     f"were cut to their first {MAX_TEXT_CHARS:,}.")
    return texts, labels, notes


def to_texts(path: Path, texts: list[str], labels: list[str], description: str, notes: list[str],
             split: dict | None = None, column: str = "the labels") -> Texts:
    """The checked Texts: at least two classes, not a column of numbers to predict; each note warned about once."""
    distinct = set(labels)
    check_not_continuous(path, distinct, len(labels), column)
    if len(distinct) < 2:
        raise DataError(f"'{path}' has one class only ('{next(iter(distinct))}', all {len(labels):,} examples): "
                        f"Expected at least 2 classes in {column}. A classifier learns to tell classes apart.")
    integers = all(INTEGER.fullmatch(c) for c in distinct)
    classes = sorted(distinct, key=lambda c: (int(c), c)) if integers else sorted(distinct)
    index = {c: i for i, c in enumerate(classes)}
    y = np.fromiter((index[c] for c in labels), dtype=np.int64, count=len(labels))
    for note in notes:
        warnings.warn(note, DataWarning, stacklevel=3)
    return Texts(texts, y, classes, description, split, list(notes))


def check_not_continuous(path: Path, distinct: set[str], n: int, column: str) -> None:
    """Numbers as labels are class ids (0/1, 1..5 stars, 0..76 intents) unless there are too many of them to be
    classes: more than a third of the examples, or more than MAX_NUMERIC_CLASSES that are not ids 0..K-1 or 1..K."""
    try:
        values = sorted(float(c) for c in distinct)
    except ValueError:
        return
    k = len(values)
    ids = values in ([float(i) for i in range(k)], [float(i) for i in range(1, k + 1)])
    if (k >= 3 and k > n / 3) or (k > MAX_NUMERIC_CLASSES and not ids):
        shown = ", ".join(sorted(distinct, key=float)[:5])
        raise DataError(f"'{path}': {column} holds {k:,} distinct numbers among {n:,} examples ({shown}, ...): it "
                        f"looks like a number to predict (regression), not classes. Expected a few classes with several"
                        f" examples each: pick another column with --label-column, or bin the numbers (low / high).")


# --- a folder of class folders of .txt files -------------------------------------------------------------------------
def read_text_folder(root: Path, strict: bool) -> Texts:
    """One example per .txt file, its class the name of the sub-folder it is in (at any depth below it)."""
    folders = sorted(p for p in root.iterdir() if p.is_dir() and not is_hidden(p.name))
    if not folders:
        raise DataError(f"'{root}' has no class sub-folders. Expected one folder per class holding its .txt files, "
                        f"one text per file, like {root}/positive/1.txt and {root}/negative/1.txt.")
    items, other, total, notes = [], [], 0, []
    loose = [p.name for p in root.iterdir() if p.is_file() and not is_hidden(p.name)]
    for folder in folders:
        files = sorted(p for p in folder.rglob("*") if not any(is_hidden(s) for s in p.relative_to(folder).parts))
        for f in (p for p in files if p.is_file()):
            rel = str(f.relative_to(root))
            if f.suffix.lower() != ".txt":
                other.append(rel)
                continue
            total += f.stat().st_size
            if total > MAX_FILE_BYTES or len(items) >= MAX_ROWS:
                raise DataError(too_much(root, "too much", f"{MAX_ROWS:,} files and {MAX_FILE_BYTES:,} bytes"))
            raw = read_raw(f)  # a binary file with a .txt name is skipped (collect), not a text to learn from
            items.append((f"'{rel}'", BINARY if b"\0" in raw else decode(raw, f).replace("\r\n", "\n"), folder.name))
    for files, where in ((other, "not .txt"), (loose, f"directly in '{root}', not in a class folder,")):
        if files:
            notes.append(f"'{root}': {len(files):,} file(s) {where} were skipped (such as '{files[0]}'). Each text "
                         f"is one .txt file in its class's folder.")
    empty = sorted({f.name for f in folders} - {label for _, _, label in items})
    if empty:
        notes.append(f"'{root}': class folder(s) {', '.join(map(repr, empty[:SHOWN]))} hold no .txt text: left out.")
    if not items:
        raise DataError(f"'{root}' has no .txt files in its class folders. Expected one text per .txt file, like "
                        f"{folders[0]}/1.txt.")
    texts, labels, skipped = collect(root, items, strict)
    description = f"'{root}': {len(texts):,} texts in {len(set(labels))} classes (one .txt file each)"
    return to_texts(root, texts, labels, description, notes + skipped, column="the class folders")


# --- built-in: moods, generated --------------------------------------------------------------------------------------
SUBJECTS = "I|we|my sister|my brother|the kids|our neighbour|Tom|Anna|my friend|the whole team|my mother".split("|")
TIMES = "today|this morning|last night|on Monday|after work|at the weekend|yesterday|all week|before lunch".split("|")
PLACES = "at home|at the office|on the bus|in the park|at school|in the kitchen|at the station|in town".split("|")
ADVERBS = ("", "so ", "very ", "really ", "quite ", "rather ", "truly ", "a little ")
OBJECTS = "the whole evening|the long trip|the new house|the result|the meeting|that film|the phone call".split("|")
# Per mood: feelings, events, verbs, exclamations. Some words are shared on purpose (the exam, the job, the news) and
# one sentence in nine names a mood it is not ("did not feel happy"), so no single word decides the class.
MOOD_WORDS = {
    "angry": ("angry|furious|annoyed|irritated|livid|outraged|mad|fuming|enraged|cross|resentful|frustrated|indignant",
              "got cheated by the landlord|waited two hours for nothing|got lied to again|got a parking fine|got "
              "blamed for the mistake|had the bike stolen|got shouted at by the boss|got overcharged at the shop|"
              "stayed on hold all day|found the car scratched",
              "hated|cursed|despised|shouted about|complained about|slammed the door after",
              "this is completely unacceptable|how dare they|I have had enough|this is outrageous|enough is enough"),
    "happy": ("happy|glad|delighted|cheerful|joyful|thrilled|pleased|grateful|overjoyed|elated|content|proud|excited",
              "got the job|won the match|passed the exam|found the lost ring|got a surprise gift|saw old friends "
              "again|had a lovely dinner|got a pay rise|finished the marathon|heard the good news",
              "loved|enjoyed|adored|celebrated|laughed about|smiled at",
              "what a wonderful day|this is the best news ever|everything went perfectly|life is good|hooray"),
    "sad": ("sad|unhappy|lonely|miserable|heartbroken|gloomy|depressed|tearful|hopeless|disappointed|homesick",
            "lost the old dog|missed the last goodbye|failed the exam|had to move away|lost the job|got no letters|sat "
            "alone all evening|heard the bad news|watched the friends leave|broke grandma's vase",
            "missed|cried over|mourned|regretted|sighed about|wept about",
            "nothing feels right anymore|it is all so empty|I wish things were different|everything is grey|oh dear"),
}
MOODS = {mood: tuple(part.split("|") for part in parts) for mood, parts in MOOD_WORDS.items()}


# Sentence forms, some twice as likely; the last names a mood it is not, then the true one twice.
FORMS = ("{S} felt {a}{f} {t}", "{S} {e} {p} {t}", "{S} {e} {p} {t}", "{T} {s} {v} {o} {p}", "{Y}! {S} {e} {t}",
         "{S} {e} {p} and felt {a}{f}", "{S} {e} {p} and felt {a}{f}", "{Y}, {s} {v} {o}",
         "{S} did not feel {n} {t}: {s} {e} and felt {f}")


def mood_sentence(mood: str, rng: random.Random) -> str:
    (feel, event, verb, say), c = MOODS[mood], rng.choice
    s, t, y = c(SUBJECTS), c(TIMES), c(say)
    other = MOODS[c([m for m in MOODS if m != mood])][0]
    return c(FORMS).format(s=s, S=s[0].upper() + s[1:], t=t, T=t[0].upper() + t[1:], Y=y[0].upper() + y[1:],
                           a=c(ADVERBS), f=c(feel), e=c(event), v=c(verb), o=c(OBJECTS), p=c(PLACES), n=c(other)) + "."


def make_moods(n_per_class: int = 200, seed: int = 0) -> Texts:
    """`n_per_class` short English sentences of each mood (angry, happy, sad), the same for the same seed: made from
    templates and word lists, with shared filler, overlapping events and some negation, so that a bag of words
    learns them well but no single word does. No split: the task makes one."""
    rng, classes = random.Random(seed), sorted(MOODS)
    kept: dict[str, tuple[str, int]] = {}  # each sentence once (a copy would leak between the task's splits)
    for label, mood in enumerate(classes):
        start = len(kept)
        for _ in range(50 * n_per_class):
            sentence = mood_sentence(mood, rng)
            if kept.setdefault(sentence.lower(), (sentence, label)) and len(kept) - start == n_per_class:
                break
    texts, labels = [t for t, _ in kept.values()], np.array([k for _, k in kept.values()], dtype=np.int64)
    said = f"moods: {len(texts):,} generated sentences, {n_per_class:,} each of {', '.join(classes)} (seed {seed})"
    return Texts(texts, labels, classes, said)


# --- built-in: langid, from Multi30k ---------------------------------------------------------------------------------
LANGS = ("en", "de", "fr")
LANGID_MAX = 29_000 // len(LANGS)  # train sentences per language when each takes every third caption


def load_langid(n: int, data_dir: str | None, download: bool) -> Texts:
    """English, German and French sentences labelled en/de/fr, at most `n` per language from each of Multi30k's train,
    val and test2016 files. They are translations of the same captions, so language k takes only captions i with
    i % 3 == k: none is seen in two languages (a model cannot pair translations up) and the classes stay balanced."""
    folder = ensure_files(MULTI30K, Path(data_dir) if data_dir else default_data_dir(), download, "Multi30k")
    known = {f.name: f for f in MULTI30K.files}
    texts, labels, split, empty = [], [], {}, 0
    for part, key in (("train", "train"), ("val", "val"), ("test_2016_flickr", "test")):
        start = len(texts)
        for k, lang in enumerate(LANGS):
            path = folder / f"{part}.{lang}.gz"
            verify_file(path, known[path.name])
            lines = [s.strip() for s in read_lines(path)[k::len(LANGS)]]
            empty += sum(not s for s in lines)
            picked = [s for s in lines if s][:n]
            texts += picked
            labels += [lang] * len(picked)
        split[key] = list(range(start, len(texts)))
    notes = [f"Multi30k in '{folder}': {empty} empty line(s) skipped."] if empty else []
    sizes = " / ".join(f"{key} {len(idx):,}" for key, idx in split.items())
    return to_texts(folder, texts, labels, f"langid: Multi30k image captions in English, German and French (a "
                                           f"different caption in each language), {sizes} from '{folder}'",
                    notes, split, "the languages")


# --- built-in: SST-2 -------------------------------------------------------------------------------------------------
SST2_COMMIT = "ce2ab1719d32182e6233b24b2de246bd32814fde"
# The sha256 are of the plain .tsv files. The shared data folder keeps them gzipped (train.tsv.gz), and their inflated
# bytes carry these same sums; a download is kept as the plain .tsv the repository serves. Either form is read.
SST2 = Remote("sst2", (f"https://raw.githubusercontent.com/awake020/pytorch_Bert_sst2/{SST2_COMMIT}/SST-2/",), (
    RemoteFile("train.tsv", "e981ceb4fe6c9acd1c79851d0d091b9e78103f1f2a399ca83dda27915d41c56c"),
    RemoteFile("dev.tsv", "84207e6be5873fb18db798cc6faec86871f5a426554650ff64a1c34e87665f6f"),
    RemoteFile("test.tsv", "fcd46f967b7b8efd8b5398481dadf873886298d092195167af907fd532e81e1c"),
))
SST2_CLASSES = {"0": "negative", "1": "positive"}


def load_sst2(data_dir: str | None, download: bool) -> Texts:
    """SST-2 (Socher et al. 2013): film-review sentences labelled negative / positive, with its train, dev (as "val")
    and labelled test split, from DATA_DIR/sst2/{train,dev,test}.tsv[.gz] (columns label<TAB>sentence)."""
    root = Path(data_dir) if data_dir else default_data_dir()
    folder = root / SST2.folder
    missing = tuple(f for f in SST2.files if not any((folder / (f.name + gz)).is_file() for gz in ("", ".gz")))
    if missing:
        ensure_files(Remote(SST2.folder, SST2.urls, missing), root, download, "SST-2")
    texts, labels, split, notes = [], [], {}, []
    for f, key in zip(SST2.files, ("train", "val", "test")):
        gz = folder / f"{f.name}.gz"
        path = gz if gz.is_file() else folder / f.name
        raw = read_verified(path, RemoteFile(path.name, f.sha256, gz_content=path == gz))
        columns, rows, header_line = parse_delimited(decode(raw, path), path, "tsv")
        ti, li, rows, _ = pick_columns(path, columns, rows, header_line, None, "label")
        part, named, skipped = collect(path, [(f"line {n}", r[ti], r[li]) for n, r in rows], False)
        if set(named) - set(SST2_CLASSES):
            raise DataError(f"'{path}': Expected the labels 0 and 1. Received {sorted(set(named))[:5]}.")
        split[key] = list(range(len(texts), len(texts) + len(part)))
        texts += part
        labels += [SST2_CLASSES[c] for c in named]
        notes += skipped
    sizes = " / ".join(f"{key} {len(idx):,}" for key, idx in split.items())
    return to_texts(folder, texts, labels, f"SST-2 (Stanford Sentiment Treebank, film-review sentences, negative / "
                                           f"positive): {sizes} from '{folder}'", notes, split)
