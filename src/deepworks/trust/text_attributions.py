"""Which words made a text classifier say what it said: Integrated Gradients (Sundararajan et al. 2017, through
Captum) on the model's token embedding, for the class it chose.

The baseline keeps the text's length and padding and makes every real token the unknown id: padding then neither
moves nor gets a share, and the shares add up to the change in the class's score from "a text of unknown words" to
this text (the completeness the method promises). Each share is per id: a piece of a word, a word, or a word pair
for fastText's n-grams, which the tokens list names in the same order.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from ..data.subwords import UNK

STEPS = 32  # points on the path from the baseline to the text: the shares add up to within a few percent at 32


def token_attributions(model: nn.Module, ids: torch.Tensor, targets: torch.Tensor, steps: int = STEPS,
                       unknown: int = UNK) -> torch.Tensor:
    """(N, L) shares of each id in the logit of `targets` (N,), 0 at padding; `model` maps ids (N, L) to logits and
    keeps its token embedding in `model.embedding`; `unknown` is the encoder's unknown id (TextEncoder.unk_id)."""
    from captum.attr import LayerIntegratedGradients

    real = ids != 0
    baseline = torch.where(real, torch.full_like(ids, unknown), ids)
    explainer = LayerIntegratedGradients(model, model.embedding)
    with torch.enable_grad():
        shares = explainer.attribute(ids, baselines=baseline, target=targets, n_steps=steps,
                                     internal_batch_size=max(1, 4096 // max(1, ids.shape[1])))
    return (shares.sum(-1) * real).detach()
