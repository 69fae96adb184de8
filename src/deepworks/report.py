"""Plots and the report page. Generic pieces: a task decides which ones its report shows.

The page is plain HTML with PNGs beside it in `RUN/report/`, readable offline and
easy to attach to an e-mail or a notebook.
"""

from __future__ import annotations

import html
from pathlib import Path

import numpy as np

from .run import atomic_write_text


FAST_PNG = {"compress_level": 1}  # zlib's fastest: a report's figures are written in a third of the time, a little larger


def pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig, path: Path, laid_out: bool = False) -> None:
    """Lay out (unless `laid_out`: margins already set), write as a PNG at the reports' resolution (making its
    folder), and free the figure."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if not laid_out:
        fig.tight_layout()
    fig.savefig(path, dpi=110, pil_kwargs=FAST_PNG)
    pyplot().close(fig)


def fixed_margins(fig, columns: int) -> None:
    """Margins in inches for a row of `columns` plots of numbers: what tight_layout would find for them, without
    measuring every label's text (a third of the time of every run's curves)."""
    width, height = fig.get_size_inches()
    left, right, gap, bottom, top = 0.9, 0.15, 1.05, 0.55, 0.35
    axis = (width - left - right - gap * (columns - 1)) / columns
    fig.subplots_adjust(left=left / width, right=1 - right / width, bottom=bottom / height, top=1 - top / height,
                        wspace=gap / axis)


def plot_history(records: list[dict], path: Path, *metrics: str, titles: dict | None = None) -> Path | None:
    """Loss (train and validation) and each of the task's metrics per epoch, side by side."""
    epochs = [r for r in records if r.get("kind") == "epoch"]
    if not epochs:
        return None
    plt = pyplot()
    from matplotlib.ticker import MaxNLocator

    names = ("loss", *metrics)
    fig, axes = plt.subplots(1, len(names), figsize=(5 * len(names), 3.6), squeeze=False)
    x = [r["epoch"] for r in epochs]
    for ax, name in zip(axes[0], names):
        for split, style in (("train", "-o"), ("val", "-s")):
            ys = [r.get(f"{split}_{name}") for r in epochs]
            if any(y is not None for y in ys):
                ax.plot(x, [np.nan if y is None else y for y in ys], style, label=split, markersize=3)
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_ylabel(name)
        ax.set_title((titles or {}).get(name, name.replace("_", " ").capitalize()))
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend()
    fixed_margins(fig, len(names))
    save_figure(fig, path, laid_out=True)
    return path


def plot_confusion(cm: np.ndarray, classes: list[str], path: Path) -> Path:
    plt = pyplot()
    k = len(classes)
    size = min(12, max(4, 0.5 * k + 2))
    fig, ax = plt.subplots(figsize=(size + 1, size))
    rates = cm / np.maximum(cm.sum(1, keepdims=True), 1)
    im = ax.imshow(rates, cmap="Blues", vmin=0, vmax=1)
    fig.colorbar(im, ax=ax, fraction=0.046, label="share of the true class")
    if k <= 30:
        ax.set_xticks(range(k), classes, rotation=45, ha="right")
        ax.set_yticks(range(k), classes)
        for i in range(k):
            for j in range(k):
                if cm[i, j]:
                    ax.text(j, i, str(cm[i, j]), ha="center", va="center", fontsize=7,
                            color="white" if rates[i, j] > 0.5 else "black")
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title("Confusion matrix (test)")
    longest = max((len(str(c)) for c in classes), default=1) if k <= 30 else 3
    left, bottom = 0.55 + 0.075 * longest, 0.5 + 0.055 * longest  # the labels' room, as tight_layout would find
    width, height = fig.get_size_inches()
    fig.subplots_adjust(left=left / width, bottom=bottom / height, right=1 - 0.75 / width, top=1 - 0.4 / height)
    save_figure(fig, path, laid_out=True)
    return path


