"""Audio: short clips with labels, from a folder of class sub-folders, a CSV of path,label, or a built-in (`tones`,
generated on the spot; `fsdd`, the Free Spoken Digit Dataset).

Every clip becomes float32 mono samples in [-1, 1] at one sample rate: WAV files are read by scipy (8-, 16-, 24- and
32-bit PCM and 32-bit float), other formats (FLAC, OGG) by soundfile when it is installed; stereo is mixed down,
other rates are resampled (scipy's polyphase filter), and every clip is cropped or padded to one length. A file that
cannot be used is skipped with one warning that lists them all (`--strict` stops on it instead); a file that would
cost too much (hours of audio, a sample rate over 10 MHz) is refused before it is read, and resampling's work is
bounded whatever the rate. A file changed to be usable (float samples beyond full scale scaled down, bytes after its
declared sound left out) is said, naming it.
"""

from __future__ import annotations

import csv
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import DataError
from .arrays import DataWarning
from .images import is_hidden

AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".oga", ".mp3")
MIN_RATE = 1000          # Hz: below this a file is not sound a model can learn from (or its header is wrong)
MAX_RATE = 10_000_000    # Hz: far above any sound (ultrasound is recorded at up to 1 MHz); beyond, the header is wrong
MAX_MODEL_RATE = 192_000  # Hz: the most a run takes (tasks/audio.py refuses more); faster clips are resampled to it
MAX_FACTOR = 2 ** 14     # the resampler's up and down factors at most: its filter's size (see resample_factors)
MAX_FLOAT_PEAK = 2 ** 31  # float samples beyond what any integer PCM holds are not sound
MAX_SECONDS = 600        # a clip longer than 10 minutes is not a clip: it would take GBs once decoded
SILENCE = 1e-4           # peak amplitude under which a clip is silence


class UnreadableAudio(Exception):
    """Why a file cannot be used as a clip."""


