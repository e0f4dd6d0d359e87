"""A read piece -> key-relative 4/4 songs on the 16th grid, one per run of 4/4 bars (and key).

:func:`songs_from_piece` fits the grid, cuts the piece into runs of whole 4/4 bars, trims their
silent ends, and builds each run's layers, chords, key and tempo.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import numpy as np

from arranger.corpus.beat_chords import annotated_beats, recognise_beats
from arranger.corpus.grid import GridFit, StepNotes, fit_grid, four_four_runs, key_at
from arranger.corpus.piece import Piece, SkipSong, Song
from arranger.score import (
    BEATS_PER_BAR,
    QUALITIES,
    STEPS_PER_BAR,
    STEPS_PER_BEAT,
    Chord,
    Key,
    Score,
    drum_class_of_pitch,
    line_from_spans,
    velocity_level,
)
from arranger.theory import choose_key, pitch_class_histogram

MIN_BARS = 2
MIN_LAYER_NOTES = 4
_CHORDS = [{q: Chord(r, q) for q in QUALITIES} for r in range(12)]
_DRUM_CLASS_OF = np.array([-1 if drum_class_of_pitch(p) is None else drum_class_of_pitch(p)
                           for p in range(128)], dtype=np.int64)


# --- layers on the grid -----------------------------------------------------------------------


def step_line(notes: StepNotes, steps: int, tonic: int, lowest: bool = False) -> np.ndarray:
    """Monophonic key-relative step line; at a shared onset the top (or lowest) note wins."""
    order = np.lexsort((notes.pitch if lowest else -notes.pitch, notes.start))
    spans, seen = [], set()
    for i in order.tolist():
        start = int(notes.start[i])
        if start not in seen:
            seen.add(start)
            spans.append((start, int(notes.end[i]), int(notes.pitch[i]) - tonic))
    return line_from_spans(spans, steps)


def drum_grid(notes: StepNotes, steps: int) -> tuple[np.ndarray, np.ndarray, int]:
    """(uint16 class masks [steps], uint8 velocity levels [steps], number of mapped hits)."""
    cls = _DRUM_CLASS_OF[np.clip(notes.pitch, 0, 127)]
    keep = cls >= 0
    step, cls, vel = notes.start[keep], cls[keep], notes.velocity[keep]
    masks = np.zeros(steps, np.uint16)
    np.bitwise_or.at(masks, step, (1 << cls).astype(np.uint16))
    peak = np.zeros(steps, np.int64)
    np.maximum.at(peak, step, vel)
    levels = np.ones(steps, np.uint8)
    hit = masks > 0
    levels[hit] = velocity_level(peak[hit])
    return masks, levels, int(keep.sum())


# --- piece -> songs ---------------------------------------------------------------------------


@dataclass
class _Grid:
    """A piece's layers on the global grid, and its annotated chord spans (start, end steps)."""

    fit: GridFit
    layers: dict[str, StepNotes]
    chord_spans: tuple[np.ndarray, np.ndarray]


def songs_from_piece(piece: Piece) -> list[Song]:
    """Key-relative 4/4 songs of a piece, one per run of 4/4 bars (and key).

    Raises
    ------
    SkipSong : with the reason of the first failing check when no segment gives a song.
    """
    notes = piece.note_layers()
    if not notes and not any(c[1] for c in piece.chords or []):
        raise SkipSong("no usable notes")
    onsets = np.concatenate([n.start for n in notes.values()] or [np.zeros(0)])
    fit = fit_grid(onsets)
    runs = four_four_runs(piece)
    if not runs:
        odd = Counter(m for m in piece.meters if m not in ("4/4", "2/2")).most_common(3)
        names = ", ".join(m for m, _ in odd) or "irregular bars"
        raise SkipSong(f"non-4/4 time signature: {names}")
    limit = max(s0 + 16 * n for s0, n in runs)
    on_grid = _Grid(fit, {k: StepNotes.of(v, fit, limit) for k, v in notes.items()},
                    _chord_spans(piece.chords or [], fit, limit))
    songs, reasons = [], []
    for s0, n_bars in runs:
        try:
            songs.append(_segment_song(piece, on_grid, *_trim(on_grid, s0, n_bars)))
        except SkipSong as exc:
            reasons.append(exc.reason)
    if not songs:
        raise SkipSong(max(reasons, key=lambda r: (reasons.count(r), r)))
    return songs


def _chord_spans(changes: list, fit: GridFit, limit: int) -> tuple[np.ndarray, np.ndarray]:
    """(start, end) steps of the annotated chords that are not N."""
    changes = sorted(changes, key=lambda c: c[0])
    at = fit.steps(np.array([c[0] for c in changes], np.float64))
    ends = np.append(at[1:], limit)
    real = np.array([c[1] is not None for c in changes], bool) & (ends > at)
    return at[real], ends[real]


