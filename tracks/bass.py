"""Bass layer: no model of its own; it follows the chords.

Each bar takes one of a few lo-fi rhythm patterns (chosen from the seed, repeating with the loop)
whose notes play the chord's root, fifth or third, or approach the next chord's root by a half
step. A note always starts where the chord changes; the last bar holds the final root.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from arranger.score import (
    BEATS_PER_BAR,
    STEPS_PER_BAR,
    STEPS_PER_BEAT,
    Chord,
    Score,
    line_from_spans,
)

# (step in bar, role, length in steps). Roles: R root, F fifth, T third, A approach next root.
PATTERNS: tuple[tuple[tuple[int, str, int], ...], ...] = (
    ((0, "R", 7), (8, "R", 6)),
    ((0, "R", 5), (6, "R", 2), (8, "F", 5), (14, "A", 2)),
    ((0, "R", 3), (3, "R", 4), (8, "F", 2), (10, "R", 4), (14, "A", 2)),
    ((0, "R", 4), (4, "F", 4), (8, "T", 4), (12, "A", 4)),
    ((0, "R", 11), (12, "F", 2), (14, "A", 2)),
    ((0, "R", 6), (7, "R", 3), (10, "F", 6)),
)
LOW, HIGH = 31, 51  # absolute MIDI range of chord roots in the bass (G1..D#3)


def bass_line(score: Score, seed: int = 0, loop_bars: int = 4) -> np.ndarray:
    """Key-relative bass step line (int16 [steps]) for ``score``'s chords."""
    rng = np.random.default_rng(seed)
    choices = rng.integers(0, len(PATTERNS), size=max(loop_bars, 1))
    spans: list[tuple[int, int, int]] = []
    chords = score.chords
    for bar in range(score.bars):
        if bar == score.bars - 1 and score.bars > 1:
            spans += _ending(score, bar)
            continue
        pattern = PATTERNS[int(choices[bar % len(choices)])]
        spans += _bar_notes(score, bar, pattern)
    starts = {s for s, _, _ in spans}
    for beat in range(len(chords)):
        step = beat * STEPS_PER_BEAT
        changed = beat == 0 or chords[beat] != chords[beat - 1]
        if changed and chords[beat] is not None and step not in starts:
            spans.append((step, step + STEPS_PER_BEAT, _root_pitch(chords[beat], score)))
    spans = [s for s in spans if chords[s[0] // STEPS_PER_BEAT] is not None]
    return line_from_spans(spans, score.steps)


def _bar_notes(score: Score, bar: int, pattern) -> list[tuple[int, int, int]]:
    out = []
    for step_in_bar, role, length in pattern:
        step = bar * STEPS_PER_BAR + step_in_bar
        chord = score.chords[step // STEPS_PER_BEAT]
        if chord is None:
            continue
        pitch = _role_pitch(role, chord, _next_chord(score.chords, step), score)
        out.append((step, step + length, pitch))
    return out


def _ending(score: Score, bar: int) -> list[tuple[int, int, int]]:
    chord = score.chords[bar * BEATS_PER_BAR]
    if chord is None:
        return []
    start = bar * STEPS_PER_BAR
    return [(start, start + STEPS_PER_BAR, _root_pitch(chord, score))]


def _next_chord(chords: Sequence[Chord | None], step: int) -> Chord | None:
    beat = step // STEPS_PER_BEAT
    for later in chords[beat + 1 :]:
        if later is not None and later != chords[beat]:
            return later
    return None


def _root_pitch(chord: Chord, score: Score) -> int:
    rel = 36 + chord.root
    while rel + score.key.tonic > HIGH:
        rel -= 12
    while rel + score.key.tonic < LOW:
        rel += 12
    return rel


def _role_pitch(role: str, chord: Chord, nxt: Chord | None, score: Score) -> int:
    root = _root_pitch(chord, score)
    if role == "F":
        return root + (6 if chord.quality in ("dim", "m7b5", "dim7") else 7)
    if role == "T":
        return root + chord.intervals[1]
    if role == "A" and nxt is not None:
        target = _root_pitch(nxt, score)
        return target - 1 if target - 1 != root else target + 1
    if role == "A":
        return root + 7
    return root
