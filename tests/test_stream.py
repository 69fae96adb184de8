"""Images streamed from disk through DataLoader workers: they learn as images in memory do, memory stays flat, and
exact resume holds whatever the number of workers."""

import re
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from conftest import assert_same_weights, ctrl_c_at_step, draw, weights

import deepworks as dw
from deepworks.data.stream import FileImages, augment_one, mix64
from deepworks.training.loop import Interrupted
from deepworks.tasks.image import ImageClassification, augment


@pytest.fixture
def shapes(tmp_path):
    """shapes/{hbar,vbar,square}/*.png: 60 grey 16 px images per class."""
    rng = np.random.default_rng(0)
    for kind in ("hbar", "vbar", "square"):
        (tmp_path / "shapes" / kind).mkdir(parents=True)
        for i in range(60):
            draw(kind, 16, rng).save(tmp_path / "shapes" / kind / f"{i}.png")
    return str(tmp_path / "shapes")


QUICK = dict(model="mlp", depth=1, width=32, baseline=False, batch_size=16, progress=False)


def test_a_streamed_folder_learns_like_one_in_memory(shapes):
    streamed = dw.train(data=shapes, stream="on", workers=2, epochs=6, name="streamed", **QUICK)
    memory = dw.train(data=shapes, stream="off", epochs=6, name="memory", **QUICK)
    assert "streamed from disk" in streamed.task.meta["source"] and "streamed from disk" not in memory.task.meta["source"]
    assert streamed.results["splits"] == memory.results["splits"]  # the same seeded splits
    assert streamed.results["test"]["accuracy"] >= 0.9 and memory.results["test"]["accuracy"] >= 0.9
    # without augmentation, decoding in workers gives the very same batches: the same weights
    assert_same_weights(weights(streamed.run.path), weights(memory.run.path))


def test_auto_streams_when_the_decoded_images_exceed_the_memory_budget(shapes):
    small = dw.train(data=shapes, epochs=1, memory_budget=1e-6, name="small", **QUICK)
    large = dw.train(data=shapes, epochs=1, name="large", **QUICK)
    assert "streamed from disk" in small.task.meta["source"]
    assert "streamed from disk" not in large.task.meta["source"]


def test_streamed_resume_gives_the_same_weights_whatever_the_number_of_workers(shapes):
    settings = dict(data=shapes, stream="on", augment="crop+flip", epochs=2, restore_best=False, **QUICK)
    whole = dw.train(name="whole", workers=2, **settings)
    with ctrl_c_at_step(ImageClassification, 15), pytest.raises(Interrupted):
        dw.train(name="cut", workers=0, **settings)
    resumed = dw.train(resume="runs/cut", workers=1, progress=False)
    assert_same_weights(weights(whole.run.path), weights(resumed.run.path))


def test_per_image_augmentation_draws_the_crops_and_flips_the_batch_version_does():
    x = torch.arange(3 * 16 * 16, dtype=torch.uint8).reshape(3, 16, 16)
    one = [augment_one(x.numpy(), "crop+flip", mix64(i)).tobytes() for i in range(2000)]
    torch.manual_seed(0)
    batch = {img.numpy().tobytes() for img in augment(x[None].repeat(1000, 1, 1, 1), "crop+flip")}
    assert set(one) == batch and len(batch) == 5 * 5 * 2  # shifts of -2..2 px each way, flipped or not
    counts = np.unique(one, return_counts=True)[1]
    assert counts.min() > 2000 / 50 / 2  # none of the 50 is rare: the hash spreads the draws evenly


def test_file_images_index_like_a_tensor(shapes):
    files = sorted(str(p) for p in Path(shapes).rglob("*.png"))[:10]
    images = FileImages(files, 16, 1)
    assert images.shape == (10, 1, 16, 16) and len(images) == 10
    assert torch.equal(images[2:5], torch.stack([images[2], images[3], images[4]]))
    assert torch.equal(images[np.array([7, 1])][0], images[7])


def test_a_csv_of_paths_streams_too(shapes):
    rows = ["path,label"] + [f"{p.relative_to(Path(shapes))},{p.parent.name}" for p in sorted(Path(shapes).rglob("*.png"))]
    (Path(shapes) / "labels.csv").write_text("\n".join(rows) + "\n")
    trained = dw.train(data=str(Path(shapes) / "labels.csv"), stream="on", workers=1, epochs=4, name="csv", **QUICK)
    assert "CSV" in trained.task.meta["source"] and "streamed from disk" in trained.task.meta["source"]
    assert trained.results["test"]["accuracy"] >= 0.9


def test_a_streamed_folder_gets_the_split_checks_of_one_in_memory(shapes):
    for stream in ("on", "off"):
        with pytest.raises(dw.DeepworksError, match=r"leaves no image to test the model on \(--test-fraction 0\)\. "
                                                     r"Raise --test-fraction"):
            dw.train(data=shapes, stream=stream, test_fraction=0.0, epochs=1, **QUICK)


def test_a_truncated_png_is_skipped_with_the_same_warning_streamed_or_in_memory(shapes):
    broken = Path(shapes) / "hbar" / "broken.png"
    noise = np.random.default_rng(1).integers(0, 256, (16, 16), dtype=np.uint8)
    Image.fromarray(noise).save(broken)
    broken.write_bytes(broken.read_bytes()[:120])  # the header reads, the pixels stop short
    runs, said = {}, {}
    for stream in ("on", "off"):
        with pytest.warns(UserWarning) as caught:
            runs[stream] = dw.train(data=shapes, stream=stream, workers=0, epochs=1, name=f"cut-{stream}", **QUICK)
        said[stream] = [str(w.message) for w in caught if "could not be read" in str(w.message)]
    assert said["on"] == said["off"] and len(said["on"]) == 1
    assert f"{broken}: corrupt or truncated" in said["on"][0] and "skipped" in said["on"][0]
    assert runs["on"].results["splits"] == runs["off"].results["splits"]
    kept = {stream: sorted(str(n) for names in run.task.names.values() for n in names) for stream, run in runs.items()}
    assert kept["on"] == kept["off"] and str(broken) not in kept["on"] and len(kept["on"]) == 180


def test_an_image_broken_after_the_run_started_is_named_when_it_is_decoded(shapes):
    path = Path(shapes) / "hbar" / "0.png"
    images = FileImages([str(path)], 16, 1)
    path.write_bytes(path.read_bytes()[:40])
    with pytest.raises(dw.DeepworksError, match=f"{re.escape(str(path))}: not an image.*It was readable when the run"):
        images[0]
