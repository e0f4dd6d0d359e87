"""Comparing song sets: metric summaries with MGEval overlaps, and the chord-shuffle check.

The sets are the held-out real songs and the songs each model generated
(:func:`arranger.evaluation.evaluate.evaluate_songs`).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from arranger.evaluation.metrics import (
    METRICS,
    chord_tone_ratio,
    overlapping_area,
    tonal_distance,
)
from arranger.score import BEATS_PER_BAR, Chord, Score


def summarise(values: Sequence[float]) -> dict:
    """Mean, standard deviation and count of the finite values."""
    x = np.asarray(values, dtype=np.float64)
    x = x[np.isfinite(x)]
    if not len(x):
        return {"mean": None, "std": None, "n": 0}
    return {"mean": float(x.mean()), "std": float(x.std()), "n": int(len(x))}


def summarise_metrics(values: dict[str, list[dict[str, float]]]) -> dict:
    """Per metric and set: :func:`summarise`, plus each generated set's overlap with real."""
    out = {}
    for name in METRICS:
        column = {k: [row[name] for row in rows] for k, rows in values.items()}
        out[name] = {k: summarise(v) for k, v in column.items()}
        for k in column:
            if k != "real":
                out[name][k]["overlap"] = overlapping_area(column[k], column["real"])
    return out


def derangement(n: int, seed: int) -> list[int]:
    """A random permutation without fixed points (Sattolo's algorithm: one n-cycle), n >= 2."""
    if n < 2:
        raise ValueError("a derangement needs at least 2 items")
    order = list(range(n))
    rng = np.random.default_rng(seed)
    for i in range(n - 1, 0, -1):
        j = int(rng.integers(i))
        order[i], order[j] = order[j], order[i]
    return order


def with_chords(score: Score, chords: Sequence[Chord | None]) -> Score:
    """``score`` with ``chords`` instead of its own, repeated or cut to its length."""
    beats = score.bars * BEATS_PER_BAR
    reps = -(-beats // max(len(chords), 1))
    return score.copy(chords=tuple((tuple(chords) or (None,)) * reps)[:beats])


def conditioning_check(scores: Sequence[Score], seed: int) -> dict:
    """Chord-tone ratio and tonal distance with true chords vs chords of another song."""
    if len(scores) < 2:
        empty = {"true": None, "shuffled": None}
        return {"songs": len(scores), "chord_tone_ratio": empty, "tonal_distance": dict(empty)}
    order = derangement(len(scores), seed)
    shuffled = [with_chords(s, scores[j].chords) for s, j in zip(scores, order, strict=True)]
    out: dict = {"songs": len(scores)}
    for name, fn in (("chord_tone_ratio", chord_tone_ratio), ("tonal_distance", tonal_distance)):
        out[name] = {"true": summarise([fn(s) for s in scores])["mean"],
                     "shuffled": summarise([fn(s) for s in shuffled])["mean"]}
    return out
