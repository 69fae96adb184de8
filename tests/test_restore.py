"""Image restoration: MATLAB's bicubic as the papers use it (Set5's published bicubic PSNR), tiles that join without
seams, the degradations (seeded, each what it says), an upscaler that beats bicubic and a denoiser that learns,
used from the API (arrays, alpha kept), the CLI (--out files at the photo's size) and the server (its route and V2),
and bad input named with its fix."""

from __future__ import annotations

import base64
import io
import json
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import deepworks as dw
from deepworks.errors import ConfigError, DataError
from deepworks.metrics.pixels import enlarge, lab_to_rgb, psnr, resize, rgb_to_lab, scores, shrink
from deepworks.models.restore import EDSR, RestorerServing, RestoreUNet, halo_of
from deepworks.tasks.restore_face import restored

CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def upscaler(tmp_path_factory):
    """A small EDSR that doubles photos, trained on the shipped photos (8 s)."""
    runs = tmp_path_factory.mktemp("restore-runs")
    dw.train(task="restore", data="photos:384", model="edsr", width=16, depth=2, image_size=32, lr=0.003, epochs=4,
             batch_size=16, runs_dir=str(runs), name="x2", progress=False)
    return runs / "x2"


# --- the parts -------------------------------------------------------------------------------------------------------
def test_bicubic_matches_matlab_on_the_published_set5_figure(tmp_path):
    from conftest import shared

    with tarfile.open(shared("sr_benchmarks", "set5_set14.tar.gz")) as tar:
        tar.extractall(tmp_path, filter="data")
    found = []
    for f in sorted((tmp_path / "Set5").glob("*.png")):
        a = np.asarray(Image.open(f).convert("RGB"))
        a = a[:a.shape[0] // 3 * 3, :a.shape[1] // 3 * 3]
        up = enlarge(shrink(torch.from_numpy(a).permute(2, 0, 1), 3), 3).permute(1, 2, 0).numpy()
        found.append(scores(up, a, 3, on_luma=True)["psnr"])
    assert np.mean(found) == pytest.approx(30.39, abs=0.05)  # SRCNN's table: Set5 x3 bicubic 30.39 dB


def test_resizing_keeps_flat_images_flat_and_shrinks_by_the_factor():
    flat = torch.full((3, 30, 42), 77.0)
    assert torch.allclose(resize(flat, 10, 14), torch.full((3, 10, 14), 77.0), atol=1e-9)
    ramp = torch.arange(48, dtype=torch.float64).repeat(5, 1)  # a linear ramp stays linear away from the border
    assert torch.allclose(resize(ramp, 5, 16)[0, 2:-2], torch.arange(16, dtype=torch.float64)[2:-2] * 3 + 1, atol=1e-6)
    assert psnr(np.zeros((4, 4)), np.zeros((4, 4))) == 100.0


def test_lab_round_trips_and_a_grey_photo_has_no_colour():
    x = torch.rand(2, 3, 9, 7, dtype=torch.float64)
    assert torch.allclose(lab_to_rgb(rgb_to_lab(x)), x, atol=1e-6)
    grey = torch.rand(1, 1, 5, 5, dtype=torch.float64).repeat(1, 3, 1, 1)
    assert rgb_to_lab(grey)[:, 1:].abs().max() < 1e-3


@pytest.mark.parametrize("model, h, w", [(EDSR(2, 8, 2), 53, 37), (RestoreUNet(8, 3), 61, 90),
                                         (RestoreUNet(8, 3, colourise=True), 40, 33)])
def test_tiles_join_without_seams(model, h, w):
    torch.manual_seed(0)
    serving = RestorerServing(model.eval())
    image = torch.randint(0, 256, (3, h, w), dtype=torch.uint8)
    halo, multiple, scale = halo_of(model), model.multiple, getattr(model, "scale", 1)
    whole = restored(serving, image, 4096, halo, multiple, scale, CPU)
    tiled = restored(serving, image, 16, halo, multiple, scale, CPU)
    assert tiled.shape == (3, h * scale, w * scale)
    assert (tiled.int() - whole.int()).abs().max() <= 1  # the same up to rounding: every pixel saw what it sees whole


def test_each_degradation_is_what_it_says_and_is_seeded():
    from deepworks.config import Config
    from deepworks.tasks.restore import Restoration

    clean = torch.randint(0, 256, (2, 3, 24, 24), dtype=torch.uint8)
    made = {}
    for mode, model in (("sr", "espcn"), ("denoise", "unet"), ("jpeg", "unet"), ("colorize", "unet")):
        cfg = Config()
        cfg.data.mode, cfg.model.name = mode, model
        task = Restoration(cfg)
        task.meta = {"noise_sigma": 25.0}
        made[mode] = task.degrade(clean, torch.Generator().manual_seed(1))
        assert torch.equal(made[mode], task.degrade(clean, torch.Generator().manual_seed(1)))
    assert made["sr"].shape == (2, 3, 12, 12)
    assert 20 < (made["denoise"].float() - clean.float()).std() < 26  # sigma 25, clipped at 0 and 255
    assert made["jpeg"].shape == clean.shape and not torch.equal(made["jpeg"], clean)
    grey = made["colorize"]
    spread = grey.int().amax(1) - grey.int().amin(1)
    assert spread.max() <= 1  # R = G = B, up to rounding


# --- learning --------------------------------------------------------------------------------------------------------
def test_an_upscaler_beats_bicubic_on_photos_it_never_saw(upscaler):
    test = dw.load(upscaler).results["test"]
    assert test["images"] == 2 and test["psnr"] > 20
    again = dw.evaluate(upscaler)
    assert again["psnr"] == pytest.approx(test["psnr"], abs=1e-3)
    assert again["baseline_psnr"] < again["psnr"] - 0.3, again  # bicubic's answer, on the luma as the papers score


def test_a_denoiser_learns_to_remove_noise(tmp_path):
    trained = dw.train(task="restore", mode="denoise", data="photos:256", width=8, depth=2, image_size=32, lr=0.01,
                       epochs=4, batch_size=16, noise_sigma=25, runs_dir=str(tmp_path), progress=False, baseline=False)
    test = trained.results["test"]
    noisy = 20 * np.log10(255 / 25)  # the noise alone: about 20.2 dB
    assert test["psnr"] > noisy + 3, test


# --- use -------------------------------------------------------------------------------------------------------------
def test_the_api_restores_photos_of_any_size_and_keeps_their_alpha(upscaler, tmp_path):
    trained = dw.load(upscaler)
    rgba = np.zeros((37, 51, 4), np.uint8)
    rgba[..., :3] = 120
    rgba[..., 3] = np.linspace(0, 255, 51, dtype=np.uint8)[None]
    Image.fromarray(rgba).save(tmp_path / "logo.png")
    answers = trained.restore([tmp_path / "logo.png", np.full((20, 30, 3), 200, np.uint8)], out=tmp_path / "out")
    assert answers[0]["image"].shape == (74, 102, 4) and answers[1]["image"].shape == (40, 60, 3)
    assert abs(int(answers[0]["image"][5, 100, 3]) - 255) <= 2 and answers[0]["image"][5, 1, 3] <= 3
    written = Image.open(answers[0]["file"])
    assert written.size == (102, 74) and written.mode == "RGBA" and Path(answers[0]["file"]).name == "logo-x2.png"
    decoded = np.asarray(Image.open(io.BytesIO(base64.b64decode(answers[1]["image_png_base64"]))))
    assert np.array_equal(decoded, answers[1]["image"])
    deep = (np.arange(16 * 24, dtype=np.uint16).reshape(16, 24) * 150)  # a 16-bit scan: stretched into 8 bits
    Image.fromarray(deep).save(tmp_path / "scan.png")
    Image.fromarray(np.full((10, 14, 3), 60, np.uint8)).convert("P", palette=Image.ADAPTIVE).save(tmp_path / "p.png")
    scan, palette = trained.restore([tmp_path / "scan.png", tmp_path / "p.png"])
    assert scan["image"].shape == (32, 48, 3) and scan["image"].max() > 200 and palette["image"].shape == (20, 28, 3)


def test_a_colouriser_keeps_the_grey_photo_s_lightness():
    torch.manual_seed(0)
    model = RestoreUNet(8, 2, colourise=True).eval()
    grey = torch.rand(1, 1, 32, 32).repeat(1, 3, 1, 1)
    with torch.no_grad():
        assert (model(grey) - grey).abs().max() < 1e-5  # untrained, it gives no colour: the grey photo itself
        torch.nn.init.normal_(model.net.head.linear.weight, std=0.1)  # as if trained a little
        out = model(grey)
    shift = (rgb_to_lab(out)[:, 0] - rgb_to_lab(grey)[:, 0]).abs()  # L* of 0-100: only colour is added, but for
    assert shift.median() < 0.01 and shift.mean() < 0.5  # colours outside sRGB, which are clipped
    assert rgb_to_lab(out)[:, 1:].abs().mean() > 0.01  # some colour (an untrained net's, but colour)


def test_the_cli_upscales_a_photo_into_a_folder(upscaler, tmp_path, capsys):
    from deepworks.cli import main

    Image.fromarray(np.random.default_rng(0).integers(0, 256, (45, 61, 3), dtype=np.uint8)).save(tmp_path / "p.jpg")
    code = main(["restore", str(upscaler), str(tmp_path / "p.jpg"), "--out", str(tmp_path / "up"), "--json"])
    out = capsys.readouterr().out
    assert code == 0 and Image.open(tmp_path / "up" / "p-x2.png").size == (122, 90)
    assert json.loads(out)[0]["width"] == 122


def test_the_server_answers_png_and_v2_tensors(upscaler):
    from fastapi.testclient import TestClient

    from deepworks.serving import Limits, build_app

    app = build_app([str(upscaler)], limits=Limits(max_items=16, max_length=50, timeout_s=20))
    photo = np.random.default_rng(1).integers(0, 256, (17, 23, 3), dtype=np.uint8)
    with TestClient(app) as client:
        r = client.post("/v1/models/x2/restore", json={"inputs": [photo.tolist()]})
        assert r.status_code == 200, r.text
        image = Image.open(io.BytesIO(base64.b64decode(r.json()["outputs"][0]["image_png_base64"])))
        assert image.size == (46, 34)
        body = {"inputs": [{"name": "images", "datatype": "UINT8", "shape": [1, 17, 23, 3],
                            "data": photo.reshape(-1).tolist()}]}
        r = client.post("/v2/models/x2/infer", json=body)
        assert r.status_code == 200, r.text
        assert r.json()["outputs"][0]["shape"] == [1, 34, 46, 3]


# --- bad input -------------------------------------------------------------------------------------------------------
def photo_folder(folder: Path, n: int, grey: bool = False, side: int = 64) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for i in range(n):
        a = rng.integers(0, 256, (side, side, 1 if grey else 3), dtype=np.uint8)
        Image.fromarray(a[..., 0] if grey else a).save(folder / f"p{i}.png")
    return folder


def test_bad_settings_and_data_are_named_with_the_fix(tmp_path):
    with pytest.raises(ConfigError, match="does not fit --mode denoise"):
        dw.train(task="restore", mode="denoise", model="edsr", progress=False)
    with pytest.raises(ConfigError, match="multiple of 3"):
        dw.train(task="restore", scale=3, image_size=50, data="photos:32", progress=False)
    with pytest.raises(DataError, match="every photo is grey"):
        dw.train(task="restore", mode="colorize", data=str(photo_folder(tmp_path / "grey", 4, grey=True)),
                 progress=False)
    with pytest.raises(DataError, match="smaller --image-size"):
        dw.train(task="restore", data=str(photo_folder(tmp_path / "small", 4, side=20)), image_size=48,
                 progress=False)
    with pytest.raises(DataError, match="too few"):
        dw.train(task="restore", data=str(photo_folder(tmp_path / "two", 2)), progress=False)


def test_what_one_call_may_cost_is_bounded_thin_strips_and_v2_answers_included(upscaler):
    from fastapi.testclient import TestClient

    from deepworks.serving import Limits, build_app
    from deepworks.tasks import restore_face

    trained = dw.load(upscaler)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(restore_face, "MAX_CALL_PIXELS", 1000)
        with pytest.raises(DataError, match="Expected at most 1,000 pixels out of one call"):
            trained.restore(np.zeros((20, 20, 3), np.uint8))
    with pytest.MonkeyPatch.context() as patch:  # a strip two pixels high: its tiles are nearly all border
        patch.setattr(restore_face, "MAX_CALL_WORK", 20_000)
        assert trained.restore(np.zeros((40, 40, 3), np.uint8))[0]["width"] == 80  # 6,400 out, 14,400 read
        with pytest.raises(DataError, match="a strip a few pixels thin is nearly all border"):
            trained.restore(np.zeros((2, 400, 3), np.uint8))  # 3,200 out, about 50,000 read
    photo = np.zeros((100, 100, 3), np.uint8)
    body = {"inputs": [{"name": "images", "datatype": "UINT8", "shape": [1, 100, 100, 3],
                        "data": photo.ravel().tolist()}]}
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(restore_face, "MAX_V2_VALUES", 50_000)  # above what the server warms up with
        with TestClient(build_app([str(upscaler)], limits=Limits(timeout_s=20))) as client:
            r = client.post("/v2/models/x2/infer", json=body)  # 200 x 200 x 3 = 120,000 numbers of JSON
    assert r.status_code == 400 and "which answers PNG" in r.json()["error"], r.text


def test_arrays_with_an_alpha_channel_keep_it(upscaler):
    trained = dw.load(upscaler)
    rgba = np.zeros((6, 8, 4), np.uint8)
    rgba[..., 3] = 255
    grey_alpha = np.zeros((2, 6, 8, 2), np.float32)  # a batch of grey photos with alpha, in 0-1
    grey_alpha[..., 1] = 1.0
    answers = trained.restore([rgba, grey_alpha])
    assert [a["image"].shape for a in answers] == [(12, 16, 4), (12, 16, 4), (12, 16, 4)]
    assert all(a["image"][..., 3].min() >= 250 for a in answers)


def test_a_folder_s_own_split_folders_are_followed(tmp_path):
    from deepworks.data.photos import read_photos

    for part, n in (("valid", 2), ("test", 1)):
        photo_folder(tmp_path / "set" / part, n)
    photo_folder(tmp_path / "set" / "loose", 3)  # beside valid/ and test/: these train
    found = read_photos(str(tmp_path / "set"), tmp_path)
    assert {k: len(v) for k, v in found.split.items()} == {"val": 2, "test": 1, "train": 3}
