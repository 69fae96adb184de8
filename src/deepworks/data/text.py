"""Text sources: one file, a folder of text files, or a built-in corpus, read into one string with clear errors.

Built-ins: `python-stdlib` is made on the spot from this Python's own standard-library
source (no download, any machine); `tiny-shakespeare` (Karpathy's 1.1 MB char-rnn
corpus) is read from the data directory or downloaded and checked against its sha256.
"""

from __future__ import annotations

import sysconfig
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import DataError
from .builtin import Remote, RemoteFile, built_in_size, default_data_dir, ensure_files, verify_file
from .images import is_hidden

TINY_SHAKESPEARE = Remote(
    "tiny_shakespeare", ("https://raw.githubusercontent.com/karpathy/char-rnn/master/data/tinyshakespeare/",),
    (RemoteFile("input.txt", "86c4e6aa9db7c042ec79f339dcb96d42b0075e16b8fc2e86bf0ca57e2dc565ed"),))
TEXT_BUILTINS = ("python-stdlib", "tiny-shakespeare")
STDLIB_CHARS = 500_000  # enough to learn Python's look in a couple of minutes on a laptop CPU
SNIFF_BYTES = 8192  # a NUL byte in the first 8 KiB marks a binary file (as git and grep decide)


@dataclass
class TextSource:
    text: str
    description: str
    files: list[Path] = field(default_factory=list)
    skipped: list[Path] = field(default_factory=list)  # binary files left out of a folder


def load_text_source(source: str, encoding: str = "utf-8", data_dir: str | None = None,
                     download: bool = True) -> TextSource:
    path = Path(source)
    name, _, size = source.partition(":")
    if name == "python-stdlib" and size and not path.exists():  # python-stdlib:N, its first N characters
        return python_stdlib(built_in_size(source, size, 10_000, STDLIB_CHARS, "characters"))
    if source in TEXT_BUILTINS and not path.exists():
        return python_stdlib() if source == "python-stdlib" else tiny_shakespeare(data_dir, download)
    if path.is_dir():
        return read_text_folder(path, encoding)
    if path.is_file():
        text = read_text_file(path, encoding)
        return TextSource(text, f"'{path}': {len(text):,} characters", [path])
    raise DataError(f"No such file or folder '{source}'. Pass a UTF-8 text file, a folder of text files, or a "
                    f"built-in corpus: {', '.join(TEXT_BUILTINS)}.")


def read_text_file(path: Path, encoding: str = "utf-8") -> str:
    """The file's text with Windows line ends made '\\n' and a byte-order mark dropped."""
    try:
        raw = path.read_bytes()
    except OSError as err:
        raise DataError(f"Cannot read '{path}' ({err.strerror or err}). Pass a plain-text file.") from None
    if not raw.strip():
        raise DataError(f"'{path}' is empty. Pass a file with some text in it (a few thousand characters at least).")
    return decode_text(raw, path, encoding)


UTF16_BOMS = (b"\xff\xfe", b"\xfe\xff")


def decode_text(raw: bytes, path: Path, encoding: str = "utf-8") -> str:
    """Bytes -> text: UTF-16 when the file says so (its byte-order mark, as Windows Notepad's 'Unicode' writes it)
    or --encoding utf-16 asks; else UTF-8 (a UTF-8 byte-order mark dropped) or Latin-1 as --encoding asks. A binary
    file, UTF-16 without its mark, invalid UTF-8 and NUL characters each get a message with the fix."""
    if raw[:2] in UTF16_BOMS or encoding == "utf-16":
        try:
            text = raw.decode("utf-16" if raw[:2] in UTF16_BOMS else "utf-16-le")
        except UnicodeDecodeError as err:
            raise DataError(f"'{path}' is not valid UTF-16 text (bytes {err.start:,} to {err.end:,}). Save it as UTF-8, "
                            f"or pass the --encoding it was written in.") from None
    elif b"\0" in raw[:SNIFF_BYTES]:
        if looks_utf16(raw[:SNIFF_BYTES]):
            raise DataError(f"'{path}' looks like UTF-16 text without a byte-order mark (every other byte is 0). Add "
                            f"--encoding utf-16, or save it as UTF-8.")
        raise DataError(f"'{path}' looks like a binary file (it holds NUL bytes), not text. Pass a plain-text file; "
                        f"export documents (PDF, Word) to .txt first.")
    elif encoding == "latin-1":
        text = raw.decode("latin-1")
    else:
        try:
            text = raw.decode("utf-8-sig")
        except UnicodeDecodeError as err:
            raise DataError(not_utf8_message(path, raw, err.start)) from None
    nul = text.find("\0")
    if nul >= 0:
        line = text.count("\n", 0, nul) + 1
        raise DataError(f"'{path}' holds NUL characters (the first on line {line:,}, character {nul:,}): binary content "
                        f"inside a text file. Remove it, or pass only the text.")
    return text.replace("\r\n", "\n")