def plot_reliability(found: dict, path: Path) -> Path:
    """metrics.classes.reliability as a diagram: each bin's accuracy as a bar at its mean confidence, the diagonal
    a calibrated model would follow, and how many predictions each bin holds."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(4.6, 4.2))
    bins = found["bins"]
    width = (bins[0]["high"] - bins[0]["low"]) if bins else 0.1
    ax.bar([b["low"] + width / 2 for b in bins], [b["accuracy"] for b in bins], width=width * 0.9, color="#4c72b0",
           edgecolor="white", label="accuracy in the bin")
    ax.plot([0, 1], [0, 1], "--", color="#999999", label="calibrated")
    ax.plot([b["confidence"] for b in bins], [b["accuracy"] for b in bins], "o", color="#dd8452", markersize=4,
            label="mean confidence")
    for b in bins:
        ax.text(b["low"] + width / 2, min(0.97, b["accuracy"] + 0.02), str(b["count"]), ha="center", fontsize=6)
    ax.set(xlim=(0, 1), ylim=(0, 1), xlabel="confidence (the likeliest class's probability)", ylabel="accuracy",
           title=f"Reliability (test): ECE {found['ece']:.3f}")
    ax.legend(loc="upper left", fontsize=7)
    save_figure(fig, path)
    return path


def plot_image_grid(images: np.ndarray, titles: list[str], colors: list[str], path: Path, cols: int = 8) -> Path:
    """uint8 images (N, C, H, W) in a grid, each with a coloured caption above it. The images are tiled into one
    picture drawn on one set of axes, the captions written over it: a sub-plot per image, laid out by matplotlib,
    took seconds (most of a small run's time) for the same page."""
    plt = pyplot()
    n, c, h, w = images.shape
    rows = max(1, (n + cols - 1) // cols)
    cell = max(h, w)
    gap_x, gap_y = cell // 8 + 1, cell // 2 + 2  # between tiles, and above each for its caption
    sheet = np.full((rows * (cell + gap_y), cols * (cell + gap_x), 3), 255, dtype=np.uint8)
    for i, img in enumerate(images):
        r, k = divmod(i, cols)
        top, left = r * (cell + gap_y) + gap_y, k * (cell + gap_x)
        sheet[top:top + h, left:left + w] = np.repeat(img, 3, axis=0).transpose(1, 2, 0) if c == 1 else \
            img.transpose(1, 2, 0)
    width = cols * 1.6  # inches; the height keeps the tiles square
    fig = plt.figure(figsize=(width, width * sheet.shape[0] / sheet.shape[1]))
    ax = fig.add_axes((0, 0, 1, 1))
    ax.imshow(sheet, interpolation="nearest")
    ax.axis("off")
    for i, (title, color) in enumerate(zip(titles, colors)):
        r, k = divmod(i, cols)
        ax.text(k * (cell + gap_x) + w / 2, r * (cell + gap_y) + gap_y - 1, title, ha="center", va="bottom",
                fontsize=7, color=color)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110, pil_kwargs=FAST_PNG)
    plt.close(fig)
    return path


def save_image_grid(images, path: Path, cols: int | None = None, pad: int = 2, scale: int = 1) -> Path:
    """uint8 images (N, C, H, W) tiled into one PNG with a thin white border, at `scale` times their size."""
    from PIL import Image

    x = np.asarray(images)
    n, c, h, w = x.shape
    cols = cols or int(np.ceil(np.sqrt(n)))
    rows = (n + cols - 1) // cols
    sheet = np.full((rows * (h + pad) + pad, cols * (w + pad) + pad, c), 255, dtype=np.uint8)
    for i, img in enumerate(x):
        r, k = divmod(i, cols)
        sheet[pad + r * (h + pad):pad + r * (h + pad) + h, pad + k * (w + pad):pad + k * (w + pad) + w] = img.transpose(1, 2, 0)
    im = Image.fromarray(sheet[..., 0] if c == 1 else sheet)
    if scale > 1:
        im = im.resize((im.width * scale, im.height * scale), Image.NEAREST)
    if hasattr(path, "write"):  # a file object (a server's response buffer)
        im.save(path, format="PNG")
        return path
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    im.save(path)
    return path


def table(rows: list[dict], float_format: str = "{:.4f}") -> str:
    if not rows:
        return ""
    head = "".join(f"<th>{html.escape(str(k))}</th>" for k in rows[0])
    body = "".join(
        "<tr>" + "".join(f"<td class='num'>{float_format.format(v) if isinstance(v, float) else v}</td>"
                         if isinstance(v, (int, float)) and not isinstance(v, bool) else f"<td>{html.escape(str(v))}</td>"
                         for v in r.values()) + "</tr>" for r in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


STYLE = """body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}
table{border-collapse:collapse;margin:.5em 0;max-width:100%}td,th{border:1px solid #ccc;padding:.25em .6em;
text-align:left;vertical-align:top}td.num{text-align:right}th{background:#f3f3f3}img{max-width:100%}
pre{white-space:pre-wrap;overflow-wrap:anywhere;margin:.3em 0}table.samples{width:100%;table-layout:fixed}
.note{background:#fff8e1;border-left:4px solid #f0b400;padding:.5em 1em}code{background:#f3f3f3;padding:0 .2em}
figure{display:inline-block;margin:4px;vertical-align:top}figcaption{font-size:80%;color:#555}"""


def write_page(report_dir: Path, title: str, sections: list[tuple[str, str]]) -> Path:
    """Write report_dir/index.html from (heading, html) sections."""
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>",
             f"<style>{STYLE}</style></head><body><h1>{html.escape(title)}</h1>"]
    for heading, body in sections:
        parts.append(f"<h2>{html.escape(heading)}</h2>{body}")
    parts.append("</body></html>")
    path = report_dir / "index.html"
    atomic_write_text(path, "\n".join(parts))
    return path


def image_tag(path: Path | None, alt: str) -> str:
    return f"<img src='{path.name}' alt='{html.escape(alt)}'>" if path else ""


EXTRAS_START, EXTRAS_END = "<!-- deepworks: trust figures -->", "<!-- /deepworks: trust figures -->"
EXTRA_FIGURES = (  # (heading, file patterns) of the figures `attack`, `explain`, `visualize` and `represent` add
    ("Attacks", ("attack-*.png", "*-adversarial.png", "fooling-*.png")),
    ("Explanations", ("explain-*.png",)),
    ("What the network looks for", ("visualize-*.png",)),
    ("Representations", ("representations-*.png",)),
)


def page_beside(figure: Path) -> str:
    """A link to the HTML page a tool wrote beside its figure (the word attack's flipped texts), if there is one."""
    page = figure.with_suffix(".html")
    return f" (<a href='{html.escape(page.name)}'>{html.escape(page.name)}</a>)" if page.is_file() else ""


def link_extra_figures(report_dir: Path) -> Path | None:
    """(Re)write the section of report_dir/index.html that shows the figures the trust commands wrote there, so a
    run's report links everything in its folder. Idempotent: the section sits between two comments and is
    replaced each time."""
    page = report_dir / "index.html"
    if not page.is_file():
        return None
    text = page.read_text(encoding="utf-8")
    if EXTRAS_START in text:
        text = text[:text.index(EXTRAS_START)] + text[text.index(EXTRAS_END) + len(EXTRAS_END):]
    parts = []
    for heading, patterns in EXTRA_FIGURES:
        files = sorted({p for pattern in patterns for p in report_dir.glob(pattern)})
        if files:
            figures = "".join(f"<figure><img src='{html.escape(p.name)}' alt='{html.escape(p.stem)}'>"
                              f"<figcaption>{html.escape(p.name)}{page_beside(p)}</figcaption></figure>"
                              for p in files)
            parts.append(f"<h3>{html.escape(heading)}</h3>{figures}")
    if parts:
        section = (f"{EXTRAS_START}<h2>Robustness and explanations</h2><p>Figures that deepworks attack, explain, "
                   f"visualize and represent wrote into this folder; the JSON beside each holds its numbers.</p>"
                   + "".join(parts) + EXTRAS_END)
        text = text.replace("</body></html>", section + "</body></html>")
    atomic_write_text(page, text)
    return page
