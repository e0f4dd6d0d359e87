"""Chord layer: one chord symbol per beat, key-relative.

Tokens: 0 = start, 1 = no chord (N), then ``2 + root * n_qualities + quality``.
Conditions at beat b: beat in bar, bar in an 8-bar phrase, whether the melody is known, the
key's mode (major/minor progressions differ even relative to the tonic), and (multi-hot) the
key-relative pitch classes the melody sounded during the previous beat.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np

from arranger.evaluation.checks import scale_of
from arranger.score import (
    BEATS_PER_BAR,
    QUALITIES,
    REST,
    STEPS_PER_BEAT,
    Chord,
    Key,
    Score,
    sounding,
)
from tracks.common import NO_CHORD, QUALITY_NAMES, UNKNOWN, Context

N_TOKEN = 1
VOCAB_SIZE = 2 + 12 * len(QUALITIES)
COND_SIZES = (BEATS_PER_BAR, 8, 2, 3)  # beat in bar, bar in phrase, melody known, mode
MULTI_HOT = 12
VOCAB = ["<start>", "N"] + [f"{r}:{q}" for r in range(12) for q in QUALITY_NAMES]


def token_of(chord: Chord | None) -> int:
    if chord is None:
        return N_TOKEN
    return 2 + chord.root * len(QUALITIES) + QUALITY_NAMES.index(chord.quality)


def chord_of(token: int) -> Chord | None:
    """Inverse of :func:`token_of`; the start token decodes as no chord."""
    if token < 2:
        return None
    root, quality = divmod(int(token) - 2, len(QUALITIES))
    return Chord(root, QUALITY_NAMES[quality])


def encode(score: Score) -> np.ndarray:
    """Chord tokens per beat, int64 [beats]."""
    return np.array([token_of(c) for c in score.chords], dtype=np.int64)


def decode(tokens: Iterable[int]) -> tuple[Chord | None, ...]:
    return tuple(chord_of(t) for t in tokens)


def conditions(ctx: Context, start: int, stop: int) -> tuple[np.ndarray, np.ndarray]:
    """Conditions of beats ``start:stop``: long [B, n, 4] and float [B, n, 12]."""
    beats = np.arange(start, stop)
    batch = ctx.melody.shape[0]
    cond = np.empty((batch, len(beats), 4), dtype=np.int64)
    cond[..., 3] = ctx.mode[:, None]
    cond[..., 0] = beats % BEATS_PER_BAR
    cond[..., 1] = (beats // BEATS_PER_BAR) % 8
    prev = _previous_beat_melody(ctx.melody, beats)  # [B, n, STEPS_PER_BEAT]
    known = np.logical_and.reduce(prev != UNKNOWN, axis=-1)
    cond[..., 2] = known
    pitch = _sounding_pitches(ctx.melody, beats)
    heard = _PC_HOT[np.where(pitch >= 0, pitch % 12, 12)]  # [B, n, STEPS_PER_BEAT, 12]
    multi = (np.logical_or.reduce(heard, axis=2) & known[..., None]).astype(np.float32)
    return cond, multi


_PC_HOT = np.eye(13, 12, dtype=bool)  # pitch class -> its one-hot; 12 (nothing) -> none
LOOKBACK_STEPS = 64  # a note held longer than 4 bars before a beat is forgotten


def _previous_beat_melody(melody: np.ndarray, beats: np.ndarray) -> np.ndarray:
    idx = (beats[:, None] - 1) * STEPS_PER_BEAT + np.arange(STEPS_PER_BEAT)
    out = melody[:, np.maximum(idx, 0)]
    out[:, beats == 0] = REST  # nothing was heard before the first beat
    return out


def _sounding_pitches(melody: np.ndarray, beats: np.ndarray) -> np.ndarray:
    """Pitch sounding at each step of the previous beat (held notes resolved), else -1."""
    out = np.full((melody.shape[0], len(beats), STEPS_PER_BEAT), -1, dtype=np.int64)
    for j, beat in enumerate(beats.tolist()):
        if beat == 0:
            continue
        first = (beat - 1) * STEPS_PER_BEAT
        lookback = max(0, first - LOOKBACK_STEPS)
        out[:, j] = sounding(melody[:, lookback : first + STEPS_PER_BEAT])[:, -STEPS_PER_BEAT:]
    return out


# --- chord recognition and naming -------------------------------------------------------------

_TEMPLATES = np.array([[1.0 if pc in iv_set else 0.0 for pc in range(12)]
                       for iv_set in ({i % 12 for i in iv} for iv in QUALITIES.values())])
_PREFERENCE = np.array([0.06, 0.06, 0.0, 0.0, 0.0, 0.0, 0.02, 0.0, 0.04, 0.04, 0.04, 0.02, 0.0,
                        0.0, 0.0, 0.0, 0.0])  # small tie-breaks towards common lo-fi chords


def quality_from_intervals(intervals: Iterable[int]) -> str:
    """The quality in ``QUALITIES`` whose interval set best matches ``intervals`` (Jaccard)."""
    vec = np.zeros(12)
    for i in intervals:
        vec[int(i) % 12] = 1.0
    inter = _TEMPLATES @ vec
    union = _TEMPLATES.sum(1) + vec.sum() - inter
    return QUALITY_NAMES[int(np.argmax(inter / union + _PREFERENCE))]


_ROLL = (np.arange(12)[:, None] + np.arange(12)[None, :]) % 12  # [root, j] -> (root + j) % 12


def match_chords(weights: np.ndarray, bass: np.ndarray) -> list[tuple[int, str]]:
    """Best (root pitch class, quality) for each row of pitch-class weights.

    Scores every root/template by weighted overlap minus weight outside the template, with a
    bonus when the lowest note is the root (so C6 and Am7 are told apart by the bass); exact
    ties go to the lowest root.

    Parameters
    ----------
    weights : float [n, 12] pitch-class weights, each row with a positive sum.
    bass : int [n] lowest MIDI pitch (or pitch class) per row, -1 for none.
    """
    w = np.asarray(weights, dtype=np.float64)
    w = w / w.sum(axis=1, keepdims=True)
    rolled = w[:, _ROLL]  # [n, root, 12]
    scores = rolled @ _TEMPLATES.T - rolled @ (1 - _TEMPLATES).T  # [n, root, quality]
    scores -= 0.04 * _TEMPLATES.sum(1) - _PREFERENCE
    bass = np.asarray(bass, dtype=np.int64)
    has_bass = bass >= 0
    scores[np.flatnonzero(has_bass), bass[has_bass] % 12] += 0.15
    best = np.argmax(np.round(scores, 9).reshape(len(w), -1), axis=1)
    return [(int(b) // len(QUALITIES), QUALITY_NAMES[int(b) % len(QUALITIES)])
            for b in best.tolist()]


def chord_from_pitch_classes(weights: Sequence[float], bass_pc: int | None = None,
                             min_weight: float = 1e-6) -> tuple[int, str] | None:
    """:func:`match_chords` for one 12-bin weight vector; None when it holds no weight."""
    w = np.asarray(weights, dtype=np.float64)
    if w.sum() <= min_weight:
        return None
    return match_chords(w[None], np.array([-1 if bass_pc is None else bass_pc]))[0]


def absolute_name(chord: Chord | None, key: Key) -> str:
    return "N" if chord is None else chord.name(key)


def voice(chords: Sequence[Chord | None], key: Key, low: int = 52, high: int = 76
          ) -> list[tuple[int, int, tuple[int, ...]]]:
    """Keyboard voicings ``(start_beat, end_beat, midi_pitches)`` with smooth voice leading.

    Repeated chords merge into one held voicing. Each chord uses at most four tones (the fifth is
    dropped first from five-note chords) in close position within ``low..high``, choosing the
    inversion nearest the previous voicing.
    """
    spans: list[tuple[int, int, tuple[int, ...]]] = []
    previous: tuple[int, ...] | None = None
    beat = 0
    while beat < len(chords):
        end = beat + 1
        while end < len(chords) and chords[end] == chords[beat]:
            end += 1
        chord = chords[beat]
        if chord is not None:
            previous = _nearest_voicing(chord, key, previous, low, high)
            spans.append((beat, end, previous))
        beat = end
    return spans


def _nearest_voicing(chord: Chord, key: Key, previous, low: int, high: int) -> tuple[int, ...]:
    tones = list(dict.fromkeys(i % 12 for i in chord.intervals))
    if len(tones) > 4:
        tones.remove(7)
    root_pc = (chord.root + key.tonic) % 12
    pcs = [(root_pc + t) % 12 for t in tones]
    target = (low + high) / 2 if previous is None else float(np.mean(previous))
    best, best_cost = None, np.inf
    for inversion in range(len(pcs)):
        order = pcs[inversion:] + pcs[:inversion]
        for base in range(low, high - 6):
            if base % 12 != order[0]:
                continue
            notes = [base]
            for pc in order[1:]:
                notes.append(notes[-1] + (pc - notes[-1]) % 12)
            if notes[-1] > high:
                continue
            cost = (sum(abs(a - b) for a, b in zip(notes, previous, strict=False))
                    if previous and len(previous) == len(notes) else abs(np.mean(notes) - target))
            if cost < best_cost:
                best, best_cost = tuple(notes), cost
    return best or tuple(sorted(60 + pc if 60 + pc <= 71 else 48 + pc for pc in pcs))


def context_values(token: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(chord_root, chord_quality) context values (int16) for a batch of chord tokens."""
    return _CONTEXT_ROOT[token], _CONTEXT_QUALITY[token]


