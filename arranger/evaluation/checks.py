"""Song-level musical checks: the flaws a listener notices at once, each a pass or a fail.

Every check is a pure function of an :class:`arranger.score.Score` (and, where a preset may ask
for something else, an :class:`Expect`), returns a :class:`CheckResult` and says in its
docstring exactly what it measures. :data:`CHECKS` lists them in report order; a song
:func:`passes_all` when every one passes. The thresholds are declared here, once.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from arranger.evaluation.drum_stats import bar_hits, groove_bars, time_keeping_bars
from arranger.score import (
    BEATS_PER_BAR,
    QUALITIES,
    STEPS_PER_BAR,
    STEPS_PER_BEAT,
    Chord,
    Score,
    note_spans,
)
from arranger.song_settings import SongSettings

MIN_GROOVE_SHARE = 0.75  # "in at least three bars of four"
PHRASE_BARS = 4  # a phrase: melody phrases end, and drum fills end, every this many bars
LOOP_WINDOW_BARS = 4  # chords must move within every window of this many bars
MIN_LOOP_CHORDS = 3  # distinct chords each window needs (unless a preset asks for fewer)
MAX_OUTSIDE_SHARE = 0.10  # chord notes outside the key's scale
MAX_EMPTY_BAR_SHARE = 0.25  # bars without a melody onset
BREATH_STEPS = STEPS_PER_BEAT  # a rest this long after a melody note ends a phrase
MIN_PHRASE_END_TONES = 0.8  # phrase-final melody notes that are chord tones (POP909: ~0.72)
ENDING_MAX_HIT_STEPS = 1  # a last bar with at most this many drum steps is an ending, not judged
# Qualities a chord on the tonic may have: the mode's triad, with colours the mode holds (a minor
# tonic also takes the dorian 6th, as jazz and lo-fi do); suspended chords fit both.
TONIC_QUALITIES = {
    "major": frozenset({"maj", "6", "maj7", "maj9", "sus2", "sus4"}),
    "minor": frozenset({"min", "m6", "m7", "m9", "sus2", "sus4", "7sus4"}),
}
DOMINANT_ROOT = 7  # the V: in minor it takes the harmonic minor's raised 7th
RAISED_SEVENTH = 11


@dataclass(frozen=True)
class Expect:
    """What a preset asks of its songs, where the checks allow a choice.

    drums : the song has drums (a ``drum_kit = "none"`` preset does not: groove passes).
    loop_chords : distinct chords every 4-bar window needs.
    """

    drums: bool = True
    loop_chords: int = MIN_LOOP_CHORDS


@dataclass(frozen=True)
class CheckResult:
    """One check of one song: ``passed``, the measured ``value`` and a short ``detail``."""

    passed: bool
    value: float
    detail: str = ""


def expect_of(song: SongSettings) -> Expect:
    """The :class:`Expect` of a preset's ``song`` settings."""
    return Expect(drums=song.drum_kit != "none")


def groove(score: Score, expect: Expect = Expect()) -> CheckResult:
    """A backbeat groove that keeps time.

    Definition: in at least 3 bars of 4 (:data:`MIN_GROOVE_SHARE`) the bar is a groove bar
    (snare on beats 2 and 4, kick on beat 1, 1-8 snare hits; see
    :mod:`arranger.evaluation.drum_stats`), and in at least 3 bars of 4 hats or ride keep time
    (>= 4 cymbal hits). A last bar holding at most one drum step (the ending's final hit) is not
    judged. ``value`` is the smaller of the two shares. Passes trivially without drums expected.
    """
    if not expect.drums:
        return CheckResult(True, 1.0, "no drums expected")
    hits = bar_hits(score.drums)
    if score.bars > 1 and hits[-1].any(axis=1).sum() <= ENDING_MAX_HIT_STEPS:
        hits = hits[:-1]
    backbeat, timing = float(groove_bars(hits).mean()), float(time_keeping_bars(hits).mean())
    value = min(backbeat, timing)
    return CheckResult(value >= MIN_GROOVE_SHARE, value,
                       f"groove bars {backbeat:.2f}, time-keeping bars {timing:.2f}")


def _chord_identity(chord: Chord) -> tuple[int, tuple[int, ...]]:
    """Root and triad: a new colour of the same chord (C -> Cmaj7) is not a move."""
    return chord.root, QUALITIES[chord.quality][:3]


def loop_chord_counts(score: Score) -> list[int]:
    """Distinct chords (root + triad, N ignored) in each full 4-bar window from bar 1.

    A song shorter than one window is one window.
    """
    beats = LOOP_WINDOW_BARS * BEATS_PER_BAR
    starts = range(0, max(len(score.chords) - beats, 0) + 1, beats)
    return [len({_chord_identity(c) for c in score.chords[s:s + beats] if c is not None})
            for s in starts]


def chords_move(score: Score, expect: Expect = Expect()) -> CheckResult:
    """Chords that move: every 4-bar window holds at least ``expect.loop_chords`` (default 3)
    distinct chords, counted by root and triad (see :func:`loop_chord_counts`).

    ``value`` is the fewest distinct chords of any window.
    """
    counts = loop_chord_counts(score)
    fewest = min(counts)
    return CheckResult(fewest >= expect.loop_chords, float(fewest),
                       f"fewest chords in a {LOOP_WINDOW_BARS}-bar window: {fewest}")