@dataclass
class Clips:
    """Labelled clips: `samples` float32 (N, T) at `rate` Hz, `labels` (N,) class indices, `names` the files,
    `speakers` who spoke each (when the source knows), `split` the source's own split ({'train': [...], 'test':
    [...]}), `skipped` (file, reason)."""
    samples: np.ndarray
    rate: int
    labels: np.ndarray
    classes: list[str]
    names: list[str]
    description: str
    speakers: list[str] | None = None
    split: dict | None = None
    skipped: list[tuple[str, str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


# --- one file ---------------------------------------------------------------------------------------------------------
def write_wav(path, samples: np.ndarray, rate: int) -> None:
    """Float samples in [-1, 1] as a 16-bit PCM WAV file (or into a file object), which every browser plays."""
    import scipy.io.wavfile

    scipy.io.wavfile.write(path, rate, (np.clip(samples, -1, 1) * 32767).astype(np.int16))


def read_audio(path: Path | bytes, name: str | None = None, notes: list[str] | None = None) -> tuple[np.ndarray, int]:
    """(float32 samples (T, C) in [-1, 1], sample rate) of a WAV file (or other formats with soundfile), or of its
    bytes; UnreadableAudio with the reason when it cannot be used. What was changed to make it usable (float samples
    scaled down, a file read only as far as its header says) goes to `notes`, or when none is given, to a warning
    naming the file (`name`, or else the path)."""
    import io

    raw = path if isinstance(path, bytes) else None
    size = len(raw) if raw is not None else path.stat().st_size
    if size == 0:
        raise UnreadableAudio("empty file (0 bytes)")
    source = io.BytesIO(raw) if raw is not None else path
    head = read_bytes(path, 0, 12)
    said = []
    if head[:4] in (b"RIFF", b"RIFX") and head[8:12] == b"WAVE":
        layout = wav_header(read_bytes(path, 0, 1 << 16))
        check_header(layout.rate, layout.seconds)  # before reading: a header that says 10 hours is refused unread
        samples, rate = read_wav(source)
        said += unlabelled_bytes(read_bytes(path, layout.data_end, 1 << 16), layout, size, len(samples))
    elif head[:4] in (b"fLaC", b"OggS") or is_mp3(head):
        samples, rate = read_with_soundfile(source)
    else:
        raise UnreadableAudio(f"not a WAV, FLAC, OGG or MP3 file (it starts with {head[:4]!r})")
    samples, scaled = within_full_scale(samples)
    said += scaled
    if notes is not None:
        notes += said
    else:
        label = name or (str(path) if raw is None else "the clip")
        for note in said:
            warnings.warn(f"{label}: {note}", DataWarning, stacklevel=2)
    return check_clip(samples, rate)


def is_mp3(head: bytes) -> bool:
    """An MP3 file: an ID3 tag first, or an MPEG audio frame's sync (eleven bits set) and layer III."""
    return head[:3] == b"ID3" or (len(head) >= 2 and head[0] == 0xFF and head[1] & 0xE0 == 0xE0
                                  and head[1] & 0x06 == 0x02)


def read_bytes(path: Path | bytes, offset: int, n: int) -> bytes:
    """n bytes (fewer at the end) of a file, or of bytes, from offset."""
    if isinstance(path, bytes):
        return path[offset:offset + n]
    with path.open("rb") as f:
        f.seek(offset)
        return f.read(n)


@dataclass
class WavLayout:
    """What a WAV header says: the sample rate, the channels, the bytes of one frame (all channels), where the bytes
    its 'data' chunk declares end, and how long that is."""
    rate: int
    channels: int
    frame_bytes: int
    data_end: int
    seconds: float
    order: str = "<"  # RIFF is little-endian, RIFX big


def wav_header(start: bytes) -> WavLayout:
    """The layout of a WAV file from its first bytes: its 'fmt ' chunk and the size its 'data' chunk declares;
    UnreadableAudio when they are missing, or say 0 channels (scipy would divide by it)."""
    import struct

    order = ">" if start[:4] == b"RIFX" else "<"
    pos, fmt = 12, None
    while pos + 8 <= len(start):
        kind, size = start[pos:pos + 4], struct.unpack(order + "I", start[pos + 4:pos + 8])[0]
        if kind == b"fmt " and pos + 22 <= len(start):
            fmt = struct.unpack(order + "HHIIH", start[pos + 8:pos + 22])
        elif kind == b"data":
            if fmt is None:
                break
            _, channels, rate, byte_rate, frame_bytes = fmt
            if channels == 0:
                raise UnreadableAudio("a corrupt WAV header: Expected 1 channel (mono) or more. Received 0 channels")
            return WavLayout(rate, channels, frame_bytes, pos + 8 + size + (size & 1), size / max(byte_rate, 1), order)
        pos += 8 + size + (size & 1)
    raise UnreadableAudio("corrupt WAV header (no 'fmt ' chunk before the sound)")


def unlabelled_bytes(after: bytes, layout: WavLayout, size: int, frames: int) -> list[str]:
    """A note when what follows the 'data' chunk (`after`: the bytes from where it ends) is neither a chunk (LIST,
    cue, ...) nor zeros (padding): then the header declares less sound than the file holds, and the file is read,
    as every player reads it, only as far as the header says."""
    import struct

    left = size - layout.data_end
    if left < max(layout.frame_bytes, 1) or not any(after):
        return []
    if len(after) >= 8 and all(32 <= c < 127 for c in after[:4]):
        if layout.data_end + 8 + struct.unpack(layout.order + "I", after[4:8])[0] <= size:
            return []  # a chunk of its own
    more = f" (about {left // layout.frame_bytes:,} more samples)" if layout.frame_bytes else ""
    return [f"its 'data' chunk declares {frames:,} samples, and {left:,} bytes{more} follow outside any chunk: read "
            f"only the {frames:,} samples the header declares (the header may be wrong; rewrite the file to keep all)"]


def check_header(rate: int, seconds: float) -> None:
    if not MIN_RATE <= rate <= MAX_RATE:
        raise UnreadableAudio(f"a sample rate out of range: Expected {MIN_RATE:,} to {MAX_RATE:,} Hz (8,000 for "
                              f"speech, 44,100 for music). Received {rate:,} Hz: the header may be wrong")
    if seconds > MAX_SECONDS:
        raise UnreadableAudio(f"{seconds:,.0f} s long. Expected clips of at most {MAX_SECONDS} s "
                              f"({MAX_SECONDS // 60} minutes): cut long recordings into clips first")


def read_wav(source) -> tuple[np.ndarray, int]:
    """Samples and rate by scipy's reader. A corrupt header can make it fail in many ways (a division by zero, an
    unknown dtype, a struct error): any failure but running out of memory means the file cannot be used."""
    import scipy.io.wavfile

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", scipy.io.wavfile.WavFileWarning)  # chunks it does not know: harmless
            rate, data = scipy.io.wavfile.read(source, mmap=False)
    except MemoryError:
        raise
    except Exception as err:  # noqa: BLE001 (a file from anyone: see the docstring)
        reason = str(err).splitlines()[0][:120] if str(err) else type(err).__name__
        raise UnreadableAudio(f"corrupt or truncated WAV ({reason})") from None
    return to_float(data), int(rate)


def read_with_soundfile(source) -> tuple[np.ndarray, int]:
    try:
        import soundfile
    except ImportError:
        raise UnreadableAudio("FLAC, OGG and MP3 need the soundfile package: pip install \"deepworks[audio]\"") from None
    try:
        data, rate = soundfile.read(source, dtype="float32", always_2d=True)
    except (RuntimeError, soundfile.LibsndfileError) as err:
        raise UnreadableAudio(f"corrupt or truncated ({err})") from None
    return data, int(rate)


def to_float(data: np.ndarray) -> np.ndarray:
    """PCM of any width (8-bit unsigned, 16, 24 (scipy gives it as int32) or 32-bit) or float -> float32 (T, C), the
    integers in [-1, 1]."""
    data = data.reshape(len(data), -1) if data.size else data.reshape(0, 1)
    if data.dtype == np.uint8:
        return (data.astype(np.float32) - 128) / 128
    if np.issubdtype(data.dtype, np.integer):
        return data.astype(np.float32) / float(np.iinfo(data.dtype).max + 1)
    return data.astype(np.float32)


def within_full_scale(samples: np.ndarray) -> tuple[np.ndarray, list[str]]:
    """Float samples within [-1, 1], full scale, and a note when they had to be scaled down. Clipping would turn a
    loud clip into a square wave; scaling keeps its shape, and recovers a float file written at an integer scale
    (±32,768). Beyond MAX_FLOAT_PEAK (what no integer PCM reaches) the samples are not sound: refused, as NaN is."""
    if not np.isfinite(samples).all():
        raise UnreadableAudio("holds NaN or infinite samples")
    peak = float(np.abs(samples).max()) if samples.size else 0.0
    if peak <= 1:
        return samples, []
    if peak > MAX_FLOAT_PEAK:
        raise UnreadableAudio(f"float samples out of range: Expected samples within ±1 (full scale), or at most "
                              f"±{MAX_FLOAT_PEAK:,} (an integer scale, scaled down). Received a peak of {peak:.3g}: "
                              f"these are not sound samples")
    return (samples / peak).astype(np.float32), [f"float samples up to {peak:.4g}, beyond full scale (±1): scaled "
                                                 f"down by {peak:.4g} to keep the sound's shape (clipping distorts)"]


def check_clip(samples: np.ndarray, rate: int) -> tuple[np.ndarray, int]:
    check_header(rate, len(samples) / max(rate, 1))
    if len(samples) == 0:
        raise UnreadableAudio("no samples (a header without sound)")
    return samples, rate


def mono(samples: np.ndarray) -> np.ndarray:
    """(T, C) -> (T,), the channels averaged."""
    return samples.mean(1) if samples.ndim == 2 else samples


def resample_factors(rate: int, target: int) -> tuple[int, int]:
    """(up, down) for scipy's polyphase resampler: target/rate in lowest terms when both are at most MAX_FACTOR, else
    the nearest fraction whose terms are. The filter has 20 x max(up, down) taps: a prime rate like 9,999,991 Hz
    to 8,000 would need 200 M (GBs of memory); bounded, it has at most 330,000 (2.6 MB). The ratio's relative error
    is then under 1 / (MAX_FACTOR - 1) = 0.006 % (the best approximation p/q with q <= L is within 1/(q L) of the
    ratio, and p >= 1): a tone moves by 0.1 cent, a tenth of a second by 6 microseconds, far below what an ear or a
    model can tell."""
    from fractions import Fraction

    ratio = Fraction(target, rate)
    if max(ratio.numerator, ratio.denominator) <= MAX_FACTOR:
        return ratio.numerator, ratio.denominator
    floor = Fraction(1, MAX_FACTOR)
    if ratio < 1:
        ratio = max(ratio.limit_denominator(MAX_FACTOR), floor)
    else:
        ratio = 1 / max((1 / ratio).limit_denominator(MAX_FACTOR), floor)
    return ratio.numerator, ratio.denominator


def resample(x: np.ndarray, rate: int, target: int) -> np.ndarray:
    """x at `rate` Hz -> at `target` Hz, by scipy's polyphase filter (which low-passes first: no aliasing), with
    bounded work (resample_factors)."""
    if rate == target:
        return x.astype(np.float32)
    from scipy.signal import resample_poly

    up, down = resample_factors(rate, target)
    return resample_poly(x, up, down).astype(np.float32)


def fit_length(x: np.ndarray, n: int) -> np.ndarray:
    """The middle n samples of a longer clip; a shorter one padded with silence on both sides."""
    if len(x) >= n:
        start = (len(x) - n) // 2
        return x[start:start + n]
    left = (n - len(x)) // 2
    return np.pad(x, (left, n - len(x) - left))


def prepare_clip(samples: np.ndarray, rate: int, target: int, length: int) -> np.ndarray:
    """A clip as a model takes it: mono, at the target rate, `length` samples (the middle of the resampled clip,
    resampling only what that middle needs)."""
    x = mono(samples)
    if rate == target:
        return fit_length(x.astype(np.float32), length)
    up, down = resample_factors(rate, target)
    whole = -(-len(x) * up // down)  # resample_poly's output length
    if whole <= length:
        return fit_length(resample(x, rate, target), length)
    return resampled_middle(x, up, down, (whole - length) // 2, length)


def resampled_middle(x: np.ndarray, up: int, down: int, first: int, length: int) -> np.ndarray:
    """Samples first..first+length of x resampled by up/down, from only the part of x they depend on: the values of
    resampling the whole clip and keeping its middle (to rounding), at a bounded cost. Whole, a 10-minute upload at
    1 kHz for a 48 kHz model would be 29 M samples (over 200 MB) to keep a second of them."""
    from scipy.signal import resample_poly

    reach = -(-10 * max(up, down) // up) + 1  # input samples an output depends on, each side (the filter's half)
    start = max(0, (first * down // up - reach) // down * down)  # a multiple of down: on the whole clip's grid
    end = min(len(x), -(-(first + length) * down // up) + reach)
    part = resample_poly(x[start:end], up, down)
    skip = first - start * up // down
    return part[skip:skip + length].astype(np.float32)


# --- sources ----------------------------------------------------------------------------------------------------------
def list_folder(root: Path) -> tuple[list[Path], list[str]]:
    """(files, their class) of a folder with one sub-folder of clips per class."""
    folders = sorted(p for p in root.iterdir() if p.is_dir() and not is_hidden(p.name))
    if not folders:
        raise DataError(f"'{root}' has no class sub-folders. Expected one folder per class holding its clips "
                        f"({', '.join(AUDIO_EXTENSIONS)}), for example {root}/yes/1.wav and {root}/no/1.wav.")
    files, labels = [], []
    for folder in folders:
        found = sorted(p for p in folder.rglob("*") if p.suffix.lower() in AUDIO_EXTENSIONS
                       and not any(is_hidden(part) for part in p.relative_to(folder).parts))
        files += found
        labels += [folder.name] * len(found)
    return files, labels


def list_csv(path: Path) -> tuple[list[Path], list[str], list[str] | None]:
    """(files, labels, speakers or None) of a CSV of path,label or path,label,speaker (paths relative to the CSV's
    folder); a header row is skipped. A speaker column lets --split speaker leave each speaker out."""
    files, labels, speakers, width = [], [], [], None
    with path.open(newline="", encoding="utf-8", errors="replace") as f:
        for n, row in enumerate(csv.reader(f), 1):
            if not row or (n == 1 and row[0].strip().lower() in ("path", "file", "filename")):
                continue
            if len(row) not in (2, 3) or (width is not None and len(row) != width):
                raise DataError(f"{path}: line {n}: Expected {width or '2 or 3'} fields, path,label or "
                                f"path,label,speaker on every line. Received {len(row)}: {row[:4]}.")
            width = len(row)
            files.append((path.parent / row[0].strip()))
            labels.append(row[1].strip())
            speakers.append(row[2].strip() if width == 3 else "")
    return files, labels, speakers if width == 3 else None


def read_files(files: list[Path], labels: list[str]) -> tuple[list, list, list, list]:
    """(raw (samples, rate), kept (file, label), skipped (file, why), altered (file, what was changed)) of the
    files."""
    raw, kept, skipped, altered = [], [], [], []
    for f, label in zip(files, labels):
        said = []
        try:
            if not f.is_file():
                raise UnreadableAudio("no such file")
            samples, r = read_audio(f, notes=said)
            if np.abs(samples).max() < SILENCE:
                raise UnreadableAudio("silence only (every sample under 0.0001)")
        except UnreadableAudio as err:
            skipped.append((str(f), str(err)))
            continue
        raw.append((samples, r))
        kept.append((f, label))
        altered += [(str(f), note) for note in said]
    return raw, kept, skipped, altered


def read_clips(files: list[Path], labels: list[str], rate: int | None, seconds: float | None, strict: bool,
               description: str) -> Clips:
    """Read and prepare every file: the rate is --sample-rate or the most common one (at most 192 kHz), the length
    --clip-seconds or what holds 95 % of the clips whole (at most 10 s). Unusable files are skipped with one warning
    (--strict: an error), files changed to be usable are said in another; classes left with fewer than 2 clips are
    said."""
    raw, kept, skipped, altered = read_files(files, labels)
    if skipped and (strict or not raw):
        raise DataError(unusable_message(skipped, strict, none_left=not raw))
    if not raw:
        raise DataError(f"{description} has no clips. Expected {', '.join(AUDIO_EXTENSIONS)} files.")
    rates = [r for _, r in raw]
    rate = rate or min(max(set(rates), key=rates.count), MAX_MODEL_RATE)
    durations = np.array([len(s) / r for s, r in raw])
    seconds = seconds or float(min(10.0, max(0.1, np.percentile(durations, 95))))
    length = int(round(seconds * rate))
    x = np.stack([prepare_clip(s, r, rate, length) for s, r in raw])
    classes = sorted({label for _, label in kept})
    y = np.array([classes.index(label) for _, label in kept], dtype=np.int64)
    notes = []
    messages = ([unusable_message(skipped)] if skipped else []) + ([altered_message(altered)] if altered else [])
    for message in messages:
        warnings.warn(message, DataWarning, stacklevel=3)
        notes.append(message)
    resampled = sum(r != rate for r in rates)
    cut = int((durations > seconds + 1e-9).sum())
    if resampled or cut:
        notes.append(f"{resampled} clip(s) resampled to {rate:,} Hz; {cut} of {len(raw)} longer than {seconds:g} s "
                     f"cropped to their middle (--clip-seconds sets the length), the shorter padded with silence.")
    counts = np.bincount(y, minlength=len(classes))
    lonely = [classes[i] for i, c in enumerate(counts) if c < 2]
    if lonely:
        notes.append(f"Class(es) {lonely} have a single clip: a model cannot learn a class from one example, nor be "
                     f"tested on it. Record more (at least 10 per class).")
        warnings.warn(notes[-1], DataWarning, stacklevel=3)
    return Clips(x, rate, y, classes, [str(f) for f, _ in kept], description, skipped=skipped, notes=notes)


def unusable_message(skipped: list[tuple[str, str]], strict: bool = False, none_left: bool = False) -> str:
    listed = "\n  ".join(f"{f}: {why}" for f, why in skipped[:20])
    more = f"\n  ... and {len(skipped) - 20} more" if len(skipped) > 20 else ""
    head = ("No clip could be used" if none_left else
            f"{len(skipped)} file(s) cannot be used" + (" (--strict)" if strict else "; skipped them"))
    return f"{head}:\n  {listed}{more}"


def altered_message(altered: list[tuple[str, str]]) -> str:
    listed = "\n  ".join(f"{f}: {what}" for f, what in altered[:20])
    more = f"\n  ... and {len(altered) - 20} more" if len(altered) > 20 else ""
    return f"{len(altered)} file(s) were changed to be used:\n  {listed}{more}"


# --- built-ins --------------------------------------------------------------------------------------------------------
TONES = ("low tone", "high tone", "rising chirp", "falling chirp", "two tones")


def make_tones(n_per_class: int, seed: int, rate: int = 8000, seconds: float = 0.5) -> Clips:
    """Generated clips of five kinds, the same for the same seed: steady tones low (200-400 Hz) or high (1-2 kHz),
    chirps rising or falling (between 300-800 Hz and 1.5-2.5 kHz), and two tones at once; random loudness, start
    and length, with background noise."""
    rng = np.random.default_rng(seed)
    n = int(rate * seconds)
    t = np.arange(n) / rate
    clips, labels = [], []
    for k in range(len(TONES)):
        for _ in range(n_per_class):
            length = rng.uniform(0.25, 0.45)
            start = rng.uniform(0, seconds - length)
            on = (t >= start) & (t < start + length)
            local = t - start
            if k == 0:
                phase = 2 * np.pi * rng.uniform(200, 400) * local
            elif k == 1:
                phase = 2 * np.pi * rng.uniform(1000, 2000) * local
            elif k in (2, 3):  # sweeping at least an octave and a half: never mistaken for a steady tone
                f0, f1 = rng.uniform(300, 800), rng.uniform(1500, 2500)
                if k == 3:
                    f0, f1 = f1, f0
                phase = 2 * np.pi * (f0 * local + (f1 - f0) * local ** 2 / (2 * length))
            else:
                phase = None
            if phase is None:
                f0, f1 = rng.uniform(300, 600), rng.uniform(1200, 2400)
                wave = 0.5 * np.sin(2 * np.pi * f0 * local) + 0.5 * np.sin(2 * np.pi * f1 * local)
            else:
                wave = np.sin(phase)
            x = rng.uniform(0.2, 0.8) * wave * on + rng.normal(0, 0.02, n)
            clips.append(np.clip(x, -1, 1).astype(np.float32))
            labels.append(k)
    return Clips(np.stack(clips), rate, np.array(labels, dtype=np.int64), list(TONES),
                 [f"tone {i}" for i in range(len(clips))], f"generated tones and chirps ({len(clips)} clips, seed {seed})")


FSDD_SHA256 = "f19814a642af455d727161c83a4178f271707ee978e3dd1cf2cf40209f6deb84"


def fsdd_recordings(data_dir: Path) -> Path:
    """The Free Spoken Digit Dataset's recordings/ folder under DATA_DIR/fsdd, or its recordings.tar.gz checked and
    unpacked once into deepworks' cache."""
    from .builtin import unpacked

    folder = data_dir / "fsdd"
    recordings = folder / "recordings"
    if recordings.is_dir():
        return recordings
    archive = folder / "recordings.tar.gz"
    if not archive.is_file():
        raise DataError(f"The Free Spoken Digit Dataset is not in {folder}. Expected recordings/ there, or "
                        f"recordings.tar.gz (github.com/Jakobovski/free-spoken-digit-dataset's recordings/ "
                        f"folder). Point --data-dir at the folder that holds fsdd/.")
    return unpacked(archive, FSDD_SHA256, "the Free Spoken Digit Dataset") / "recordings"


def load_fsdd(data_dir: Path, strict: bool) -> Clips:
    """The Free Spoken Digit Dataset (CC BY-SA 4.0: 3,000 clips, 6 speakers, 8 kHz) from DATA_DIR/fsdd: its
    recordings/ folder, or recordings.tar.gz checked and unpacked once into deepworks' cache. Its official split:
    recordings 0-4 of each speaker and digit are the test set."""
    folder = data_dir / "fsdd"
    files = sorted(fsdd_recordings(data_dir).glob("*.wav"))
    parts = [f.stem.split("_") for f in files]
    clips = read_clips(files, [p[0] for p in parts], 8000, 1.0, strict,
                       f"the Free Spoken Digit Dataset ({folder})")
    stems = [Path(n).stem.split("_") for n in clips.names]
    clips.speakers = [s[1] for s in stems]
    clips.split = {"train": [i for i, s in enumerate(stems) if int(s[2]) >= 5],
                   "test": [i for i, s in enumerate(stems) if int(s[2]) < 5]}
    return clips
