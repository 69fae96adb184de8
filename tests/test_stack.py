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


TEXT_DESIGN = [{"type": "embedding", "size": 16}, {"type": "recurrent", "kind": "lstm", "units": 64},
               {"type": "dropout", "rate": 0.1}, {"type": "recurrent", "kind": "gru", "units": 32},
               {"type": "dense", "units": 32}, {"type": "activation"}]


def test_a_text_design_plans_exactly_the_parameters_its_network_has_and_carries_one_state_per_recurrent_card():
    from deepworks.models.stack import TOKENS, SequenceStack

    rows = plan(normalise(TEXT_DESIGN), TOKENS, 29)
    model = SequenceStack(TEXT_DESIGN, 29)
    assert sum(r["parameters"] for r in rows) == count_parameters(model) == 32_877
    assert [r["output"] for r in rows][:2] == [["T", 16], ["T", 64]] and rows[-1]["output"] == ["T", 29]
    x = torch.randint(0, 29, (3, 10))
    logits, state = model.eval()(x)
    assert logits.shape == (3, 10, 29) and [s.shape for s in state] == [(1, 3, 64)] * 2 + [(1, 3, 32)]  # h, c; h
    whole, _ = model(torch.cat([x, x], 1))
    second, _ = model(x, state)  # the state carried: the second half, fed after the first, as in one sequence
    assert torch.allclose(second, whole[:, 10:], atol=1e-5)
    step, _ = model.step(x[:, 0])
    assert torch.allclose(step, logits[:, 0], atol=1e-6)


@pytest.mark.parametrize("spec,message", [
    ([{"type": "recurrent"}], "Card 1 (recurrent) receives characters: put an embedding card before it."),
    ([{"type": "embedding"}, {"type": "conv"}], "Card 2 (conv) works on images. A text model takes embedding, "
                                                 "recurrent, dense, activation, dropout cards."),
    ([{"type": "embedding"}, {"type": "embedding"}], "an embedding turns characters into vectors, so it comes first"),
    ([{"type": "dropout"}], "Card 1 (dropout) receives characters: put an embedding card before it."),
])
def test_a_text_design_that_does_not_fit_says_what_to_change(spec, message):
    from deepworks.models.stack import TOKENS

    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        plan(normalise(spec), TOKENS, 20)


def test_text_cards_in_an_image_design_and_a_wrong_recurrent_kind_are_refused():
    with pytest.raises(ConfigError, match=r"Card 1 \(recurrent\) works on text"):
        plan(normalise([{"type": "recurrent"}]), (1, 8, 8), 10)
    with pytest.raises(ConfigError, match="kind must be lstm or gru or rnn. Received: 'transformer'"):
        normalise([{"type": "recurrent", "kind": "transformer"}])


def test_a_designed_text_model_learns_generates_resumes_and_says_it_does_not_export_yet(tmp_path):
    from deepworks.errors import DeepworksError
    from deepworks.exporting.exporter import export_run
    from deepworks.training.loop import Interrupted

    text = tmp_path / "fox.txt"
    text.write_text("the quick brown fox jumps over the lazy dog.\n" * 60)
    settings = dict(task="text", data=str(text), model="layers", layers=TEXT_DESIGN, seq_len=32, batch_size=8,
                    lr=0.02, epochs=3, runs_dir=str(tmp_path / "runs"), progress=False)
    trained = dw.train(name="whole", **settings)
    assert trained.results["test"]["bpc"] < 2.5  # from log2(29) = 4.9 bits a character for a uniform guess
    assert dw.generate(trained.run.path, prime="the ", length=40).startswith("the ")

    class StopAfterOneEpoch:
        def on_epoch_end(self, trainer, record):
            if record["epoch"] == 1:
                trainer.interrupted = True

    with pytest.raises(Interrupted):
        dw.train(name="cut", callbacks=[StopAfterOneEpoch()], **settings)
    resumed = dw.train(resume=tmp_path / "runs" / "cut", progress=False)
    for (name, a), b in zip(trained.model.state_dict().items(), resumed.model.state_dict().values()):
        assert torch.equal(a, b), name  # the carried state went through the checkpoint too
    with pytest.raises(DeepworksError, match="is not exported yet"):
        export_run(trained.run.path, "onnx")