def looks_utf16(head: bytes) -> bool:
    """Mostly ASCII text in UTF-16: NUL in nearly every odd (little-endian) or even (big-endian) byte, few elsewhere."""
    if len(head) < 4:
        return False
    odd, even = head[1::2].count(0) / len(head[1::2]), head[0::2].count(0) / len(head[0::2])
    return max(odd, even) > 0.7 and min(odd, even) < 0.1


def not_utf8_message(path: Path, raw: bytes, at: int) -> str:
    line = raw.count(b"\n", 0, at) + 1
    column = at - (raw.rfind(b"\n", 0, at) + 1) + 1
    return (f"'{path}' is not UTF-8 text: byte 0x{raw[at]:02x} at line {line}, column {column} (byte {at:,}) is not "
            f"valid UTF-8. If the file is Latin-1 or Windows-1252 text, add --encoding latin-1 to read it as such; "
            f"or convert it to UTF-8 (iconv -f WINDOWS-1252 -t UTF-8 < old.txt > new.txt).")


def read_text_folder(folder: Path, encoding: str) -> TextSource:
    """Every non-hidden text file under `folder`, in sorted path order, joined with a newline between files."""
    files, skipped = [], []
    for f in sorted(p for p in folder.rglob("*") if p.is_file() and not any(map(is_hidden, p.relative_to(folder).parts))):
        with open(f, "rb") as fh:
            head = fh.read(SNIFF_BYTES)
        binary = b"\0" in head and head[:2] not in UTF16_BOMS and not (encoding == "utf-16" and looks_utf16(head))
        (skipped if binary else files).append(f)
    files = [f for f in files if f.stat().st_size > 0]
    if not files:
        found = f"{len(skipped)} binary file(s) such as '{skipped[0].name}'" if skipped else "no files"
        raise DataError(f"The folder '{folder}' has no text files (found {found}). Put .txt (or other plain-text) "
                        f"files in it, or pass one text file.")
    parts = [read_text_file(f, encoding) for f in files]
    text = "".join(p if p.endswith("\n") else p + "\n" for p in parts)
    note = f", {len(skipped)} binary file(s) skipped" if skipped else ""
    return TextSource(text, f"'{folder}': {len(text):,} characters from {len(files)} file(s){note}", files, skipped)


def python_stdlib(limit: int = STDLIB_CHARS, per_module: int = 20_000) -> TextSource:
    """`limit` characters of this Python's public standard-library modules, in name order, at most `per_module`
    characters (whole lines) from each, so that no single big module dominates what the model learns."""
    root = Path(sysconfig.get_paths()["stdlib"])
    parts, total, files = [], 0, []
    for f in sorted(root.glob("*.py")):
        if f.name.startswith("_"):
            continue
        try:
            text = f.read_text(encoding="utf-8").replace("\r\n", "\n")
        except (OSError, UnicodeDecodeError):
            continue
        if len(text) > per_module:
            text = text[:text.rfind("\n", 0, per_module) + 1]
        parts.append(text)
        files.append(f)
        total += len(text)
        if total >= limit:
            break
    if total < 10_000:
        raise DataError(f"This Python has no standard-library source files in '{root}' to build the python-stdlib "
                        f"corpus from. Pass a text file with --data instead.")
    text = "".join(parts)[:limit]
    return TextSource(text, f"python-stdlib: {len(text):,} characters of Python source from {len(files)} "
                            f"standard-library modules ({files[0].name} to {files[-1].name}) in '{root}'", files)


def tiny_shakespeare(data_dir: str | None, download: bool) -> TextSource:
    folder = ensure_files(TINY_SHAKESPEARE, Path(data_dir) if data_dir else default_data_dir(), download,
                          "Tiny Shakespeare")
    path = folder / "input.txt"
    verify_file(path, TINY_SHAKESPEARE.files[0])
    text = read_text_file(path)
    return TextSource(text, f"Tiny Shakespeare: {len(text):,} characters from '{path}'", [path])


ENCODE_CHUNK = 1 << 20  # characters converted at a time: a 200 MB text never has a 4-byte-per-character copy whole


def id_dtype(vocab_size: int) -> np.dtype:
    """The smallest integer type that holds every id: a byte for the usual text of at most 256 characters."""
    return np.dtype(np.uint8 if vocab_size <= 256 else np.int16 if vocab_size <= 32767 else np.int32)


def encode(text: str, vocab: list[str]) -> np.ndarray:
    """Character ids of `text` in the sorted `vocab` (every character of `text` must be in it), in the smallest
    integer type that holds them, converted a chunk at a time to keep the memory peak near the result's size."""
    table = np.array([ord(c) for c in vocab], dtype=np.uint32)
    out = np.empty(len(text), dtype=id_dtype(len(vocab)))
    for i in range(0, len(text), ENCODE_CHUNK):
        points = np.frombuffer(text[i:i + ENCODE_CHUNK].encode("utf-32-le"), dtype=np.uint32)
        out[i:i + len(points)] = np.searchsorted(table, points)
    return out


def unknown_characters(text: str, vocab: list[str]) -> list[str]:
    return sorted(set(text) - set(vocab))
