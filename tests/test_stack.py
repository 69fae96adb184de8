"""--model layers: a model designed as a stack of layer cards, its shapes and parameters, the YAML round trip, and
the messages for a design that does not fit."""

from __future__ import annotations

import pytest
import torch
import yaml

import deepworks as dw
from deepworks.config import Config
from deepworks.errors import ConfigError
from deepworks.models import build_image_classifier, count_parameters
from deepworks.models.stack import Stack, normalise, plan

LENET = [{"type": "conv", "channels": 6, "kernel": 5, "padding": 2}, {"type": "activation"}, {"type": "pool"},
         {"type": "conv", "channels": 16, "kernel": 5}, {"type": "activation"}, {"type": "pool"},
         {"type": "dense", "units": 120}, {"type": "activation"}, {"type": "dense", "units": 84},
         {"type": "activation"}]
RESIDUAL = [{"type": "conv", "channels": 8, "kernel": 3, "padding": 1}, {"type": "batchnorm"},
            {"type": "residual", "layers": [{"type": "conv", "channels": 8, "kernel": 3, "padding": 1},
                                            {"type": "activation", "function": "gelu"}]},
            {"type": "residual", "layers": [{"type": "conv", "channels": 16, "kernel": 3, "stride": 2, "padding": 1},
                                            {"type": "batchnorm"}]},
            {"type": "pool", "kind": "avg"}, {"type": "dropout", "rate": 0.2}, {"type": "flatten"},
            {"type": "dense", "units": 32}]


def test_lenet_built_from_cards_has_lenet_5s_61706_parameters_and_each_cards_shape():
    spec = normalise(LENET)
    rows = plan(spec, (1, 28, 28), 10)
    assert [r["output"] for r in rows] == [[6, 28, 28], [6, 28, 28], [6, 14, 14], [16, 10, 10], [16, 10, 10],
                                           [16, 5, 5], [120], [120], [84], [84], [10]]
    assert sum(r["parameters"] for r in rows) == 61_706
    net = Stack(spec, 1, 28, 10)
    lenet = build_image_classifier(Config().model.__class__(name="lenet"), 1, 28, 10)
    assert count_parameters(net) == count_parameters(lenet) == 61_706  # as `deepworks train` counts LeNet-5
    assert net(torch.zeros(2, 1, 28, 28)).shape == (2, 10)


@pytest.mark.parametrize("spec,shape", [(LENET, (3, 32, 32)), (RESIDUAL, (3, 16, 16)), (RESIDUAL, (1, 9, 9))])
def test_the_plan_counts_exactly_the_parameters_and_shapes_the_network_has(spec, shape):
    spec = normalise(spec)
    rows = plan(spec, shape, 5)
    net = Stack(spec, shape[0], shape[1], 5)
    assert sum(r["parameters"] for r in rows) == count_parameters(net)
    out = net.cards(torch.zeros(1, *shape))
    assert list(out.shape[1:]) == rows[-2]["output"]


def test_a_design_saved_edited_and_loaded_again_builds_the_same_model_byte_for_byte(tmp_path):
    saved = normalise(RESIDUAL)
    (tmp_path / "design.yaml").write_text(yaml.safe_dump(saved, sort_keys=False))
    again = normalise(yaml.safe_load((tmp_path / "design.yaml").read_text()))
    assert again == saved and yaml.safe_dump(again, sort_keys=False) == yaml.safe_dump(saved, sort_keys=False)
    states = []
    for spec in (saved, again):
        torch.manual_seed(0)
        states.append(Stack(spec, 3, 16, 4).state_dict())
    assert states[0].keys() == states[1].keys() and all(torch.equal(states[0][k], states[1][k]) for k in states[0])


def test_a_designed_model_trains_from_the_cli_and_its_config_reloads_to_the_same_cards(tmp_path, capsys):
    from deepworks.cli import main

    (tmp_path / "lenet.yaml").write_text(yaml.safe_dump(LENET))
    code = main(["train", "--model", "layers", "--layers", str(tmp_path / "lenet.yaml"), "--image-size", "28",
                 "--epochs", "3", "--runs-dir", str(tmp_path / "runs"), "--quiet"])
    assert code == 0
    out = capsys.readouterr().out
    accuracy = float(out.split("test      accuracy ")[1].split()[0])
    assert accuracy > 0.9  # the digits, as LeNet-5 learns them
    run = next((tmp_path / "runs").iterdir())
    cfg = Config.load(run / "config.yaml").check()
    assert cfg.model.layers == normalise(LENET)
    assert dw.load(run).results["parameters"] == 61_706


@pytest.mark.parametrize("spec,message", [
    ([], "model.layers must be a list of layer cards"),
    ([{"type": "convolution"}], "card 1: unknown type 'convolution'. Did you mean 'conv'?"),
    ([{"type": ["conv"]}], "card 1: unknown type ['conv']."),
    ([{"type": "residual", "layers": [{"type": "dense", "unit": 3}]}],
     "card 1 (residual), card 1 (dense): unknown setting 'unit'. Did you mean 'units'?"),
    ([{"type": "conv", "chanels": 4}], "card 1 (conv): unknown setting 'chanels'. Did you mean 'channels'?"),
    ([{"type": "conv", "channels": -4}], "card 1 (conv): channels must be a whole number from 1"),
    ([{"type": "dropout", "rate": 1.5}], "card 1 (dropout): rate must be a number from 0 to below 1. Received: 1.5"),
    ([{"type": "activation", "function": "swish"}], "function must be one of relu"),
])
def test_a_card_that_is_not_right_is_named_with_the_fix(spec, message):
    with pytest.raises(ConfigError) as err:
        normalise(spec)
    assert message in str(err.value)


@pytest.mark.parametrize("spec,message", [
    ([{"type": "pool", "size": 4}, {"type": "conv", "kernel": 5}],
     "Card 2 (conv): a 5x5 kernel does not fit the 2x2 it receives. Use a kernel of at most 2, padding 2 or more"),
    ([{"type": "dense", "units": 10}, {"type": "conv"}],
     "Card 2 (conv) needs images (channels x height x width), but it receives 10 values in a row"),
    ([{"type": "residual", "layers": [{"type": "dense", "units": 10}]}],
     "Card 1 (residual): its cards turn 1x8x8 into 10, which cannot be added back to its input"),
    ([{"type": "pool", "size": 16}], "Card 1 (pool): pooling 16x16 does not fit the 8x8 it receives"),
])
def test_a_design_that_does_not_fit_its_images_says_which_card_and_what_to_change(spec, message):
    with pytest.raises(ConfigError) as err:
        plan(normalise(spec), (1, 8, 8), 3)
    assert message in str(err.value)


def test_model_layers_and_the_model_name_must_agree():
    with pytest.raises(ConfigError, match="--model layers needs its cards: model.layers"):
        dw.train(data="digits", model="layers", progress=False)
    with pytest.raises(ConfigError, match="model.layers describes a designed model, but --model is lenet"):
        dw.train(data="digits", model="lenet", layers=LENET, progress=False)
