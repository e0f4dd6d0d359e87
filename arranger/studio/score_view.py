"""A song's score as the page draws it: notes per lane in grid steps, absolute MIDI pitches."""

from __future__ import annotations

import numpy as np

from arranger.score import (
    DRUM_CLASSES,
    LAYERS,
    STEPS_PER_BAR,
    STEPS_PER_BEAT,
    Score,
    note_spans,
)
from tracks import chords as chord_track


def score_view(score: Score) -> dict:
    """The piano-roll data of ``score``.

    Returns
    -------
    dict with ``bars``, ``tempo_bpm``, ``key``, ``seconds_per_step`` (s), ``steps_per_bar``,
    ``layers``, ``drum_classes`` and per lane a list of notes: ``chords`` ``[start, end, name,
    [pitches]]``, ``melody``/``bass`` ``[start, end, pitch]``, ``drums`` ``[step, class]``;
    times in 16th steps from the song's start (which is sample 0 of every stem).
    """
    tonic = score.key.tonic
    return {
        "bars": score.bars, "tempo_bpm": score.tempo_bpm, "key": str(score.key),
        "swing": score.swing, "seconds_per_step": score.seconds_per_step,
        "steps_per_bar": STEPS_PER_BAR, "steps_per_beat": STEPS_PER_BEAT,
        "layers": list(LAYERS), "drum_classes": list(DRUM_CLASSES),
        "chords": _chords(score),
        "melody": [[s, e, int(p) + tonic] for s, e, p in note_spans(score.melody)],
        "bass": [[s, e, int(p) + tonic] for s, e, p in note_spans(score.bass)],
        "drums": _drums(score.drums),
    }


def _chords(score: Score) -> list:
    spans = chord_track.voice(score.chords, score.key)
    return [[b0 * STEPS_PER_BEAT, b1 * STEPS_PER_BEAT,
             chord_track.absolute_name(score.chords[b0], score.key), list(pitches)]
            for b0, b1, pitches in spans]


def _drums(drums: np.ndarray) -> list:
    return [[int(step), cls] for step in np.flatnonzero(drums).tolist()
            for cls in range(len(DRUM_CLASSES)) if int(drums[step]) >> cls & 1]
