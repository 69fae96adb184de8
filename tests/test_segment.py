"""Segmentation: the tiles blend to what one pass gives, augmentation moves masks exactly with their pixels, the loss
leaves ignored pixels out, the metrics on hand-made masks; a U-Net that learns the shapes, used from the CLI (masks
and overlays at each image's own size), the API (arrays, PNG and RLE that decode to the same mask) and the server
(its route and V2); and a pretrained start that fits its head first and keeps its encoder's statistics."""

from __future__ import annotations

import base64
import io

import numpy as np
import pytest
import torch
from PIL import Image

import deepworks as dw
from deepworks.data.detection import make_shapes
from deepworks.data.masks import IGNORE
from deepworks.metrics.masks import object_ious, rand_error
from deepworks.models.unet import segmentation_loss
from deepworks.tasks.segment import augment_pairs, class_weights
from deepworks.tasks.segment_face import tile_starts, tiled_probabilities
from test_task_contract import quick_fid, runs  # noqa: F401 (fixtures: every task's tiny run, made once per test run)


# --- the parts -------------------------------------------------------------------------------------------------------
class Pointwise(torch.nn.Module):
    """A stand-in serving graph whose answer at a pixel depends on that pixel alone (uint8 NHWC in)."""

    def forward(self, images):
        x = images.permute(0, 3, 1, 2).float() / 255
        return torch.cat([x[:, :1], 1 - x[:, :1]], 1)


@pytest.mark.parametrize("h, w", [(64, 64), (100, 64), (65, 170), (30, 20)])
def test_overlapping_tiles_blend_to_what_one_pass_gives(h, w):
    image = torch.randint(0, 256, (3, h, w), dtype=torch.uint8)
    probs = tiled_probabilities(Pointwise(), image, 32, torch.device("cpu"), 2)
    whole = Pointwise()(image.permute(1, 2, 0)[None])[0]
    assert probs.shape == (2, h, w) and torch.allclose(probs, whole, atol=1e-6)
    starts = tile_starts(w, 32)
    assert starts[0] == 0 and (starts[-1] + 32 == w or w <= 32) and all(b - a <= 24 for a, b in zip(starts, starts[1:]))


def test_augmentation_moves_every_mask_pixel_with_its_image_pixel():
    torch.manual_seed(0)
    masks = torch.zeros(8, 64, 64, dtype=torch.uint8)
    masks[:, 10:40, 5:30] = 1
    masks[:, 45:60, 30:62] = 2
    x = (masks.float() * 80 + 20)[:, None].repeat(1, 3, 1, 1).to(torch.uint8)  # each class its own grey
    out, moved = augment_pairs(x, masks, "crop+flip")
    assert moved.dtype == torch.uint8 and (moved == IGNORE).any() and (moved != masks).any()  # zoomed and shifted
    inside = torch.nn.functional.max_pool2d(-(moved.float()[:, None]), 3, 1, 1)[:, 0] == -moved.float()
    inside &= torch.nn.functional.max_pool2d(moved.float()[:, None], 3, 1, 1)[:, 0] == moved.float()
    inside[:, [0, -1]] = inside[:, :, [0, -1]] = False  # the frame's edge may blend half a pixel of the outside
    for k, grey in ((0, 20), (1, 100), (2, 180)):
        pick = inside & (moved == k)
        assert pick.any() and (out[:, 0][pick] - grey).abs().max() < 1  # away from edges, the class's own grey
    assert ((out[:, 0][inside & (moved == IGNORE)] - 114).abs() < 1).all()  # what came from outside: grey, ignored


def test_the_loss_leaves_ignored_pixels_out():
    torch.manual_seed(0)
    scores = torch.randn(2, 3, 8, 8, requires_grad=True)
    masks = torch.randint(0, 3, (2, 8, 8))
    masks[:, :, :4] = IGNORE
    loss, _ = segmentation_loss(scores.log_softmax(1), masks)
    loss.backward()
    assert (scores.grad[..., :4] == 0).all() and (scores.grad[..., 4:] != 0).any()
    changed = scores.detach().clone()
    changed[..., :4] = 50.0
    assert torch.isclose(segmentation_loss(changed.log_softmax(1), masks)[0], loss.detach())
    empty = segmentation_loss(scores.log_softmax(1), torch.full((2, 8, 8), IGNORE))[0]
    assert float(empty.detach()) == 0.0  # a tile of padding only


