"""Models as plain torch.nn.Modules, and one function that builds any of them from its config."""

from __future__ import annotations

from contextlib import contextmanager

import torch
import torch.nn as nn

from ..config import ModelConfig
from ..errors import ConfigError
from .airbench import AirBench
from .efficientnet import EfficientNetLite0
from .lenet import LeNet5
from .mlp import MLP
from .resnet import ResNet, ResNet18
from .smallcnn import SmallCNN
from .stack import SequenceStack, Stack
from .rnn import RECURRENT, CharRNN

IMAGE_MODELS = {"mlp": MLP, "lenet": LeNet5, "smallcnn": SmallCNN, "resnet": ResNet, "resnet18": ResNet18,
                "airbench": AirBench, "efficientnet_lite0": EfficientNetLite0, "layers": Stack}
TEXT_MODELS = tuple(RECURRENT)


def min_image_size(name: str) -> int:
    return IMAGE_MODELS[name].min_size


def build_image_classifier(cfg: ModelConfig, channels: int, image_size: int, num_classes: int,
                           mirrored: bool = False) -> nn.Module:
    """Build the classifier named in `cfg` for images of shape (channels, image_size, image_size); `mirrored`: the
    training images were flipped at random (the airbench model then also looks at each image's mirror image)."""
    common = dict(num_classes=num_classes, act=cfg.activation or "relu", init=cfg.init, dropout=cfg.dropout)
    if cfg.name == "mlp":
        return MLP(channels * image_size * image_size, depth=cfg.depth if cfg.depth is not None else 2,
                   width=cfg.width or 256, **common)
    if cfg.name == "lenet":
        return LeNet5(channels, image_size=image_size, width=cfg.width, **common)
    if cfg.name == "smallcnn":
        return SmallCNN(channels, image_size=image_size, width=cfg.width, **common)
    if cfg.name == "layers":
        return Stack(cfg.layers, channels, image_size, num_classes, init=cfg.init)
    if cfg.name == "airbench":
        return AirBench(channels, num_classes, width=cfg.width, mirror=mirrored)
    if cfg.name == "resnet18":
        return ResNet18(channels, **common)
    if cfg.name == "efficientnet_lite0":
        return EfficientNetLite0(channels, num_classes, dropout=cfg.dropout or 0.2)
    if cfg.name == "resnet":
        try:
            return ResNet(channels, depth=cfg.depth or 20, width=cfg.width or 16, **common)
        except ValueError as err:
            raise ConfigError(str(err)) from None
    raise ConfigError(f"Unknown model '{cfg.name}'. Choose one of: {', '.join(IMAGE_MODELS)}.")


def build_text_model(cfg: ModelConfig, vocab_size: int) -> nn.Module:
    """The character-level RNN / LSTM / GRU named in `cfg`, or a design of cards, over `vocab_size` characters."""
    if cfg.name == "layers":
        return SequenceStack(cfg.layers, vocab_size, init=cfg.init)
    act = cfg.activation or "tanh"
    if cfg.name not in TEXT_MODELS:
        raise ConfigError(f"Unknown text model '{cfg.name}'. Choose one of: {', '.join(TEXT_MODELS)}.")
    if act not in ("tanh", "relu") or (act == "relu" and cfg.name != "rnn"):
        raise ConfigError(f"--activation {act} does not apply to --model {cfg.name}: LSTM and GRU gates have fixed "
                          f"activations, and the plain rnn takes tanh or relu.")
    hidden, layers = cfg.width or 256, cfg.depth if cfg.depth is not None else 2
    if layers < 1:
        raise ConfigError(f"--depth must be at least 1 for --model {cfg.name} (it counts stacked recurrent layers).")
    try:
        return CharRNN(vocab_size, cfg.name, cfg.embed_size or (hidden if cfg.tie_weights else 64), hidden,
                       layers=layers, dropout=cfg.dropout,
                       tie_weights=cfg.tie_weights, act=act, init=cfg.init)
    except ValueError as err:
        raise ConfigError(str(err)) from None


def prefer_channels_last(model: nn.Module) -> nn.Module:
    """Store conv weights as NHWC: oneDNN on the CPU (about 1.4x on LeNet-5 and ResNet here) and cuDNN with
    mixed precision run convolutions faster that way. Saved weights are made contiguous, so files don't change."""
    if any(isinstance(m, nn.Conv2d) for m in model.modules()):
        model.to(memory_format=torch.channels_last)
    return model


def head_name(model: nn.Module) -> str:
    """The prefix of the model's last linear layer ('_fc.', 'head.3.'): its head, new for a run's own classes."""
    last = [name for name, m in model.named_modules() if isinstance(m, nn.Linear)]
    return f"{last[-1]}." if last else "\0"


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def norms_in_eval(module: nn.Module) -> None:
    """Every batch norm in `module` to eval mode: its running statistics kept (a few hundred images in small batches
    estimate them worse than its pretraining did), its scale and shift still learning."""
    for m in module.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.eval()


@contextmanager
def evaluating(model: nn.Module):
    """Eval mode (dropout off, batch norm on its running statistics) for the block, then the mode it had."""
    was_training = model.training
    model.eval()
    try:
        yield model
    finally:
        model.train(was_training)