def tonic_in_mode(score: Score, expect: Expect = Expect()) -> CheckResult:
    """The tonic chord fits the mode: every beat whose chord has the key's tonic as root has a
    quality of :data:`TONIC_QUALITIES` for the key's mode (no maj7 on a minor tonic, no m7 on
    a major one).

    ``value`` is the share of tonic-rooted beats that fit (1.0 when there are none).
    """
    allowed = TONIC_QUALITIES[score.key.mode]
    tonic = [c.quality for c in score.chords if c is not None and c.root == 0]
    wrong = sorted({q for q in tonic if q not in allowed})
    value = 1.0 - sum(q not in allowed for q in tonic) / len(tonic) if tonic else 1.0
    return CheckResult(not wrong, value, f"tonic qualities out of mode: {wrong}" if wrong else "")


def scale_of(chord: Chord, mode: str) -> frozenset[int]:
    """The key-relative scale a chord's notes are judged against.

    Major keys: the major scale. Minor keys: the natural minor scale, plus the harmonic minor's
    raised 7th (the leading tone) on chords rooted on V, whose major third it is.
    """
    natural = (0, 2, 4, 5, 7, 9, 11) if mode == "major" else (0, 2, 3, 5, 7, 8, 10)
    if mode == "minor" and chord.root == DOMINANT_ROOT:
        return frozenset(natural) | {RAISED_SEVENTH}
    return frozenset(natural)


def outside_share(score: Score) -> float:
    """Share of chord notes (each chord tone on each beat it sounds) outside :func:`scale_of`.

    0.0 for a song without chords.
    """
    total = outside = 0
    for chord in score.chords:
        if chord is None:
            continue
        tones = chord.pitch_classes()
        total += len(tones)
        outside += len(tones - scale_of(chord, score.key.mode))
    return outside / total if total else 0.0


def chord_notes_in_scale(score: Score, expect: Expect = Expect()) -> CheckResult:
    """Harmony in key: at most 10% (:data:`MAX_OUTSIDE_SHARE`) of chord notes lie outside the
    key's scale (:func:`scale_of`, :func:`outside_share`). ``value`` is that share."""
    share = outside_share(score)
    return CheckResult(share <= MAX_OUTSIDE_SHARE, share)


def empty_melody_bars(score: Score) -> float:
    """Share of bars in which no melody note starts (a note held over the bar line is no onset)."""
    onsets = (score.melody >= 0).reshape(score.bars, STEPS_PER_BAR)
    return float(1.0 - onsets.any(axis=1).mean())


def melody_coverage(score: Score, expect: Expect = Expect()) -> CheckResult:
    """A melody that keeps playing: at most 25% (:data:`MAX_EMPTY_BAR_SHARE`) of bars without a
    melody onset (:func:`empty_melody_bars`). ``value`` is that share."""
    share = empty_melody_bars(score)
    return CheckResult(share <= MAX_EMPTY_BAR_SHARE, share)


def phrase_end_notes(melody: np.ndarray) -> list[tuple[int, int]]:
    """``(onset step, pitch)`` of every phrase-final note of a melody step line: the last
    note-on of each :data:`PHRASE_BARS`-bar phrase (from bar 1), and every note followed by a
    rest of at least :data:`BREATH_STEPS` steps (a beat)."""
    spans = note_spans(melody)
    phrase = PHRASE_BARS * STEPS_PER_BAR
    ends = []
    for i, (start, end, pitch) in enumerate(spans):
        after = spans[i + 1][0] if i + 1 < len(spans) else None
        if after is None or after // phrase != start // phrase or after - end >= BREATH_STEPS:
            ends.append((start, pitch))
    return ends


def phrase_end_chord_tones(score: Score) -> float:
    """Share of phrase-final melody notes (:func:`phrase_end_notes`) whose pitch class is a
    tone of the chord sounding at their onset; notes over no chord are skipped. NaN without
    such notes."""
    judged = [(pitch, score.chord_at_step(start)) for start, pitch in phrase_end_notes(
        score.melody)]
    judged = [(pitch, chord) for pitch, chord in judged if chord is not None]
    if not judged:
        return float("nan")
    return sum(pitch % 12 in chord.pitch_classes() for pitch, chord in judged) / len(judged)


def phrase_ends(score: Score, expect: Expect = Expect()) -> CheckResult:
    """Phrases that come to rest on the harmony: at least 80% (:data:`MIN_PHRASE_END_TONES`)
    of phrase-final melody notes are chord tones (:func:`phrase_end_chord_tones`). ``value``
    is that share; a song without such notes passes (NaN)."""
    share = phrase_end_chord_tones(score)
    return CheckResult(not share < MIN_PHRASE_END_TONES, share)


Check = Callable[[Score, Expect], CheckResult]
CHECKS: dict[str, Check] = {
    "groove": groove,
    "chords_move": chords_move,
    "tonic_in_mode": tonic_in_mode,
    "chord_notes_in_scale": chord_notes_in_scale,
    "melody_coverage": melody_coverage,
    "phrase_ends": phrase_ends,
}


def check_song(score: Score, expect: Expect = Expect()) -> dict[str, CheckResult]:
    """Every check of :data:`CHECKS` on one song, by name."""
    return {name: fn(score, expect) for name, fn in CHECKS.items()}


def passes_all(score: Score, expect: Expect = Expect()) -> bool:
    """True when the song passes every check of :data:`CHECKS`."""
    return all(r.passed for r in check_song(score, expect).values())


def pass_rates(scores: Sequence[Score], expect: Expect = Expect()) -> dict[str, float]:
    """Share of ``scores`` passing each check, and ``"all"`` (passing every one)."""
    if not scores:
        raise ValueError("pass rates need at least one song")
    results = [check_song(s, expect) for s in scores]
    table = np.array([[r[name].passed for name in CHECKS] for r in results], dtype=bool)
    rates = {name: float(table[:, i].mean()) for i, name in enumerate(CHECKS)}
    return rates | {"all": float(table.all(axis=1).mean())}
