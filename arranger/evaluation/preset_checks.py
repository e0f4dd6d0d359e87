"""Per-preset musical checks: write N songs with each preset, count how many a producer keeps.

For each preset, ``n`` songs are written as one batch through the preset's plan, exactly as
``lofi generate --preset P --seed S --variations n`` writes them, and measured with
:mod:`arranger.evaluation.checks` (share passing each check and all of them) and
:mod:`arranger.evaluation.drum_stats`. Because every preset uses the same seed, song ``i`` of
two presets can be compared: the share of drum steps that are identical says whether the
presets really shape the groove (1.0 = note-for-note the same drums). The melody is profiled
where the arrangement lets it play (:func:`melody_profile`), comparable with real melodies cut
to their span (:func:`melody_span`).
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import combinations
from pathlib import Path

import numpy as np

from arranger.compose.coordinator import Models, compose
from arranger.errors import InputError
from arranger.evaluation.checks import (
    PHRASE_BARS,
    empty_melody_bars,
    expect_of,
    pass_rates,
    phrase_end_chord_tones,
)
from arranger.evaluation.drum_stats import drum_stats, identical_steps
from arranger.preset import load_preset, preset_names
from arranger.score import STEPS_PER_BAR, Score, note_spans

ALL = "all"


def resolve_presets(text: str) -> list[str]:
    """Preset names from ``"all"`` or a comma-separated list of shipped preset names.

    Raises
    ------
    InputError : an unknown name (field ``presets``).
    """
    known = preset_names()
    names = known if text.strip() == ALL else [n.strip() for n in text.split(",") if n.strip()]
    for name in names or [text]:
        if name not in known:
            raise InputError("presets", name, f"{ALL!r} or names of {', '.join(known)}")
    return names


def preset_songs(models: Models, name: str, *, n: int, seed: int, bars: int
                 ) -> tuple[list[Score], list[Score], list[Score]]:
    """``n`` songs of ``bars`` bars written with preset ``name`` and ``seed``, as one batch: the
    whole songs, the bars of each that the checks judge (an intro without drums is not a song
    without a groove; :func:`arranger.compose.sections.judged`), and the bars where the melody
    plays (:func:`arranger.compose.sections.played`; none where it never does)."""
    from arranger.compose.sections import judged, played

    plan = load_preset(name).plan(bars, bass_seed=seed)
    songs = compose(models, plan, seed=seed, variations=n)
    melodies = [m for m in (played(s, plan.form, "melody") for s in songs) if m is not None]
    return songs, [judged(s, plan.form) for s in songs], melodies


def melody_span(score: Score) -> Score | None:
    """``score`` from the bar of its first melody note-on to that of its last (a real song's
    melody plays there), None without one."""
    from arranger.compose.sections import bars_of

    bars = np.flatnonzero((score.melody >= 0).reshape(score.bars, STEPS_PER_BAR).any(axis=1))
    return bars_of(score, np.arange(bars[0], bars[-1] + 1)) if len(bars) else None


def melody_profile(scores: Sequence[Score]) -> dict[str, float | int | None]:
    """How the melodies of ``scores`` (each cut to where its melody plays) breathe, pooled
    over their bars and notes: ``empty_bars`` (share without a note-on), ``empty_mid_phrase``
    (those not in a phrase's last bar, as a share of all bars), ``notes_per_bar``,
    ``qualified_notes`` (notes of an 8th or longer, MuseGAN QN) and ``phrase_end_tones``
    (song mean of :func:`arranger.evaluation.checks.phrase_end_chord_tones`)."""
    bars = sum(s.bars for s in scores)
    if not bars:
        return {"bars": 0, "empty_bars": None, "empty_mid_phrase": None, "notes_per_bar": None,
                "qualified_notes": None, "phrase_end_tones": None}
    empty = [(s.melody >= 0).reshape(s.bars, STEPS_PER_BAR).any(axis=1) == 0 for s in scores]
    mid = sum(int((e & (np.arange(len(e)) % PHRASE_BARS != PHRASE_BARS - 1)).sum()) for e in empty)
    lengths = np.array([end - start for s in scores for start, end, _ in note_spans(s.melody)])
    ends = [phrase_end_chord_tones(s) for s in scores]
    ends = [e for e in ends if e == e]  # NaN: no phrase-final note over a chord
    return {"bars": bars,
            "empty_bars": sum(empty_melody_bars(s) * s.bars for s in scores) / bars,
            "empty_mid_phrase": mid / bars, "notes_per_bar": len(lengths) / bars,
            "qualified_notes": float((lengths >= 2).mean()) if len(lengths) else None,
            "phrase_end_tones": float(np.mean(ends)) if ends else None}


def same_drums(songs: dict[str, list[Score]]) -> dict[str, float]:
    """Per preset pair ``"a | b"``: mean over songs ``i`` of the share of identical drum steps."""
    return {f"{a} | {b}": float(np.mean([identical_steps(x, y) for x, y in
                                         zip(songs[a], songs[b], strict=True)]))
            for a, b in combinations(sorted(songs), 2)}


def check_presets(names: Sequence[str], *, n: int = 32, seed: int = 0, bars: int = 32,
                  weights_dir: Path | None = None, models: Models | None = None) -> dict:
    """Pass rates and drum statistics per preset, and the drum sameness between presets.

    Parameters
    ----------
    names : shipped preset names (see :func:`resolve_presets`).
    n : songs per preset. seed : the generation seed, the same for every preset.
    bars : length of every song (one length, so songs of two presets compare step by step).
    weights_dir, models : the weights folder (default shipped), or models already loaded.

    Returns
    -------
    dict, JSON-ready: ``config`` (n, seed, bars); ``presets``: per name ``pass`` (share per
    check and ``all``), ``drums`` (:func:`arranger.evaluation.drum_stats.drum_stats`) and
    ``melody`` (:func:`melody_profile`);
    ``same_drums`` (:func:`same_drums`).
    """
    if n < 1 or bars < 2:
        raise InputError("n" if n < 1 else "bars", n if n < 1 else bars,
                         "at least 1 song of at least 2 bars")
    if models is None:
        from arranger.weights import load_models

        models = load_models(weights_dir)
    written = {name: preset_songs(models, name, n=n, seed=seed, bars=bars) for name in names}
    presets = {name: {"pass": pass_rates(judged, expect_of(load_preset(name).song)),
                      "drums": drum_stats(judged), "melody": melody_profile(melodies)}
               for name, (_, judged, melodies) in written.items()}
    return {"config": {"n": n, "seed": seed, "bars": bars}, "presets": presets,
            "same_drums": same_drums({name: whole for name, (whole, _, _) in written.items()})}
