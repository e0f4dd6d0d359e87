"""Per-bar drum statistics of a score, the same for generated songs and corpus performances.

Every figure is computed on the score's 16th grid, bar by bar, so a generated song and a
Groove MIDI performance (read onto the same grid) are measured alike.

Definitions (steps counted from 0 within a 4/4 bar of 16 steps)
---------------------------------------------------------------
backbeat bar : a snare hit on beat 2 (step 4) and on beat 4 (step 12).
kick-on-1 bar : a kick hit on beat 1 (step 0).
groove bar : a backbeat bar with a kick on 1 and 1..8 snare hits in the bar.
time-keeping bar : at least 4 hits of a time-keeping cymbal (closed hat, open hat or ride).
hits per bar : per drum class, hits (steps holding that class) per bar.
velocity : per drum class, mean MIDI velocity written for its hits
    (:meth:`arranger.score.Score.hit_velocities`: the hit's own velocity, else its step
    level's :data:`arranger.score.DRUM_VELOCITIES`).
backbeat snare velocity : mean velocity of the snare hits on beats 2 and 4; ghost snare
    velocity : of the snare hits at the ghost level (off the backbeat).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from arranger.score import BEATS_PER_BAR, DRUM_CLASSES, STEPS_PER_BAR, Score, hit_matrix

KICK, SNARE = DRUM_CLASSES.index("kick"), DRUM_CLASSES.index("snare")
TIME_KEEPERS = tuple(DRUM_CLASSES.index(c) for c in ("closed_hat", "open_hat", "ride"))
BACKBEAT_STEPS = (1 * STEPS_PER_BAR // BEATS_PER_BAR, 3 * STEPS_PER_BAR // BEATS_PER_BAR)
SNARES_PER_BAR = (1, 8)  # a groove bar's snare count, inclusive; a roll on every 16th is no groove
MIN_TIME_HITS = 4  # cymbal hits a bar needs to keep time (quarter notes at least)


def bar_hits(drums: np.ndarray) -> np.ndarray:
    """Hits as a bool array [bars, 16, classes] from drum masks [steps] (steps = bars * 16)."""
    return hit_matrix(np.asarray(drums).reshape(-1, STEPS_PER_BAR))


def backbeat_bars(hits: np.ndarray) -> np.ndarray:
    """Bool [bars]: a snare on beats 2 and 4. ``hits`` as from :func:`bar_hits`."""
    return hits[:, list(BACKBEAT_STEPS), SNARE].all(axis=1)


def kick_on_one_bars(hits: np.ndarray) -> np.ndarray:
    """Bool [bars]: a kick on beat 1."""
    return hits[:, 0, KICK]


def backbeat_kick_bars(hits: np.ndarray) -> np.ndarray:
    """Bool [bars]: a backbeat bar with a kick on 1."""
    return backbeat_bars(hits) & kick_on_one_bars(hits)


def groove_bars(hits: np.ndarray) -> np.ndarray:
    """Bool [bars]: backbeat, kick on 1 and 1..8 snares (see the module docstring)."""
    snares = hits[:, :, SNARE].sum(axis=1)
    low, high = SNARES_PER_BAR
    return backbeat_kick_bars(hits) & (snares >= low) & (snares <= high)


def time_keeping_bars(hits: np.ndarray) -> np.ndarray:
    """Bool [bars]: at least :data:`MIN_TIME_HITS` steps with a hat or ride hit."""
    return hits[:, :, list(TIME_KEEPERS)].any(axis=2).sum(axis=1) >= MIN_TIME_HITS


def drum_stats(scores: Sequence[Score]) -> dict:
    """Bar-weighted drum statistics pooled over ``scores`` (see the module docstring).

    Returns
    -------
    dict, JSON-ready: ``songs``, ``bars``; shares of bars ``backbeat``, ``kick_on_1``,
    ``groove``, ``time_keeping``, ``empty``; ``hits_per_bar`` and ``velocity`` per class name
    (velocity None for a class never hit); ``backbeat_snare_velocity`` and
    ``ghost_snare_velocity`` (None without such hits).
    """
    if not scores:
        return {"songs": 0, "bars": 0}
    hits = np.concatenate([bar_hits(s.drums) for s in scores])
    levels = np.concatenate([s.drum_velocity for s in scores]).reshape(-1, STEPS_PER_BAR)
    velocity = np.concatenate([s.hit_velocities() for s in scores]).reshape(hits.shape)
    per_class = hits.sum(axis=(0, 1))
    mean_velocity = velocity.sum(axis=(0, 1), dtype=np.float64) / np.maximum(per_class, 1)
    snare = velocity[..., SNARE].astype(np.float64)
    backbeat = np.zeros(STEPS_PER_BAR, bool)
    backbeat[list(BACKBEAT_STEPS)] = True
    ghost = hits[..., SNARE] & (levels == 0) & ~backbeat

    def share(bars: np.ndarray) -> float:
        return float(bars.mean())

    return {
        "songs": len(scores), "bars": len(hits),
        "backbeat": share(backbeat_bars(hits)), "kick_on_1": share(kick_on_one_bars(hits)),
        "groove": share(groove_bars(hits)), "time_keeping": share(time_keeping_bars(hits)),
        "empty": share(~hits.any(axis=(1, 2))),
        "hits_per_bar": {c: float(n) / len(hits) for c, n in zip(DRUM_CLASSES, per_class,
                                                                   strict=True)},
        "velocity": {c: (float(v) if n else None) for c, v, n in zip(DRUM_CLASSES, mean_velocity,
                                                                      per_class, strict=True)},
        "backbeat_snare_velocity": _mean(snare[:, backbeat][hits[:, backbeat, SNARE]]),
        "ghost_snare_velocity": _mean(snare[ghost]),
    }


def _mean(values: np.ndarray) -> float | None:
    return float(values.mean()) if len(values) else None


def identical_steps(a: Score, b: Score) -> float:
    """Share of steps whose drum hits and level are the same in ``a`` and ``b`` (same length)."""
    if a.steps != b.steps:
        raise ValueError(f"scores differ in length: {a.bars} vs {b.bars} bars")
    same = (a.drums == b.drums) & ((a.drum_velocity == b.drum_velocity) | (a.drums == 0))
    return float(same.mean())
