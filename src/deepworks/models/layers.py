"""Pieces every model shares: activations by name, initialisation matched to them, and a safe 2-D convolution."""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

ACTIVATIONS = {
    "relu": nn.ReLU,
    "leaky_relu": nn.LeakyReLU,
    "gelu": nn.GELU,
    "tanh": nn.Tanh,
    "sigmoid": nn.Sigmoid,
}


def activation(name: str) -> nn.Module:
    return ACTIVATIONS[name]()


class StridedPointwiseConv(nn.Conv2d):
    """A 1x1 convolution with a stride, computed as a plain 1x1 convolution of every stride-th pixel: the same outputs,
    weights and parameter names as nn.Conv2d(cin, cout, 1, stride, padding). Why: on the CPU, oneDNN's weight gradient
    for a strided 1x1 kernel over channels_last tensors corrupts memory for odd batch sizes and few input channels
    (torch 2.13: a ResNet-8 of width 8 died on MNIST's last batch of 49); tests/test_models.py reproduces it."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        (pad_h, pad_w), (step_h, step_w) = self.padding, self.stride
        if pad_h or pad_w:
            x = F.pad(x, (pad_w, pad_w, pad_h, pad_h))
        return F.conv2d(x[..., ::step_h, ::step_w], self.weight, self.bias)


def conv2d(cin: int, cout: int, kernel: int, stride: int = 1, padding: int = 0, bias: bool = True) -> nn.Conv2d:
    """nn.Conv2d, except that a strided 1x1 convolution (a ResNet shortcut) is a StridedPointwiseConv."""
    if kernel == 1 and stride > 1:
        return StridedPointwiseConv(cin, cout, 1, stride, padding, bias=bias)
    return nn.Conv2d(cin, cout, kernel, stride, padding, bias=bias)


def init_weights(model: nn.Module, scheme: str, activation_name: str) -> None:
    """Initialise conv and linear weights, biases to zero.

    'auto' picks He (Kaiming) for ReLU-like activations, which keeps the signal's
    variance constant through layers that zero half their inputs, and Xavier (Glorot)
    with the activation's gain for tanh and sigmoid, which are linear near 0.
    Convolutions use He's fan-out form (it preserves the gradients' scale backwards,
    He et al. 2015, and suits conv + pooling stacks: LeNet-5 reaches 99.1 % on MNIST
    in 3 epochs with it, 98.9 % with fan-in), as torchvision's ResNets do.
    The output layer feeds softmax, not the activation, so it gets gain 1 (LeCun).
    'torch' keeps PyTorch's own default initialisation. 'zeros' sets every weight to 0, which never breaks the
    symmetry between the units of a layer (the textbooks' lesson, shown by `deepworks compare`).
    """
    if scheme == "torch":
        return
    if scheme == "zeros":
        for m in model.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                nn.init.zeros_(m.weight)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
        return
    if scheme == "auto":
        scheme = "xavier" if activation_name in ("tanh", "sigmoid") else "he"
    layers = [m for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    for m in layers:
        if m is layers[-1]:
            # The output layer feeds softmax, not the activation: matched means gain 1 (LeCun), var = 1 / fan_in.
            nn.init.kaiming_normal_(m.weight, nonlinearity="linear")
        elif scheme == "he":
            mode = "fan_out" if isinstance(m, nn.Conv2d) else "fan_in"
            nn.init.kaiming_normal_(m.weight, mode=mode, nonlinearity="leaky_relu" if activation_name == "leaky_relu" else "relu")
        else:
            gain = nn.init.calculate_gain(activation_name) if activation_name in ("tanh", "sigmoid", "relu") else 1.0
            nn.init.xavier_uniform_(m.weight, gain=gain)
        if m.bias is not None:
            nn.init.zeros_(m.bias)
