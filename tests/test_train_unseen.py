"""A condition value no training step used reads the seen values' frequency-weighted mean."""

import torch
from torch import nn

from arranger.training.unseen import fill_unseen_conditions


def test_unseen_rows_read_the_weighted_mean_of_the_seen_ones():
    torch.manual_seed(0)
    embeds = nn.ModuleList([nn.Embedding(4, 3), nn.Embedding(2, 3)])
    before = [e.weight.detach().clone() for e in embeds]
    cond = torch.tensor([[[1, 0], [1, 1], [1, 0], [2, 1], [3, 1]]])  # [N=1, T=5, C=2]
    real = torch.tensor([[True, True, True, True, False]])  # the last step is padding
    filled = fill_unseen_conditions(embeds, cond, real)
    assert filled == {0: [0, 3]}  # value 3 came only on padding; condition 1 saw both values
    w = before[0]
    mean = (3 * w[1] + w[2]) / 4
    for row in (0, 3):
        torch.testing.assert_close(embeds[0].weight[row], mean)
    torch.testing.assert_close(embeds[0].weight[1:3], w[1:3])  # seen rows untouched
    torch.testing.assert_close(embeds[1].weight, before[1])