def _context_tables() -> tuple[np.ndarray, np.ndarray]:
    """Token -> its chord's root (``NO_CHORD`` for the start and N tokens) and quality (0)."""
    t = np.arange(VOCAB_SIZE) - 2
    root = np.where(t >= 0, t // len(QUALITIES), NO_CHORD)
    quality = np.where(t >= 0, t % len(QUALITIES), 0)
    return root.astype(np.int16), quality.astype(np.int16)


_CONTEXT_ROOT, _CONTEXT_QUALITY = _context_tables()


# --- colour, key and movement ---------------------------------------------------------------

_TRIAD = {"maj7": "maj", "m7": "min", "7": "maj", "6": "maj", "m6": "min", "9": "maj",
          "maj9": "maj", "m9": "min", "7sus4": "sus4", "m7b5": "dim", "dim7": "dim"}
# (triad, seventh above the root in semitones) -> the seventh chord; a triad without an entry
# (sus2, aug, a minor triad under a major seventh) keeps its quality.
_SEVENTHS = {("maj", 11): "maj7", ("maj", 10): "7", ("min", 10): "m7", ("dim", 10): "m7b5",
             ("dim", 9): "dim7", ("sus4", 10): "7sus4"}
_NINTHS = {"maj7": "maj9", "7": "9", "m7": "m9"}  # a seventh chord with its major ninth
_KEPT = frozenset({"6", "m6", "sus2", "aug"})  # colours "sevenths" keeps as the model wrote them
MAJOR_NINTH = 14


def functional_quality(chord: Chord, color: str, mode: str = "major") -> str:
    """The quality ``chord`` takes in chord colour ``color``, from the key's scale.

    ``triads`` reduces to the triad; ``natural`` keeps the model's chord; ``sevenths`` adds the
    seventh the scale holds above the root (:func:`arranger.evaluation.checks.scale_of`), so
    the function decides the colour: V7 (also in minor, whose V takes the leading tone), m7 on
    a minor tonic, maj7 on I and IV, m7b5 on ii of minor; ``ninths`` adds the major ninth
    where the scale holds it too (I maj9, V9, i m9; iii and v stay m7, ii of minor m7b5).
    """
    if color == "natural":
        return chord.quality
    triad = _TRIAD.get(chord.quality, chord.quality)
    if color == "triads":
        return triad
    if color == "sevenths" and chord.quality in _KEPT:
        return chord.quality
    scale = scale_of(chord, mode)
    sevenths = [iv for iv in (10, 11, 9) if (chord.root + iv) % 12 in scale
                and (triad, iv) in _SEVENTHS]
    quality = _SEVENTHS[(triad, sevenths[0])] if sevenths else triad
    if color == "ninths" and (chord.root + MAJOR_NINTH) % 12 in scale:
        quality = _NINTHS.get(quality, quality)
    return quality


def recolor(chords: Sequence[Chord | None], color: str, mode: str = "major"
            ) -> tuple[Chord | None, ...]:
    """Re-spell chord qualities to a colour (see :func:`functional_quality`) in ``mode``."""
    return tuple(None if c is None else Chord(c.root, functional_quality(c, color, mode))
                 for c in chords)


def recolor_table(color: str, mode: str = "major") -> np.ndarray:
    """Token -> token map applying :func:`recolor` (start and N map to themselves)."""
    table = np.arange(VOCAB_SIZE)
    for tok in range(2, VOCAB_SIZE):
        table[tok] = token_of(recolor([chord_of(tok)], color, mode)[0])
    return table


def in_scale(chord: Chord | None, mode: str) -> bool:
    """Every tone of ``chord`` lies in the key's scale for it (no chord: True)."""
    return chord is None or chord.pitch_classes() <= scale_of(chord, mode)


def scale_mask(color: str, mode: str) -> np.ndarray:
    """Bool [VOCAB_SIZE]: chord tokens the model may write in ``mode`` under ``color``.

    A chord is allowed when both the model's own chord and its colour keep to the key's scale
    (minor keys allow the leading tone on V, so V and V7 stay): the chord model keeps the mode.
    The start and N tokens are left allowed (the caller decides about them).
    """
    table = recolor_table(color, mode)
    mask = np.ones(VOCAB_SIZE, dtype=bool)
    for tok in range(2, VOCAB_SIZE):
        mask[tok] = in_scale(chord_of(tok), mode) and in_scale(chord_of(int(table[tok])), mode)
    return mask


def _identity_table() -> np.ndarray:
    """Token -> chord identity (root and triad, as the chords-move check counts), -1 for none."""
    triads = sorted({iv[:3] for iv in QUALITIES.values()})
    ids = np.full(VOCAB_SIZE, -1, dtype=np.int64)
    for tok in range(2, VOCAB_SIZE):
        chord = chord_of(tok)
        ids[tok] = chord.root * len(triads) + triads.index(chord.intervals[:3])
    return ids


IDENTITY = _identity_table()
# Identity -> bool [VOCAB_SIZE]: the tokens of that identity (a gather, not an isin per row).
_OF_IDENTITY = IDENTITY[None, :] == np.arange(IDENTITY.max() + 1)[:, None]


def change_slots(window_bars: int, needed: int) -> tuple[int, ...]:
    """Beats (from a window's start) where a chord change can be required.

    Downbeats of every bar but the last (the last bar of a window may be the song's forced
    ending) when those are at least ``needed``, else of every bar; half bars, then every
    beat, when there are still fewer slots than chords needed.
    """
    bars = window_bars - 1 if window_bars > needed else window_bars
    for spacing in (BEATS_PER_BAR, BEATS_PER_BAR // 2, 1):
        slots = tuple(range(0, bars * BEATS_PER_BAR, spacing))
        if len(slots) >= needed:
            return slots
    return slots


def move_mask(window: np.ndarray, offset: int, window_bars: int, needed: int) -> np.ndarray:
    """Bool [B, VOCAB_SIZE]: chords allowed at beat ``offset`` of a window so the loop moves.

    ``window`` int [B, offset] holds the chord tokens written so far in this window. Where the
    chords still missing (``needed`` distinct identities, see :data:`IDENTITY`) would not fit
    in the change slots left (:func:`change_slots`), chords already heard are masked out, so
    every ``window_bars`` window holds at least ``needed`` chords by its last bar.
    """
    mask = np.ones((len(window), VOCAB_SIZE), dtype=bool)
    slots = change_slots(window_bars, needed)
    if offset not in slots:
        return mask
    left = len(slots) - slots.index(offset)
    ids = IDENTITY[window]
    for row in range(len(window)):
        heard = set(ids[row][ids[row] >= 0].tolist())
        if needed - len(heard) >= left:
            mask[row] = ~np.logical_or.reduce(_OF_IDENTITY[list(heard)], axis=0)
    return mask
