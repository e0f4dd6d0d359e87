"""Condition values a model never saw in training read the mean of those it saw.

An embedding row that no training step used keeps its random initialisation, and a model fed
that value at generation hears noise: e.g. a drum style of "" (unknown) when every training song
had a style. Setting such rows to the frequency-weighted mean of the seen rows makes the unseen
value mean "any of the seen ones, as often as they came": for a style, the model's average feel.
"""

from __future__ import annotations

import torch
from torch import nn


def fill_unseen_conditions(embeds: nn.ModuleList, cond: torch.Tensor, real: torch.Tensor
                           ) -> dict[int, list[int]]:
    """Set every never-seen row of each condition embedding to the seen rows' weighted mean.

    ``cond`` long [N, T, C]: the training windows' conditions; ``real`` bool [N, T]: the steps
    that are not padding. Returns, per condition index, the rows that were filled.
    """
    filled = {}
    for i, emb in enumerate(embeds):
        counts = torch.bincount(cond[..., i][real].flatten(), minlength=emb.num_embeddings)
        seen = counts > 0
        if seen.all() or not seen.any():
            continue
        weights = counts[seen].to(emb.weight.dtype)
        mean = (weights[:, None] * emb.weight.data[seen]).sum(0) / weights.sum()
        emb.weight.data[~seen] = mean
        filled[i] = torch.nonzero(~seen).flatten().tolist()
    return filled
