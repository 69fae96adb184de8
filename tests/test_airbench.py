"""The airbench model (models/airbench.py): whitening filters set from the data, the shifts' own rate, the mirror
average, and the default for many colour photos with its recipe."""

import numpy as np
import pytest
import torch

import deepworks as dw
from deepworks.config import Config
from deepworks.models.airbench import BIAS_LR, AirBench
from deepworks.tasks.image import ImageClassification
from deepworks.training.engine import autocast_for, cpu_has_bf16_units


def test_the_whitening_filters_give_patches_of_unit_variance_in_every_direction():
    torch.manual_seed(0)
    mix = torch.tensor([[1.0, 0.9, 0.8], [0.0, 0.4, 0.3], [0.0, 0.0, 0.1]])  # strongly correlated channels
    x = torch.einsum("dc,nchw->ndhw", mix, torch.randn(200, 3, 16, 16))
    x = x + x.roll(1, dims=3)  # and neighbouring pixels
    net = AirBench(3, 10, width=8)
    net.init_from_data(x)
    with torch.no_grad():
        out = torch.nn.functional.conv2d(x, net.whiten.weight[:12])  # the + half; the - half mirrors it
    flat = out.permute(1, 0, 2, 3).reshape(12, -1)
    cov = flat @ flat.T / flat.shape[1]
    off_diagonal = cov - torch.diag(cov.diagonal())
    assert off_diagonal.abs().max() < 1e-3  # decorrelated
    assert ((cov.diagonal() > 0.9) & (cov.diagonal() < 1.0001)).all()  # unit variance, less where it nears WHITEN_EPS
    assert not net.whiten.weight.requires_grad


def test_the_shifts_learn_faster_with_the_same_decay_per_step_and_the_rest_as_given():
    net = AirBench(3, 10, width=8)
    rest, shifts = net.parameter_groups(lr=0.5, weight_decay=1e-3, optimizer="nesterov")
    assert shifts["lr"] == 0.5 * BIAS_LR and shifts["lr"] * shifts["weight_decay"] == 0.5 * 1e-3
    assert (rest["lr"], rest["weight_decay"]) == (0.5, 1e-3)
    assert len(shifts["params"]) == 6 and all(p.requires_grad for p in rest["params"])
    assert id(net.whiten.weight) not in {id(p) for p in rest["params"]}
    (one,) = net.parameter_groups(lr=0.5, weight_decay=1e-3, optimizer="adamw")  # Adam scales each step itself
    assert len(one["params"]) == len(rest["params"]) + 6 and "lr" not in one


def test_a_model_trained_on_mirrored_images_averages_its_view_of_the_mirror_image():
    torch.manual_seed(0)
    net = AirBench(3, 4, width=8, mirror=True).eval()
    x = torch.randn(5, 3, 16, 16)
    with torch.no_grad():
        assert torch.allclose(net(x), net(x.flip(-1)), atol=1e-6)
        assert torch.allclose(net(x), (net.logits(x) + net.logits(x.flip(-1))) / 2)
        assert not torch.allclose(AirBench(3, 4, width=8).eval()(x), AirBench(3, 4, width=8).eval()(x.flip(-1)))


def resolved(channels: int, count: int, **given) -> Config:
    cfg = Config()
    for key, value in given.items():
        section, _, name = key.partition("_")
        setattr(getattr(cfg, section), name, value)
    ImageClassification(cfg).data_defaults(channels, count)
    return cfg


def test_ten_thousand_colour_photos_get_the_airbench_model_and_its_recipe_and_a_choice_is_kept():
    cfg = resolved(3, 50_000)
    t = cfg.train
    assert (cfg.model.name, cfg.data.augment) == ("airbench", "crop+flip")
    assert (t.optimizer, t.momentum, t.lr, t.batch_size, t.label_smoothing) == ("nesterov", 0.85, 1.5, 1024, 0.2)
    assert (t.schedule, t.ema, t.amp) == ("linear", 0.99, "auto")  # auto: bf16 where the CPU has bf16 units
    assert resolved(3, 9_999).model.name == "resnet" and resolved(3, 9_999).train.lr == 0.01
    assert resolved(1, 50_000).model.name == "smallcnn"
    mine = resolved(3, 50_000, train_lr=0.2).train
    assert (mine.lr, mine.optimizer, mine.batch_size) == (0.2, "nesterov", 1024)
    adamw = resolved(3, 50_000, train_optimizer="adamw").train  # the recipe's rates are for its own optimizer
    assert (adamw.lr, adamw.schedule, adamw.batch_size, adamw.label_smoothing) == (0.01, "onecycle", 1024, 0.2)


def test_auto_precision_is_bf16_on_a_cpu_with_bf16_units_for_a_model_that_asks_and_float32_otherwise():
    cpu = torch.device("cpu")
    with autocast_for(cpu, "auto", AirBench(3, 10, width=8))[0]():
        assert torch.is_autocast_enabled("cpu") == cpu_has_bf16_units()
    with autocast_for(cpu, "auto", torch.nn.Linear(2, 2))[0]():
        assert not torch.is_autocast_enabled("cpu")
    with autocast_for(cpu, "off", AirBench(3, 10, width=8))[0]():
        assert not torch.is_autocast_enabled("cpu")


def test_the_airbench_model_learns_colour_photos_and_predicts_the_same_for_a_mirror_image():
    rng = np.random.default_rng(0)
    x = rng.integers(0, 80, (240, 16, 16, 3)).astype(np.uint8)
    y = np.arange(240) % 2
    for i in range(240):  # a bright bar of the class's colour at a random height
        row = rng.integers(0, 12)
        x[i, row:row + 3, 2:-2, 2 * y[i]] = 255
    run = dw.train(data=(x, y), model="airbench", width=8, epochs=4, batch_size=32, lr=0.2, baseline=False,
                   progress=False)
    assert run.cfg.data.augment == "crop+flip" and run.results["test"]["accuracy"] >= 0.9
    seen = [a["predictions"] for a in run.predict(x[:8], top_k=2)]
    mirrored = [a["predictions"] for a in run.predict(np.ascontiguousarray(x[:8, :, ::-1]), top_k=2)]
    assert [[p["class"] for p in a] for a in seen] == [[p["class"] for p in a] for a in mirrored]
    assert [p["probability"] for a in seen for p in a] == pytest.approx(
        [p["probability"] for a in mirrored for p in a], abs=1e-5)


def test_the_linear_schedule_warms_up_from_a_fifth_then_falls_straight_to_seven_percent_at_constant_momentum():
    from deepworks.training.loop import linear_warmup_and_decay, make_schedule

    total = 100
    factors = [linear_warmup_and_decay(s, total) for s in range(total + 1)]
    assert (factors[0], factors[23], factors[100]) == pytest.approx((0.2, 1.0, 0.07))
    assert all(a < b for a, b in zip(factors[:23], factors[1:24]))
    assert all(a > b for a, b in zip(factors[23:], factors[24:]))
    cfg = Config()
    cfg.train.schedule, cfg.train.optimizer, cfg.train.momentum, cfg.train.lr, cfg.train.weight_decay = (
        "linear", "nesterov", 0.85, 1.0, 0.0)
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0, momentum=0.85, nesterov=True)
    schedule = make_schedule(opt, cfg.train, per_epoch=10, epochs=10)
    rates = []
    for _ in range(50):
        rates.append(opt.param_groups[0]["lr"])
        opt.step()
        schedule.step()
    assert (rates[0], max(rates)) == pytest.approx((0.2, 1.0)) and opt.param_groups[0]["momentum"] == 0.85
