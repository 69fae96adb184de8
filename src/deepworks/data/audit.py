"""A data audit for image classification: the problems that make a model look better (or worse) than it is.

Each check returns `Finding`s that say what was found, what it means and what to do:
- class balance: a class with under a fifth of the largest class's images;
- exact duplicates (the same pixels) within a split, and across splits, where a test image that is also a
  training image inflates the test score (leakage);
- near duplicates across splits: grey images (at most 32 px), mean-removed, with cosine similarity >= 0.998
  (the same photo re-encoded, resized, brightened or with a little noise). Handwritten 1s look much alike:
  at 0.97 one MNIST test image in ten would be flagged, at 0.995 two in 10,000, at 0.998 none;
- corrupt files (skipped), and the sizes and colour modes of the files;
- shortcuts: a classifier that sees only image statistics (brightness, contrast and border per channel,
  nothing of the shapes) recognising a class almost perfectly means the class can be told apart by
  something other than its content - a watermark, a background, the camera - and the network will use it.

`audit_splits` runs on arrays (used before every training run); `audit_source` loads a source first.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

NEAR_SIMILARITY = 0.998
IMBALANCE = 5.0
SHORTCUT_SCORE = 0.98


@dataclass
class Finding:
    check: str
    severity: str  # "warning" (act on it) or "info"
    message: str
    advice: str = ""
    details: dict = field(default_factory=dict)

    def text(self) -> str:
        return self.message + (f" {self.advice}" if self.advice else "")


def class_balance(y: np.ndarray, classes: list[str], noun: str = "image") -> list[Finding]:
    counts = np.bincount(y, minlength=len(classes))
    details = {"counts": {c: int(n) for c, n in zip(classes, counts)}}
    big = counts.max() if len(counts) else 0
    small = [classes[i] for i, n in enumerate(counts) if n * IMBALANCE < big]
    if not small:
        return [Finding("balance", "info", f"Classes are balanced enough: {counts.min()} to {big} training {noun}s "
                                           f"per class.", details=details)]
    shown = ", ".join(f"{c} ({counts[classes.index(c)]})" for c in small[:8])
    more = "(or augment them)" if noun == "image" else ""
    return [Finding("balance", "warning",
                    f"Imbalanced classes: {shown} {'has' if len(small) == 1 else 'have'} under a fifth of the "
                    f"largest class's {big} {noun}s.",
                    "Accuracy will mostly reflect the large classes: judge the model by per-class recall and "
                    f"macro F1, and collect more {noun}s of the small classes {more}".rstrip() + ".", details)]


def pixel_hashes(x: np.ndarray) -> list[str]:
    return [hashlib.blake2b(np.ascontiguousarray(img).tobytes(), digest_size=12).hexdigest() for img in x]


Namer = Callable[[str, int], str]


def index_names(split: str, i: int) -> str:
    return f"{split} #{i}"


def namer(names: dict[str, list[str]] | None) -> Namer:
    """What to call image i of a split in a finding: its file (or 'd.npz x[12]') when known, else 'train #12'."""
    def name(split: str, i: int) -> str:
        known = (names or {}).get(split)
        return known[i] if known is not None and i < len(known) else index_names(split, i)

    return name


def exact_duplicates(where: dict[str, list[tuple[str, int]]], name: Namer = index_names,
                     noun: str = "image") -> list[Finding]:
    """Images with identical pixels, or other examples that are the same (`where`: copy_groups of the splits):
    repeated within a split, and shared between splits."""
    findings = []
    names = list(dict.fromkeys(s for members in where.values() for s, _ in members))  # the splits, in order
    for split in names:
        groups = [[i for s, i in v if s == split] for v in where.values() if sum(s == split for s, _ in v) > 1]
        extra = sum(len(g) - 1 for g in groups)
        if extra:
            pairs = [(g[0], j) for g in groups for j in g[1:]][:50]
            a, b = pairs[0]
            findings.append(Finding("duplicates", "warning",
                                    f"{extra} {split} {noun}(s) are exact copies of other {split} {noun}s "
                                    f"(for example '{name(split, a)}' and '{name(split, b)}').",
                                    f"Copies weigh those {noun}s more and, split apart, leak between train and test. "
                                    "Remove the copies.", {"split": split, "extra_copies": extra, "example": [a, b],
                                                           "pairs": [list(p) for p in pairs],
                                                           "files": [[name(split, i), name(split, j)] for i, j in pairs]}))
    for a in range(len(names)):
        for b in range(a + 1, len(names)):
            shared = [v for v in where.values() if {names[a], names[b]} <= {s for s, _ in v}]
            if shared:
                pairs = [(next(i for s, i in v if s == names[a]), next(i for s, i in v if s == names[b]))
                         for v in shared]
                i, j = pairs[0]
                findings.append(Finding("leakage", "warning",
                                        f"{len(shared)} {names[b]} {noun}(s) also appear in {names[a]} (exact copies; "
                                        f"for example '{name(names[b], j)}' = '{name(names[a], i)}').",
                                        f"The {names[b]} score overstates how the model does on new {noun}s. "
                                        f"Remove the copies from one side.",
                                        {"splits": [names[a], names[b]], "count": len(shared), "pairs": pairs[:20],
                                         "files": [[name(names[a], i), name(names[b], j)] for i, j in pairs[:20]]}))
    return findings


def copy_groups(splits: dict[str, np.ndarray]) -> dict[str, list[tuple[str, int]]]:
    """Pixel hash -> every (split, index) with those exact pixels."""
    where: dict[str, list[tuple[str, int]]] = {}
    for split, x in splits.items():
        for i, h in enumerate(pixel_hashes(x)):
            where.setdefault(h, []).append((split, i))
    return where


def label_conflicts(where: dict[str, list[tuple[str, int]]], label: dict[str, np.ndarray], classes: list[str],
                    name: Namer = index_names, near: list[tuple[str, int, str, int]] = (),
                    noun: str = "picture") -> list[Finding]:
    """The same picture (exact copies, from copy_groups, or the near copies found) filed under two different
    classes; `label` holds each split's labels."""
    pairs = []
    for members in where.values():
        first = members[0]
        pairs += [(*first, *m) for m in members[1:] if label[m[0]][m[1]] != label[first[0]][first[1]]]
    pairs += [p for p in near if label[p[0]][p[1]] != label[p[2]][p[3]]]
    if not pairs:
        return []
    sa, i, sb, j = pairs[0]
    return [Finding("label-conflict", "warning",
                    f"{len(pairs)} {noun}(s) are filed under two different classes (for example '{name(sa, i)}' as "
                    f"{classes[label[sa][i]]} and '{name(sb, j)}' as {classes[label[sb][j]]}).",
                    f"One of the two labels is wrong, or the {noun} {'shows' if noun == 'picture' else 'fits'} both: "
                    f"keep one copy under the right class, "
                    f"or remove both. The model is trained to give one {noun} two answers otherwise.",
                    {"count": len(pairs), "pairs": [list(p) for p in pairs[:50]],
                     "files": [[name(a, k), name(b, m)] for a, k, b, m in pairs[:50]],
                     "classes": [[classes[label[a][k]], classes[label[b][m]]] for a, k, b, m in pairs[:50]]})]