def _bar_activity(on_grid: _Grid, s0: int, n_bars: int) -> np.ndarray:
    """How many notes (and annotated chords) sound in each bar of the run starting at ``s0``."""
    diff = np.zeros(n_bars + 1, np.int64)
    spans = [(n.start, n.end) for n in on_grid.layers.values()] + [on_grid.chord_spans]
    for start, end in spans:
        first = (start - s0) // STEPS_PER_BAR
        last = (end - 1 - s0) // STEPS_PER_BAR + 1
        keep = (last > 0) & (first < n_bars)
        np.add.at(diff, np.clip(first[keep], 0, n_bars), 1)
        np.add.at(diff, np.clip(last[keep], 0, n_bars), -1)
    return np.cumsum(diff)[:n_bars]


def _trim(on_grid: _Grid, s0: int, n_bars: int) -> tuple[int, int]:
    """Drop silent bars at both ends of a run of bars."""
    active = np.flatnonzero(_bar_activity(on_grid, s0, n_bars))
    if len(active) == 0:
        raise SkipSong("no usable notes")
    a, b = int(active[0]), int(active[-1]) + 1
    if b - a < MIN_BARS:
        raise SkipSong(f"too short: {b - a} bar{'s' * (b - a != 1)} of 4/4")
    return s0 + a * STEPS_PER_BAR, b - a


def _segment_song(piece: Piece, on_grid: _Grid, s0: int, n_bars: int) -> Song:
    steps, n_beats = n_bars * STEPS_PER_BAR, n_bars * BEATS_PER_BAR
    window = {k: v.window(s0, steps) for k, v in on_grid.layers.items()}
    absolute, annotated = _absolute_chords(piece, on_grid, s0, n_beats)
    key = _segment_key(piece, window, absolute, s0)
    score = Score(n_bars, tempo_bpm=_tempo(piece, s0, n_beats), key=key, swing=piece.swing)
    layers = _add_note_layers(score, window)
    known = sum(c is not None for c in absolute)
    if known >= (0.25 if annotated else 0.5) * n_beats:
        score.chords = tuple(None if c is None else _CHORDS[(c[0] - key.tonic) % 12][c[1]]
                             for c in absolute)
        layers.add("chords")
    if not layers:
        raise SkipSong(f"too few chords: {known} of {n_beats} beats" if annotated and not window
                       else "no usable notes")
    return Song(piece.source, score, frozenset(layers), piece.dataset)


def _add_note_layers(score: Score, window: dict[str, StepNotes]) -> set[str]:
    """Set the melody, bass and drum layers that hold enough notes; their names."""
    steps, layers = score.steps, set()
    for name in ("melody", "bass"):
        notes = window.get(name)
        if notes is not None and len(notes.start) >= max(MIN_LAYER_NOTES, score.bars // 4):
            setattr(score, name, step_line(notes, steps, score.key.tonic, lowest=name == "bass"))
            layers.add(name)
    if "drums" in window:
        masks, levels, hits = drum_grid(window["drums"], steps)
        if hits >= MIN_LAYER_NOTES:
            score.drums, score.drum_velocity = masks, levels
            layers.add("drums")
    return layers


def _absolute_chords(piece: Piece, on_grid: _Grid, s0: int, n_beats: int
                     ) -> tuple[list, bool]:
    if piece.chords:
        return annotated_beats(piece.chords, on_grid.fit, s0, n_beats), True
    harmony = on_grid.layers.get("harmony")
    if harmony is None:
        return [None] * n_beats, False
    return recognise_beats(harmony.sounding(s0, n_beats * STEPS_PER_BEAT), n_beats), False


def _segment_key(piece: Piece, window: dict[str, StepNotes], chords: list, s0: int) -> Key:
    signature = key_at(piece, s0 / STEPS_PER_BEAT)
    if piece.key_trusted and signature is not None:
        return signature
    pitched = [window[k] for k in ("melody", "harmony", "bass") if k in window]
    pitches = np.concatenate([n.pitch for n in pitched] or [np.zeros(0, np.int64)])
    lengths = np.concatenate([np.clip(n.end - n.start, 1, 16) for n in pitched]
                             or [np.zeros(0, np.int64)])
    hist = pitch_class_histogram(pitches, lengths)
    if hist.sum() == 0:
        for chord in filter(None, chords):
            hist[[(chord[0] + i) % 12 for i in QUALITIES[chord[1]]]] += 1.0
    if hist.sum() == 0:
        return Key(0, "major")
    final = next((c[0] for c in reversed(chords) if c is not None), None)
    return choose_key(hist, signature, final)


def _tempo(piece: Piece, s0: int, n_beats: int) -> float:
    bpm = piece.tempo_bpm
    times = piece.beat_seconds
    if times is not None:
        first = s0 // STEPS_PER_BEAT
        span = np.diff(times[max(first, 0):first + n_beats + 1])
        if len(span) and np.median(span) > 0:
            bpm = 60.0 / float(np.median(span))
    if not 10 <= bpm <= 600:
        raise SkipSong(f"bad tempo: {bpm:.3g} bpm")
    return round(float(np.clip(bpm, 20, 300)), 2)