def test_rand_error_and_object_iou_on_hand_made_masks():
    truth = np.ones((20, 20), np.uint8)
    truth[:, 10] = 0  # two cells split by a membrane
    assert rand_error(truth, truth) == 0.0
    merged = np.ones((20, 20), np.uint8)  # the membrane missed: the two cells are one
    assert 0.3 < rand_error(truth, merged) < 0.5
    objects = object_ious(truth, truth, [1])
    assert sorted(a for _, a, _ in objects) == [180, 200] and all(v == 1.0 for *_, v in objects)
    half = truth.copy()
    half[:10, :10] = 0
    assert sorted(v for *_, v in object_ious(truth, half, [1])) == [0.5, 1.0]


def test_classes_are_weighted_only_when_their_pixels_differ_fivefold():
    assert class_weights(np.array([100, 60, 40])) is None
    w = np.asarray(class_weights(np.array([900, 90, 10, 0])))
    share = np.array([900, 90, 10, 0]) / 1000
    assert w[0] < w[1] < w[2] and abs(w[2] / w[0] - 3 / np.sqrt(0.1)) < 0.01 and abs((w * share).sum() - 1) < 1e-3


# --- a segmenter that learns, and the contract harness's tiny one in use ---------------------------------------------
@pytest.fixture
def segmenter(runs):  # noqa: F811
    """The contract harness's tiny segmenter of the shapes (test_task_contract.py), made once per test run."""
    return dw.load(runs["segment"])


def test_the_unet_learns_the_shapes_far_above_the_majority_class(tmp_path):
    trained = dw.train(task="segment", data="shapes-seg:240", image_size=32, width=16, depth=3, epochs=6,
                       batch_size=8, baseline=False, runs_dir=str(tmp_path), name="shapes", progress=False)
    test = trained.results["test"]
    pixels = np.array([r["pixels"] for r in test["per_class"]])
    majority = pixels.max() / pixels.sum() / (pixels > 0).sum()  # background everywhere: its IoU, 0 for the rest
    assert test["miou"] >= 0.3 and test["miou"] >= majority + 0.07, (test["miou"], majority)  # 0.38 here, 0.22
    assert [r["class"] for r in test["per_class"]] == ["background", "circle", "square", "triangle"]
    report = trained.run.report_dir
    for name in ("predictions.png", "worst.png", "confusion.png", "object-sizes.png"):
        assert (report / name).is_file(), name
    assert "The worst test images" in (report / "index.html").read_text()


