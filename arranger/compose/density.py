"""Density: how busy a layer plays, steered by a logit bias the model still samples through.

A preset's ``[layers.<layer>] density`` (0..1) leans each step's distribution: the melody's
note-on tokens against rest and hold, the drums' hit tokens against silence, the chords' change
against keeping the chord of the beat before. The bias is ``GAIN[layer] * log(d / (1 - d))``
nats, so 0.5 is the model as it learnt (no bias, the same songs as without a density) and the
scale is symmetric in log-odds. Which note, which drums and which chord are still the model's.
The gains are calibrated by ``tests/test_density.py`` (the sweep 0.2 -> 0.9 must give at least
2x the melody notes and 1.5x the drum hits per bar).
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np

NEUTRAL = 0.5  # the density at which a layer plays as the model learnt
GAIN = {"melody": 0.55, "drums": 1.2, "chords": 0.6}  # nats of bias per unit of log-odds
_EDGE = 0.02  # densities 0 and 1 lean as far as this from them: a finite bias


def bias_nats(density: Mapping[str, float], layer: str) -> float:
    """The bias (nats) a layer's tokens that add material get at its density; 0 when unset,
    neutral, or for a layer density does not steer."""
    d = density.get(layer)
    if d is None or d == NEUTRAL or layer not in GAIN:
        return 0.0
    d = min(max(float(d), _EDGE), 1.0 - _EDGE)
    return GAIN[layer] * math.log(d / (1.0 - d))


def lean(logits: np.ndarray, busy: np.ndarray, nats: float) -> np.ndarray:
    """``logits`` [B, V] with ``nats`` added to the tokens of bool mask ``busy`` [V] (a note-on,
    a hit). Returns ``logits`` itself when ``nats`` is 0, else a new array."""
    if not nats:
        return logits
    return logits + np.where(busy, np.float32(nats), np.float32(0.0))[None, :]


def lean_off(logits: np.ndarray, tokens: np.ndarray, nats: float) -> np.ndarray:
    """``logits`` [B, V] with ``nats`` taken off each row's token of ``tokens`` [B] (the chord
    already sounding): more changes as ``nats`` rises."""
    if not nats:
        return logits
    logits = logits.copy()
    logits[np.arange(len(tokens)), tokens] -= np.float32(nats)
    return logits
