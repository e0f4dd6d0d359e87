"""Turn corpus songs into training windows for one layer model.

Each layer trains on every song that holds it; conditions come from the same ``conditions``
functions the coordinator uses, with layers the song lacks marked unknown.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from arranger.score import Score
from tracks.common import BOS
from tracks.layers import layer_spec

IGNORE = -100  # target value of padding, skipped by the loss


@dataclass
class Windows:
    """Fixed-length training windows. prev/target long [N, T], cond long [N, T, C],
    multi float [N, T, M] (M may be 0)."""

    prev: torch.Tensor
    cond: torch.Tensor
    multi: torch.Tensor
    target: torch.Tensor

    def __len__(self) -> int:
        return self.prev.shape[0]

    @property
    def tokens(self) -> int:
        return int((self.target != IGNORE).sum())

    def batch(self, idx: torch.Tensor, device: torch.device) -> tuple[torch.Tensor, ...]:
        return tuple(t[idx].to(device, non_blocking=True)
                     for t in (self.prev, self.cond, self.multi, self.target))


def song_sequence(layer: str, score: Score, layers: frozenset[str], codec: Any = None):
    """(tokens [T], cond [T, C], multi [T, M] or None) of one song for ``layer``; ``codec``:
    the layer's learnt vocabulary (``LayerSpec.codec``), if it has one."""
    return layer_spec(layer).sequence(score, frozenset(layers), codec)


def make_windows(sequences: Sequence[tuple], length: int, multi_width: int) -> Windows:
    """Cut each song into consecutive windows of ``length`` (the last one padded)."""
    chunks = []
    for tokens, cond, multi in sequences:
        prev = np.concatenate([[BOS], tokens[:-1]])
        m = multi if multi is not None else np.zeros((len(tokens), multi_width), np.float32)
        for start in range(0, len(tokens), length):
            chunks.append(_pad(prev[start:start + length], cond[start:start + length],
                               m[start:start + length], tokens[start:start + length], length))
    if not chunks:
        raise ValueError("no training windows: the corpus holds no song with this layer")
    prev, cond, multi, target = (np.stack(x) for x in zip(*chunks, strict=True))
    return Windows(torch.from_numpy(prev), torch.from_numpy(cond),
                   torch.from_numpy(multi.astype(np.float32)), torch.from_numpy(target))


def _pad(prev, cond, multi, target, length):
    n = len(prev)
    if n == length:
        return prev, cond, multi, target
    pad = length - n
    return (np.pad(prev, (0, pad)), np.pad(cond, ((0, pad), (0, 0))),
            np.pad(multi, ((0, pad), (0, 0))), np.pad(target, (0, pad), constant_values=IGNORE))


def is_validation(source: str, fraction: float) -> bool:
    """Stable song-level split: the same song always lands on the same side.

    Keyed on the last three parts of the path, so that ``../shared/corpus/x`` and
    ``/work/shared/corpus/x`` split alike (training and evaluation must agree).
    """
    key = "/".join(source.replace("\\", "/").rstrip("/").split("/")[-3:])
    return (zlib.crc32(key.encode()) % 10_000) < fraction * 10_000


def unigram_bits(train_targets: torch.Tensor, val_targets: torch.Tensor, vocab: int) -> float:
    """Bits/step on validation of an add-one-smoothed unigram model of the training targets."""
    t = train_targets[train_targets != IGNORE]
    v = val_targets[val_targets != IGNORE]
    counts = torch.bincount(t, minlength=vocab).double() + 1.0
    logp = torch.log2(counts / counts.sum())
    return float(-logp[v].mean()) if len(v) else float("nan")
