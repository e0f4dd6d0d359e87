"""Choosing among candidates: of K songs sampled for every song asked for, keep the best.

Sampling a batch is cheap, and one bad draw (a drum loop without a backbeat, a melody that
stops) spoils a whole song. So the coordinator samples ``K`` candidates per song in one batch
(rows ``i * K .. i * K + K - 1`` are song ``i``'s) and keeps, per song, the candidate ranked
first by, in this order:

1. how many of the explicit checks it passes (:data:`arranger.evaluation.checks.CHECKS`:
   groove, chords that move, tonic in mode, chords in scale, melody coverage);
2. how close its drums sit to the preset's drum style (:func:`style_distance`, when one is
   given; smaller is better);
3. its log-likelihood under the models: nats per token, averaged per layer and summed over the
   layers, so a long layer does not outweigh a short one.

Exact ties go to the earliest candidate, so the choice is deterministic for a seed.

When the drum model is blind to the chords and the melody (the shipped one: its corpus has
neither), a song's drums do not depend on its other layers, so :func:`choose_rows` picks the
drums separately, among the same K candidates, by groove, style and drum likelihood: a song
then needs one good chord/melody draw and one good groove, not both in the same candidate.

With a form, the coordinator ranks the K candidates on the bars before its stage bar first and
finishes only the best few (``keep`` of :func:`choose_rows`; :mod:`arranger.compose.staging`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import numpy as np

from arranger.evaluation.checks import Expect, check_song, groove
from arranger.evaluation.drum_stats import bar_hits
from arranger.score import DRUM_CLASSES, STEPS_PER_BAR, Score
from tracks.drums import KIT_SUBSTITUTES, KITS, STYLE_PROFILES

StyleDistance = Callable[[Score], float]


def kit_profile(style: str, kit: str) -> dict[str, float]:
    """Hits per bar of ``style`` (:data:`tracks.drums.STYLE_PROFILES`) as ``kit`` plays them:
    a drum the kit lacks adds its hits to its stand-in, or is dropped."""
    profile = dict.fromkeys(STYLE_PROFILES[style], 0.0)
    for name, hits in STYLE_PROFILES[style].items():
        played, every = KIT_SUBSTITUTES.get(kit, {}).get(name, (name, 1))
        if played in KITS[kit]:  # a stand-in on every n-th step plays at most 16 / n a bar
            profile[played] += min(hits, STEPS_PER_BAR / every)
    return profile


def style_distance(score: Score, style: str, kit: str = "full") -> float:
    """How far a song's drums sit from a style: the sum over the profile's drums of
    ``|log(1 + hits per bar) - log(1 + the style's)|`` (:func:`kit_profile`); 0 = alike."""
    per_bar = bar_hits(score.drums).sum(axis=(0, 1)) / score.bars
    profile = kit_profile(style, kit)
    return float(sum(abs(np.log1p(per_bar[DRUM_CLASSES.index(name)]) - np.log1p(hits))
                     for name, hits in profile.items()))


def rank_key(score: Score, loglik: float, expect: Expect,
             style: StyleDistance | None = None) -> tuple[int, float, float]:
    """The sort key of one candidate (larger is better): checks passed, -style distance,
    log-likelihood per token."""
    passed = sum(r.passed for r in check_song(score, expect).values())
    distance = style(score) if style is not None else 0.0
    return passed, -float(distance), float(loglik)


def best_of(scores: Sequence[Score], loglik: np.ndarray, k: int, expect: Expect = Expect(),
            style: StyleDistance | None = None, keep: int = 1) -> list[int]:
    """Index of the chosen candidate for every group of ``k`` consecutive candidates (the
    ``keep`` best, best first, with ``keep`` > 1: see :func:`top_rows`).

    Parameters
    ----------
    scores : N * k candidate songs, song ``i``'s candidates at ``i * k .. i * k + k - 1``.
    loglik : float [N * k], each candidate's log-likelihood (nats per token, summed over
        the layers).
    k : candidates per song (>= 1). expect : what the preset asks (see ``Expect``).
    style : the drum-style distance to minimise second, or None.

    Returns
    -------
    list of N indices into ``scores``.
    """
    if k < 1 or len(scores) % k or len(scores) != len(loglik):
        raise ValueError(f"{len(scores)} candidates, {len(loglik)} likelihoods, k={k}")
    if k == 1:
        return list(range(len(scores)))
    keys = [rank_key(s, float(ll), expect, style) for s, ll in zip(scores, loglik, strict=True)]
    return top_rows(keys, k, keep)


def _drum_key(score: Score, loglik: float, expect: Expect, style: StyleDistance | None
              ) -> tuple[bool, float, float]:
    distance = style(score) if style is not None else 0.0
    return groove(score, expect).passed, -float(distance), float(loglik)


def _without_groove(score: Score, loglik: float, expect: Expect) -> tuple[int, float]:
    passed = sum(r.passed for name, r in check_song(score, expect).items() if name != "groove")
    return passed, float(loglik)


def choose_rows(scores: Sequence[Score], loglik: Mapping[str, np.ndarray], k: int,
                expect: Expect, style: StyleDistance | None, drums_apart: bool, keep: int = 1
                ) -> tuple[list[int], list[int]]:
    """Rows to keep per song: (rows for chords and melody, rows for the drums).

    ``loglik`` : per layer, each candidate's log-likelihood per token (nats, float [N * k]).
    With ``drums_apart`` the drums are ranked on their own (groove, style, drum likelihood) and
    the rest on the other checks and likelihoods; otherwise both come from :func:`best_of`.
    ``keep`` > 1 keeps that many per song, best first (song ``i``'s at ``i * keep ..``): the
    survivors a staged search finishes and ranks again on the whole song.
    """
    total = np.sum([loglik[layer] for layer in loglik], axis=0)
    if not drums_apart or k == 1:
        rows = best_of(scores, total, k, expect, style, keep)
        return rows, rows
    rest = total - loglik["drums"]
    song_keys = [_without_groove(s, ll, expect) for s, ll in zip(scores, rest, strict=True)]
    drum_keys = [_drum_key(s, ll, expect, style)
                 for s, ll in zip(scores, loglik["drums"], strict=True)]
    return top_rows(song_keys, k, keep), top_rows(drum_keys, k, keep)


def top_rows(keys: Sequence[tuple], k: int, keep: int = 1) -> list[int]:
    """The ``keep`` best (largest key) of every group of ``k`` consecutive candidates, best
    first; of equal keys the earliest first (a stable sort keeps their order, reversed too)."""
    chosen = []
    for start in range(0, len(keys), k):
        chosen += sorted(range(start, start + k), key=lambda i: keys[i], reverse=True)[:keep]
    return chosen