def thumbnails(x: np.ndarray, side: int = 32) -> np.ndarray:
    """uint8 (N, C, H, W) -> unit vectors of the mean-removed grey images, shrunk to at most side x side."""
    import torch
    import torch.nn.functional as F

    t = torch.from_numpy(x).float().mean(1, keepdim=True)
    if max(t.shape[-2:]) > side:
        t = F.adaptive_avg_pool2d(t, side)
    t = t.flatten(1)
    t = t - t.mean(1, keepdim=True)
    return F.normalize(t, dim=1).numpy()


def near_duplicates(a: np.ndarray, b: np.ndarray, threshold: float = NEAR_SIMILARITY,
                    chunk: int = 2048) -> list[tuple[int, int, float]]:
    """(index in b, its most similar index in a, similarity) for every b image with a near copy in a that is
    not an exact copy. Blank images (no variation) are left out: they all look alike."""
    ta, tb = thumbnails(a), thumbnails(b)
    flat_a, flat_b = np.abs(ta).sum(1) > 0, np.abs(tb).sum(1) > 0
    out = []
    for i in range(0, len(tb), chunk):
        sim = tb[i:i + chunk] @ ta.T
        sim[:, ~flat_a] = -1
        best = sim.argmax(1)
        values = sim[np.arange(len(best)), best]
        for j in np.flatnonzero((values >= threshold) & flat_b[i:i + chunk]):
            if not np.array_equal(b[i + j], a[best[j]]):
                out.append((int(i + j), int(best[j]), float(values[j])))
    return out


