"""What the tasks that put new layers on EfficientNet-Lite0's ImageNet features share (detection's CenterNet neck and
heads, segmentation's FPN decoder): with --pretrained, the weights' own normalisation and their record in the run,
the backbone loaded by name, and the backbone learning at --body-lr times --lr; and the normalised, channels-last
input both feed their network. A recipe mixes `Lite0Backbone` in before `Task`; its network names the pretrained
part `backbone`."""

from __future__ import annotations

import warnings

import torch
import torch.nn as nn


class Lite0Backbone:
    note_class: type = UserWarning  # the warning a run's notes are said with (DetectNote, SegmentNote)
    backbone_word = "backbone"      # how the pretrained part is named to the user
    new_parts = "the new layers"    # what start_from says starts new

    def normalisation(self, from_data) -> tuple[list[float], list[float]]:
        """The pretrained weights' mean and std with --pretrained, else `from_data()`."""
        if self.cfg.model.pretrained:
            from ..models.pretrained import weights_for

            w = weights_for("efficientnet_lite0")
            return list(w.mean), list(w.std)
        return from_data()

    def pretrained_meta(self) -> dict:
        if not self.cfg.model.pretrained:
            return {}
        from ..models.pretrained import describe

        return {"pretrained": describe("efficientnet_lite0")}

    def start_from(self, model: nn.Module) -> None:
        if self.cfg.model.pretrained:
            from ..models.pretrained import load_init_from, weights_file

            found = load_init_from(model.backbone, weights_file("efficientnet_lite0"), allow_partial=True)
            warnings.warn(f"Started from the pretrained EfficientNet-Lite0: {found['loaded']} of the "
                          f"{self.backbone_word}'s {found['of']} tensors loaded; {self.new_parts} are new.",
                          self.note_class, stacklevel=2)

    def optimizers(self, model: nn.Module) -> list:
        """With --pretrained (or --init-from), the backbone learns at --body-lr times --lr: the ImageNet features
        move less than the new layers on them."""
        from ..training.loop import make_optimizer

        t, m = self.cfg.train, self.cfg.model
        if not (m.pretrained or m.init_from) or m.body_lr == 1 or not hasattr(model, "backbone"):
            return [make_optimizer(model.parameters(), t)]
        body = list(model.backbone.parameters())
        ids = {id(p) for p in body}
        rest = [p for p in model.parameters() if id(p) not in ids]
        return [make_optimizer([{"params": body, "lr": t.lr * m.body_lr}, {"params": rest, "lr": t.lr}], t)]

    def to_input(self, x: torch.Tensor) -> torch.Tensor:
        """uint8-valued pixels (N, 3, H, W) -> normalised by the run's mean and std, channels-last."""
        m = self.meta
        mean = torch.tensor(m["mean"], device=x.device).view(1, -1, 1, 1) * 255
        std = torch.tensor(m["std"], device=x.device).view(1, -1, 1, 1) * 255
        return ((x.float() - mean) / std).contiguous(memory_format=torch.channels_last)
