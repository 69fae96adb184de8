"""dlib's face recognition network (Davis King, 2017; in the public domain / CC0): a ResNet of 29 convolutions that
maps a 150 x 150 face chip to 128 numbers in which one person's faces lie close, trained on about 3 million faces of
7,485 people (99.38 % on LFW, as its author reports). It is defined here with torch; its weights come in dlib's own
serialisation (dlib_face_recognition_resnet_model_v1.dat, inside the face_recognition_models package on PyPI), which
`read_dlib_weights` reads: strings and integers in dlib's variable-length encoding, tensors as little-endian float32.
Reading it runs nothing; dlib itself cannot be installed here (it has no wheel and builds from source).

The network, as dlib's dnn_face_recognition_ex.cpp declares it: a 7 x 7 convolution (stride 2), a 3 x 3 max pool,
then residual blocks of two 3 x 3 convolutions (3 of 32 channels, 4 of 64, 3 of 128, 4 of 256; the first block of each
width after the first halves the size, its shortcut an average pool), the mean over the picture, and a linear map to
128 numbers. dlib's batch norms were folded into a scale and a shift per channel ('affine'). Where a block's two paths
differ in size (an odd side halved), dlib adds them with the smaller padded with zeros at its end; so does this one.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

SIDE = 150                                 # the face chip's side
PADDING = 0.25                             # dlib's chip: the mean face plus this share of its size on each side
MEAN = (122.782, 117.001, 104.298)         # pixels are (p - MEAN) / 256, per channel, as dlib's input layer does
SCALE = 256.0
# where MTCNN's five landmarks fall on dlib's chip: dlib's mean face (get_face_chip_details, points 17 to 67, in 0..1)
# gives the eyes' centres (the mean of each eye's six points), the tip of the nose and the mouth's corners
MEAN_FACE = ((0.225492, 0.215990), (0.754761, 0.215990), (0.490127, 0.515625), (0.254149, 0.780233),
             (0.726104, 0.780233))
CHIP = tuple(((PADDING + x) / (1 + 2 * PADDING) * SIDE, (PADDING + y) / (1 + 2 * PADDING) * SIDE) for x, y in MEAN_FACE)
BLOCKS = ((32, 32, False),) * 3 + ((32, 64, True),) + ((64, 64, False),) * 3 + ((64, 128, True),) + \
    ((128, 128, False),) * 2 + ((128, 256, True),) + ((256, 256, False),) * 2 + ((256, 256, True),)


class Affine(nn.Module):
    """A scale and a shift per channel: a batch norm with its statistics folded in."""

    def __init__(self, channels: int):
        super().__init__()
        self.scale = nn.Parameter(torch.ones(channels))
        self.shift = nn.Parameter(torch.zeros(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.scale.view(1, -1, 1, 1) + self.shift.view(1, -1, 1, 1)


def padded_sum(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """a + b, the smaller padded with zeros at the end of each dimension (dlib's add_prev)."""
    c, h, w = (max(x, y) for x, y in zip(a.shape[1:], b.shape[1:]))

    def grown(t):
        return F.pad(t, (0, w - t.shape[3], 0, h - t.shape[2], 0, c - t.shape[1]))

    return grown(a) + grown(b)


class Block(nn.Module):
    def __init__(self, cin: int, cout: int, down: bool):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, 2 if down else 1, 0 if down else 1)
        self.affine1 = Affine(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1)
        self.affine2 = Affine(cout)
        self.down = down

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.affine2(self.conv2(F.relu(self.affine1(self.conv1(x)))))
        return F.relu(padded_sum(y, F.avg_pool2d(x, 2, 2) if self.down else x))


class DlibResNet(nn.Module):
    """Scaled pixels (N, 3, 150, 150) -> the 256 channels the last block makes (N, 256, 4, 4); the mean over them
    and a linear map make the embedding (the face recogniser's projection)."""

    channels = 256

    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(3, 32, 7, 2, 0)
        self.stem_affine = Affine(32)
        self.blocks = nn.Sequential(*(Block(cin, cout, down) for cin, cout, down in BLOCKS))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.max_pool2d(F.relu(self.stem_affine(self.stem(x))), 3, 2)
        return self.blocks(x)