def near_twins(x: np.ndarray, threshold: float = NEAR_SIMILARITY, cap: int = 20_000, seed: int = 0,
               chunk: int = 2048) -> tuple[list[tuple[int, int, float]], int]:
    """Pairs (i, j, similarity), i < j, of near copies (not exact ones) within one split, and how many images were
    compared: all of them, or a seeded sample of `cap` (the comparison grows with the square of the count)."""
    idx = np.arange(len(x))
    if len(x) > cap:
        idx = np.sort(np.random.default_rng(seed).choice(len(x), cap, replace=False))
    t = thumbnails(x[idx])
    varied = np.abs(t).sum(1) > 0
    pairs = []
    for i in range(0, len(t), chunk):
        sim = t[i:i + chunk] @ t.T
        sim[np.arange(len(t))[None, :] <= np.arange(i, i + len(sim))[:, None]] = -1  # each pair once, not itself
        sim[:, ~varied] = -1
        for r, j in zip(*np.nonzero(sim >= threshold)):
            a, b = idx[i + r], idx[j]
            if varied[i + r] and not np.array_equal(x[a], x[b]):
                pairs.append((int(a), int(b), float(sim[r, j])))
    return pairs, len(idx)


def near_copies_within(splits: dict[str, np.ndarray], seed: int = 0, name: Namer = index_names) -> list[Finding]:
    findings = []
    for split, x in splits.items():
        pairs, compared = near_twins(x, seed=seed)
        if pairs:
            a, b, s = pairs[0]
            sampled = "" if compared == len(x) else f" among a sample of {compared:,} of its {len(x):,} images"
            findings.append(Finding("near-duplicates", "warning",
                                    f"{len(pairs)} pair(s) of {split} images are near copies of each other{sampled} "
                                    f"(for example '{name(split, a)}' and '{name(split, b)}', similarity {s:.3f}).",
                                    "Near copies count one picture several times, and leak between train and test "
                                    "when a split separates them. Keep one of each pair.",
                                    {"split": split, "count": len(pairs), "compared": compared,
                                     "pairs": [list(p) for p in pairs[:50]],
                                     "files": [[name(split, i), name(split, j)] for i, j, _ in pairs[:50]]}))
    return findings


def near_leakage(splits: dict[str, np.ndarray], train: str = "train", name: Namer = index_names) -> list[Finding]:
    findings = []
    for split, x in splits.items():
        if split == train or not len(x) or not len(splits[train]):
            continue
        pairs = near_duplicates(splits[train], x)
        if pairs:
            j, i, s = pairs[0]
            findings.append(Finding("near-leakage", "warning",
                                    f"{len(pairs)} {split} image(s) ({len(pairs) / len(x):.1%}) are near copies of "
                                    f"training images (for example '{name(split, j)}' and '{name(train, i)}', "
                                    f"similarity {s:.3f}).",
                                    f"Near copies make the {split} score optimistic. Look at the pairs "
                                    f"(`deepworks audit DATA --out DIR` shows them) and drop true copies from "
                                    f"one side.", {"split": split, "count": len(pairs),
                                                   "pairs": [list(p) for p in pairs[:50]],
                                                   "files": [[name(split, j), name(train, i)] for j, i, _ in pairs[:50]]}))
    return findings