def shape_photo(path, size: int, seed: int = 11) -> None:
    found = make_shapes(1, seed, 96, 96)
    Image.fromarray(found.images[0].transpose(1, 2, 0)).resize((size, size * 2 // 3)).save(path)


def test_segment_writes_each_mask_and_overlay_at_the_images_own_size(segmenter, tmp_path, capsys):
    from deepworks.cli import main

    shape_photo(tmp_path / "big.png", 300)
    shape_photo(tmp_path / "small.png", 45)
    assert main(["segment", str(segmenter.run.path), str(tmp_path / "big.png"), str(tmp_path / "small.png"),
                 "--out", str(tmp_path / "out")]) == 0
    printed = capsys.readouterr().out
    assert "big.png (300x200): " in printed and "big-overlay.png" in printed
    for name, size in (("big", (300, 200)), ("small", (45, 30))):
        mask = Image.open(tmp_path / "out" / f"{name}-mask.png")
        assert mask.mode == "P" and mask.size == size and np.asarray(mask).max() <= 3
        overlay = Image.open(tmp_path / "out" / f"{name}-overlay.png")
        assert overlay.size == size and overlay.mode == "RGB"


def test_png_and_rle_answers_decode_to_the_api_mask(segmenter):
    from pycocotools import mask as coco_mask

    image = make_shapes(1, 12, 96, 96).images[0].transpose(1, 2, 0)
    answer = segmenter.segment(image)[0]
    mask = answer["mask"]
    assert mask.shape == (96, 96) and mask.dtype == np.uint8
    png = np.asarray(Image.open(io.BytesIO(base64.b64decode(answer["mask_png_base64"]))))
    assert (png == mask).all()
    rle = segmenter(image, rle=True)[0]["masks_rle"]
    rebuilt = np.zeros_like(mask)
    for r in rle:
        rebuilt[coco_mask.decode({"size": r["size"], "counts": r["counts"].encode()}) == 1] = \
            segmenter.classes.index(r["class"])
    assert (rebuilt == mask).all() and sum(c["pixels"] for c in answer["classes"]) == 96 * 96


def test_the_server_answers_masks_on_its_route_and_in_v2(segmenter):
    from fastapi.testclient import TestClient

    from deepworks.serving import build_app

    image = make_shapes(1, 12, 96, 96).images[0].transpose(1, 2, 0)
    expected, name = segmenter.segment(image)[0]["mask"], segmenter.run.path.name
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="PNG")
    with TestClient(build_app([str(segmenter.run.path)])) as c:
        r = c.post(f"/v1/models/{name}/segment", files=[("file", ("a.png", buffer.getvalue(), "image/png"))],
                   data={"rle": "false"})
        assert r.status_code == 200, r.text
        got = np.asarray(Image.open(io.BytesIO(base64.b64decode(r.json()["outputs"][0]["mask_png_base64"]))))
        assert (got == expected).all()
        body = {"inputs": [{"name": "images", "datatype": "UINT8", "shape": [1, 96, 96, 3],
                            "data": image.reshape(-1).tolist()}]}
        r = c.post(f"/v2/models/{name}/infer", json=body)
        assert r.status_code == 200, r.text
        out = {o["name"]: o for o in r.json()["outputs"]}["masks"]
        assert out["shape"] == [1, 96, 96] and (np.asarray(out["data"]).reshape(96, 96) == expected).all()
        r = c.post(f"/v1/models/{name}/segment", json={"inputs": image.tolist(), "opacity": 3})
        assert r.status_code == 400 and "opacity must be from 0.0 to 1.0. Received: 3." in r.json()["error"]


def test_a_run_of_colour_masks_is_evaluated_again_from_its_folder(tmp_path):
    from PIL import ImageDraw

    for sub in ("images", "masks"):
        (tmp_path / "data" / sub).mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i in range(8):
        x, y = (int(v) for v in rng.integers(0, 16, 2))
        image, mask = Image.new("RGB", (32, 32), (30, 30, 30)), Image.new("RGB", (32, 32), (0, 0, 0))
        ImageDraw.Draw(image).rectangle((x, y, x + 12, y + 12), fill=(220, 220, 40))
        ImageDraw.Draw(mask).rectangle((x, y, x + 12, y + 12), fill=(0, 200, 0))
        image.save(tmp_path / "data" / "images" / f"{i}.png")
        mask.save(tmp_path / "data" / "masks" / f"{i}.png")
    dw.train(task="segment", data=str(tmp_path / "data"), image_size=32, epochs=1, batch_size=4, baseline=False,
             runs_dir=str(tmp_path / "runs"), name="colours", progress=False)
    again = dw.evaluate(tmp_path / "runs" / "colours")  # read by the run's own class map and colours
    assert [r["class"] for r in again["per_class"]] == ["#000000", "#00c800"] and again["images"] >= 1


def test_settings_that_cannot_segment_are_refused_with_the_fix(tmp_path):
    from deepworks.errors import ConfigError

    with pytest.raises(ConfigError, match="multiple of 32, at least 32 .* Received: 48"):
        dw.train(task="segment", data="shapes-seg:8", image_size=48, epochs=1, runs_dir=str(tmp_path), progress=False)
    with pytest.raises(ConfigError, match="--pretrained segmentation uses --model unet_lite0"):
        dw.train(task="segment", model="unet", pretrained=True, runs_dir=str(tmp_path), progress=False)


def test_a_pretrained_start_fits_its_head_first_and_keeps_the_encoders_statistics(tmp_path):
    from safetensors.torch import load_file

    from deepworks.models.efficientnet import EfficientNetLite0
    from deepworks.models.pretrained import load_pretrained

    with pytest.warns(UserWarning, match="first fitted to the body's features of .* training pixels"):
        dw.train(task="segment", data="shapes-seg:16", image_size=32, epochs=1, batch_size=8, pretrained=True,
                 baseline=False, runs_dir=str(tmp_path), name="lite0", progress=False)
    state = load_file(tmp_path / "lite0" / "model.safetensors")
    start = EfficientNetLite0(3, 1000)
    load_pretrained(start, "efficientnet_lite0")
    assert torch.equal(state["backbone._bn0.running_mean"], start._bn0.running_mean)  # ImageNet's statistics kept
    decoder = [v for k, v in state.items() if k.startswith("smooth.") and k.endswith("running_mean")]
    assert decoder and (decoder[0] != 0).any()  # the new decoder learned its own
