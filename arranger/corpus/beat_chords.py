"""The chord of each beat of a run on the 16th grid: annotated, or recognised from the notes.

Chords are absolute ``(root pitch class, quality)`` pairs, or None for a beat without one.
"""

from __future__ import annotations

import numpy as np

from arranger.corpus.grid import GridFit, StepNotes
from arranger.score import STEPS_PER_BEAT
from tracks import chords as chord_track


def annotated_beats(changes: list, fit: GridFit, s0: int, n_beats: int) -> list:
    """Chord of each beat from annotated changes: the one active at the middle of the beat."""
    if not changes:
        return [None] * n_beats
    order = sorted(range(len(changes)), key=lambda i: changes[i][0])
    at = fit.steps(np.array([changes[i][0] for i in order]))
    mids = s0 + STEPS_PER_BEAT * np.arange(n_beats) + STEPS_PER_BEAT // 2
    idx = np.searchsorted(at, mids, side="right") - 1
    return [changes[order[i]][1] if i >= 0 else None for i in idx.tolist()]


def recognise_beats(notes: StepNotes, n_beats: int) -> list[tuple[int, str] | None]:
    """Absolute (root, quality) per beat by template matching of the sounding pitch classes.

    Each beat's duration-weighted pitch classes get half the weight of the other beat of its
    half bar (chords rarely change off beats 1 and 3); the lowest sounding note picks the root
    among ties. Beats with fewer than two pitch classes have no chord.
    """
    weights = _beat_weights(notes, n_beats)
    bass = _lowest_per_beat(notes, n_beats)
    out: list[tuple[int, str] | None] = [None] * n_beats
    rows = np.flatnonzero(np.count_nonzero(weights > 1e-9, axis=1) >= 2)
    if len(rows):
        found = chord_track.match_chords(weights[rows], np.where(bass[rows] == 128, -1, bass[rows]))
        for row, chord in zip(rows.tolist(), found, strict=True):
            out[row] = chord
    return out


def _beat_weights(notes: StepNotes, n_beats: int) -> np.ndarray:
    """float [n_beats, 12]: sounding steps of each pitch class, plus half the other beat's."""
    steps = n_beats * STEPS_PER_BEAT
    diff = np.zeros((steps + 1, 12))
    np.add.at(diff, (notes.start, notes.pitch % 12), 1.0)
    np.add.at(diff, (notes.end, notes.pitch % 12), -1.0)
    weights = np.cumsum(diff[:-1], axis=0).reshape(n_beats, STEPS_PER_BEAT, 12).sum(axis=1)
    if n_beats % 2 == 0:
        weights = weights + 0.5 * weights.reshape(-1, 2, 12)[:, ::-1].reshape(-1, 12)
    return weights


def _lowest_per_beat(notes: StepNotes, n_beats: int) -> np.ndarray:
    """int [n_beats]: the lowest pitch sounding in each beat, 128 where none sounds."""
    lowest = np.full(n_beats * STEPS_PER_BEAT, 128, np.int64)
    for i in np.argsort(-notes.pitch, kind="stable").tolist():
        lowest[notes.start[i]:notes.end[i]] = notes.pitch[i]
    return lowest.reshape(n_beats, STEPS_PER_BEAT).min(axis=1)