def image_statistics(x: np.ndarray) -> np.ndarray:
    """Per channel: mean, std, the border's mean and the centre's mean - nothing of the shapes."""
    f = x.astype(np.float32) / 255
    h, w = f.shape[-2:]
    bh, bw = max(1, h // 8), max(1, w // 8)
    border = np.concatenate([f[..., :bh, :].reshape(*f.shape[:2], -1), f[..., -bh:, :].reshape(*f.shape[:2], -1),
                             f[..., :, :bw].reshape(*f.shape[:2], -1), f[..., :, -bw:].reshape(*f.shape[:2], -1)], 2)
    centre = f[..., h // 4: h - h // 4, w // 4: w - w // 4]
    return np.concatenate([f.mean((2, 3)), f.std((2, 3)), border.mean(2), centre.mean((2, 3))], 1)


def shortcuts(x: np.ndarray, y: np.ndarray, classes: list[str], seed: int = 0, cap: int = 20000,
              min_images: int = 20) -> list[Finding]:
    """Classes that a small forest on image statistics alone recognises almost perfectly (cross-validated F1)."""
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.metrics import f1_score
    from sklearn.model_selection import cross_val_predict

    if len(classes) < 2 or len(x) < 10:
        return []
    if len(x) > cap:
        pick = np.random.default_rng(seed).choice(len(x), cap, replace=False)
        x, y = x[pick], y[pick]
    counts = np.bincount(y, minlength=len(classes))
    if (counts[counts > 0] < 3).any():
        return []
    feats = image_statistics(x)
    forest = RandomForestClassifier(n_estimators=50, max_depth=8, random_state=seed, n_jobs=-1)
    pred = cross_val_predict(forest, feats, y, cv=3)
    scores = f1_score(y, pred, labels=range(len(classes)), average=None, zero_division=0)
    flagged = [(classes[c], float(scores[c])) for c in range(len(classes))
               if counts[c] >= min_images and scores[c] >= SHORTCUT_SCORE]
    details = {"f1_by_class": {c: round(float(s), 4) for c, s in zip(classes, scores)},
               "features": "per channel: mean, std, border mean, centre mean"}
    if not flagged:
        return [Finding("shortcuts", "info", "No class can be recognised from image statistics alone "
                                             f"(best F1 {scores.max():.2f} with brightness, contrast and border).",
                        details=details)]
    shown = ", ".join(f"{c} (F1 {s:.2f})" for c, s in flagged[:8])
    return [Finding("shortcuts", "warning",
                    f"Possible shortcut: {shown} can be recognised from brightness, contrast and border colour "
                    f"alone, without looking at shapes.",
                    "The network may learn that cue instead of the object, and fail on images taken elsewhere. "
                    "Check those images for a shared background, frame, watermark or source, and mix them.",
                    details)]


def audit_splits(splits: dict[str, tuple[np.ndarray, np.ndarray]], classes: list[str], seed: int = 0,
                 thorough: bool = True, names: dict[str, list[str]] | None = None) -> list[Finding]:
    """Every check on prepared uint8 splits {'train': (x, y), 'val': ..., 'test': ...}. Without `thorough`
    (the check before training), only what is quick on large data: balance, copies and leakage. `names` gives
    each image's file, per split, for the messages."""
    name = namer(names)
    kept = {split: (x, y) for split, (x, y) in splits.items() if len(x)}
    xs = {split: x for split, (x, _) in kept.items()}
    copies = copy_groups(xs)  # each image hashed once, for the copies and the conflicts
    findings = class_balance(splits["train"][1], classes) + exact_duplicates(copies, name)
    near = []
    if thorough or sum(len(x) for x in xs.values()) <= 100_000:
        leaks = near_leakage(xs, name=name)
        findings += leaks
        near += [("train", i, f.details["split"], j) for f in leaks for j, i, _ in f.details["pairs"]]
    if thorough:
        within = near_copies_within(xs, seed, name)
        findings += within
        near += [(f.details["split"], i, f.details["split"], j) for f in within for i, j, _ in f.details["pairs"]]
        findings += shortcuts(*splits["train"], classes, seed)
    return findings + label_conflicts(copies, {split: y for split, (_, y) in kept.items()}, classes, name, near)


def survey_files(files: list[Path]) -> dict[str, int]:
    """How many files of each 'WxH MODE', from the headers (nothing is decoded). Unusable files are left out: the
    'corrupt' finding lists them."""
    from .decode import UnreadableImage, probe_image

    kinds: dict[str, int] = {}
    for p in files:
        try:
            (w, h), mode = probe_image(p)
        except UnreadableImage:
            continue
        key = f"{w}x{h} {mode}"
        kinds[key] = kinds.get(key, 0) + 1
    return dict(sorted(kinds.items(), key=lambda kv: -kv[1]))


def file_findings(source: str, skipped: list[tuple[str, str]], empty_classes: list[str] = ()) -> list[Finding]:
    """Corrupt files, class folders without images, and the sizes and modes of a folder's files."""
    from .images import image_files

    findings = []
    if skipped:
        findings.append(Finding("corrupt", "warning", f"{len(skipped)} file(s) could not be read as images and "
                                f"were skipped: {', '.join(p for p, _ in skipped[:5])}{', ...' if len(skipped) > 5 else ''}.",
                                "Delete or replace them (open one to see: it may be empty, truncated, not an "
                                "image, or a link to nothing).", {"files": [{"file": p, "error": e} for p, e in skipped]}))
    if empty_classes:
        findings.append(Finding("empty-classes", "warning", f"{len(empty_classes)} class folder(s) hold no images: "
                                f"{', '.join(empty_classes[:5])}{', ...' if len(empty_classes) > 5 else ''}.",
                                "Training refuses a class without images: add images to them or remove them."))
    path = Path(source)
    files = image_files(path) if path.is_dir() else []
    if files:
        kinds = survey_files(files)
        shown = ", ".join(f"{n} x {k}" for k, n in list(kinds.items())[:5])
        mixed = len(kinds) > 1
        findings.append(Finding("sizes", "info" if not mixed else "warning",
                                f"File sizes and modes: {shown}{', ...' if len(kinds) > 5 else ''}.",
                                "All are converted to one size and mode for training; very different sizes or "
                                "shapes are stretched, so crop them alike first if the shape matters." if mixed else "",
                                {"kinds": kinds}))
    return findings


def as_dicts(findings: list[Finding]) -> list[dict]:
    return [asdict(f) for f in findings]


def audit_source(source: str, data_dir: str | None = None, image_size: int | None = None,
                 channels: int | None = None, out: str | Path | None = None, download: bool = True,
                 seed: int = 0, progress: bool = True) -> dict:
    """Load an image source as training would (its own splits kept), run every check, write a report to `out`."""
    from . import load_image_source

    images = load_image_source(source, image_size, channels, data_dir, download, False, progress, lenient=True)
    splits = {"train": (images.x, images.y)}
    for name, x, y in (("val", images.x_val, images.y_val), ("test", images.x_test, images.y_test)):
        if x is not None:
            splits[name] = (x, y)
    findings = (file_findings(source, images.skipped, images.empty_classes)
                + audit_splits(splits, images.classes, seed, thorough=True, names=images.names))
    result = {"source": source, "description": images.description, "classes": images.classes,
              "image_shape": list(images.x.shape[1:]),
              "splits": {name: int(len(x)) for name, (x, _) in splits.items()}, "findings": as_dicts(findings)}
    if out is not None:
        result["report"] = str(write_audit_report(Path(out), result, splits))
    return result


def write_audit_report(out: Path, result: dict, splits: dict) -> Path:
    """index.html with every finding (what it means, what to do), the class counts, and the copied pairs."""
    import html

    from ..report import image_tag, pyplot, save_figure, table, write_page

    out.mkdir(parents=True, exist_ok=True)
    plt = pyplot()
    classes = result["classes"]
    fig, ax = plt.subplots(figsize=(max(4.0, 0.45 * len(classes) + 1), 3.2))
    bottom = np.zeros(len(classes))
    for name, (_, y) in splits.items():
        counts = np.bincount(y, minlength=len(classes))
        ax.bar(range(len(classes)), counts, bottom=bottom, label=name)
        bottom += counts
    ax.set_xticks(range(len(classes)), [c[:12] for c in classes], rotation=60 if len(classes) > 8 else 0, fontsize=8)
    ax.set_ylabel("images")
    ax.legend(fontsize=8)
    save_figure(fig, out / "balance.png")
    rows = []
    for f in result["findings"]:
        rows.append(f"<div class='{'note' if f['severity'] == 'warning' else ''}'><b>{html.escape(f['check'])}"
                    f"</b> ({f['severity']}): {html.escape(f['message'])}"
                    + (f"<br><i>What to do:</i> {html.escape(f['advice'])}" if f["advice"] else "") + "</div><p></p>")
    sections = [("Findings", "".join(rows)),
                ("Data", f"<p>{html.escape(result['description'])}</p>" + table([result["splits"]])),
                ("Class balance", image_tag(out / "balance.png", "images per class and split"))]
    pairs = pair_grid(out / "pairs.png", result["findings"], splits, classes)
    if pairs:
        sections.append(("Copies and conflicts", "<p>Each pair side by side, captioned with its file and class: "
                                                 "exact and near copies within a split and across splits, and "
                                                 "pictures filed under two classes.</p>" + image_tag(pairs, "pairs")))
    return write_page(out, f"deepworks audit of {result['source']}", sections)


PAIRED = ("label-conflict", "leakage", "near-leakage", "duplicates", "near-duplicates")  # in the order shown


def finding_pairs(finding: dict) -> list[tuple[str, int, str, int]]:
    """(split, index, split, index) of each pair a finding names."""
    d, check = finding["details"], finding["check"]
    if check == "leakage":
        a, b = d["splits"]
        return [(a, i, b, j) for i, j in d["pairs"]]
    if check == "near-leakage":
        return [("train", i, d["split"], j) for j, i, _ in d["pairs"]]
    if check in ("duplicates", "near-duplicates"):
        return [(d["split"], p[0], d["split"], p[1]) for p in d["pairs"]]
    if check == "label-conflict":
        return [tuple(p) for p in d["pairs"]]
    return []


def pair_grid(path: Path, findings: list[dict], splits: dict, classes: list[str], limit: int = 16) -> Path | None:
    """Thumbnails of the pairs the findings name, two by two, each captioned with its file and class."""
    from ..report import plot_image_grid

    images, titles, colours = [], [], []
    for check in PAIRED:
        for f in (f for f in findings if f["check"] == check):
            files = f["details"].get("files") or []
            for k, (sa, i, sb, j) in enumerate(finding_pairs(f)):
                if len(images) >= 2 * limit:
                    break
                names = files[k] if k < len(files) else [f"{sa} #{i}", f"{sb} #{j}"]
                images += [splits[sa][0][i], splits[sb][0][j]]
                ca, cb = classes[int(splits[sa][1][i])], classes[int(splits[sb][1][j])]
                titles += [f"{check}: {short(names[0])}\n({ca})", f"{short(names[1])}\n({cb})"]
                colours += ["red" if check == "label-conflict" else "black"] * 2
    if not images:
        return None
    return plot_image_grid(np.stack(images), titles, colours, path)


def short(name: str, width: int = 22) -> str:
    """The end of a long path, which holds its class folder and file name."""
    return name if len(name) <= width else "..." + name[-(width - 3):]