class DlibReader:
    """dlib's serialisation, read forwards: integers as a byte of length (and sign) then little-endian bytes, strings
    as an integer length then bytes, floats as a mantissa and a power of two, tensors as a version, four sizes and
    little-endian float32."""

    def __init__(self, data: bytes, pos: int = 0):
        self.data, self.pos = data, pos

    def integer(self) -> int:
        head = self.data[self.pos]
        n = head & 0x0F
        if n > 8 or self.pos + 1 + n > len(self.data):
            raise ValueError(f"not a dlib integer at byte {self.pos}")
        value = int.from_bytes(self.data[self.pos + 1:self.pos + 1 + n], "little")
        self.pos += 1 + n
        return -value if head & 0x80 else value

    def string(self) -> str:
        n = self.integer()
        text = self.data[self.pos:self.pos + n].decode("ascii")
        self.pos += n
        return text

    def tensor(self, most: int = 10_000_000) -> np.ndarray:
        if self.integer() != 2:
            raise ValueError(f"not a dlib tensor at byte {self.pos}")
        shape = [self.integer() for _ in range(4)]
        n = int(np.prod(shape))
        if not 0 <= n <= most or self.pos + 4 * n > len(self.data):
            raise ValueError(f"a dlib tensor of {shape} at byte {self.pos} does not fit the file")
        values = np.frombuffer(self.data, "<f4", n, self.pos).copy()
        self.pos += 4 * n
        return values

    def alias(self) -> tuple:
        if self.integer() != 1:
            raise ValueError(f"not a dlib tensor view at byte {self.pos}")
        return tuple(self.integer() for _ in range(4))


LAYER_TAGS = (b"con_4", b"affine_", b"fc_2")  # the layers with weights, as this file's dlib version names them


def read_dlib_weights(data: bytes) -> dict[str, torch.Tensor]:
    """The .dat file's convolutions, affines and final linear map, in the order dlib wrote them (from the input
    up), as DlibResNet's state dict plus 'project.weight' (128, 256). ValueError when the file is not that network."""
    found = []
    for tag in LAYER_TAGS:
        start = 0
        marker = bytes([1, len(tag)]) + tag
        while (start := data.find(marker, start)) >= 0:
            found.append((start, tag))
            start += 1
    found.sort()
    convs = [n for n, m in DlibResNet().named_modules() if isinstance(m, nn.Conv2d)]
    affines = [n for n, m in DlibResNet().named_modules() if isinstance(m, Affine)]
    state, kinds = {}, [tag for _, tag in found]
    if kinds.count(b"con_4") != len(convs) or kinds.count(b"affine_") != len(affines) or kinds.count(b"fc_2") != 1:
        raise ValueError(f"expected {len(convs)} convolutions, {len(affines)} affines and one linear map")
    for start, tag in found:
        reader = DlibReader(data, start)
        reader.string()
        if tag == b"con_4":
            params = reader.tensor()
            [reader.integer() for _ in range(7)]  # filters, rows, columns, strides and paddings: the network's own
            filters, biases = reader.alias(), reader.alias()
            name, size = convs.pop(0), int(np.prod(filters))
            state[f"{name}.weight"] = torch.from_numpy(params[:size].reshape(filters))
            state[f"{name}.bias"] = torch.from_numpy(params[size:size + int(np.prod(biases))])
        elif tag == b"affine_":
            params = reader.tensor()
            half = len(params) // 2
            name = affines.pop(0)
            state[f"{name}.scale"], state[f"{name}.shift"] = (torch.from_numpy(p) for p in (params[:half],
                                                                                            params[half:]))
        else:
            outputs, inputs = reader.integer(), reader.integer()
            params = reader.tensor()
            state["project.weight"] = torch.from_numpy(params[:outputs * inputs].reshape(inputs, outputs).T.copy())
    return state


def convert(dat: Path, out: Path) -> None:
    """dlib's .dat file -> a safetensors file of the same weights (written atomically)."""
    import os

    from safetensors.torch import save_file

    state = read_dlib_weights(dat.read_bytes())
    part = out.with_suffix(".part")
    save_file({k: v.contiguous() for k, v in state.items()}, str(part))
    os.replace(part, out)


def describe() -> dict:
    """What a run's model.json records about dlib's weights (the report's 'Starting weights')."""
    from .face_weights import DLIB_FILE, DLIB_PACKAGE

    return {"model": "dlib_resnet", "package": DLIB_PACKAGE, "file": DLIB_FILE[0], "sha256": DLIB_FILE[1],
            "licence": "public domain / CC0 1.0 (Davis King, dlib-models)",
            "trained_on": "about 3 million faces of 7,485 people (FaceScrub, VGG Face and others)"}
