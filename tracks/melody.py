"""Melody layer: monophonic, one token per 16th step, key-relative.

Tokens: 0 = start, 1 = rest, 2 = hold (the sounding note goes on), ``3 + pitch - LOW`` = note-on of
key-relative MIDI pitch ``pitch`` in ``LOW..HIGH-1``.
Conditions at step t: chord root and quality of the beat (0 = unknown), step in bar, bar in a
4-bar phrase, and (multi-hot) the chord's key-relative pitch classes.
"""

from __future__ import annotations

import numpy as np

from arranger.score import HOLD, QUALITIES, REST, STEPS_PER_BAR, STEPS_PER_BEAT, Score
from tracks.common import NO_CHORD, UNKNOWN, Context

REST_TOKEN, HOLD_TOKEN, FIRST_PITCH_TOKEN = 1, 2, 3
LOW, HIGH = 48, 96  # key-relative pitch range the model writes (C3..B6 in C)
VOCAB_SIZE = FIRST_PITCH_TOKEN + HIGH - LOW
COND_SIZES = (14, 1 + len(QUALITIES), STEPS_PER_BAR, 4)
MULTI_HOT = 12
VOCAB = ["<start>", "rest", "hold"] + [f"pitch:{p}" for p in range(LOW, HIGH)]


def fit_range(line: np.ndarray, center: bool = True) -> np.ndarray:
    """Move a step line by whole octaves so that its notes fit ``LOW..HIGH`` where possible.

    ``center`` (training) also moves the line's median near 72, so every song is learnt in one
    register; without it a line already inside the range is kept as it is (a primer).
    """
    line = line.copy()
    notes = line >= 0
    inside = notes.any() and line[notes].min() >= LOW and line[notes].max() < HIGH
    if not notes.any() or (inside and not center):
        return line
    shift = 12 * int(round((72 - float(np.median(line[notes]))) / 12))
    line[notes] += shift
    while line[notes].max() >= HIGH:
        line[notes & (line >= HIGH)] -= 12
    while line[notes].min() < LOW:
        line[notes & (line < LOW)] += 12
    return line


def encode(score: Score) -> np.ndarray:
    """Melody tokens per step, int64 [steps]; pitches outside the range are folded by octaves."""
    return tokens_of(fit_range(score.melody))


def tokens_of(line: np.ndarray) -> np.ndarray:
    line = np.asarray(line, dtype=np.int64)
    tokens = np.where(line == HOLD, HOLD_TOKEN, REST_TOKEN)
    notes = line >= 0
    tokens[notes] = FIRST_PITCH_TOKEN + np.clip(line[notes], LOW, HIGH - 1) - LOW
    return tokens


def decode(tokens: np.ndarray) -> np.ndarray:
    """Step line (int16) of melody tokens; the start token decodes as a rest."""
    tokens = np.asarray(tokens, dtype=np.int64)
    line = np.where(tokens == HOLD_TOKEN, HOLD, REST)
    notes = tokens >= FIRST_PITCH_TOKEN
    line[notes] = tokens[notes] - FIRST_PITCH_TOKEN + LOW
    return line.astype(np.int16)


# Per context chord root (index ``root - UNKNOWN``): its condition value (0 unknown, 1 N, else
# 2 + root) and whether a quality goes with it (a root of a chord).
_ROOTS = np.arange(UNKNOWN, NO_CHORD + 1)
_ROOT_COND = np.where(_ROOTS == UNKNOWN, 0, np.where(_ROOTS == NO_CHORD, 1, _ROOTS + 2))
_HAS_QUALITY = (_ROOTS >= 0) & (_ROOTS != NO_CHORD)


def conditions(ctx: Context, start: int, stop: int) -> tuple[np.ndarray, np.ndarray]:
    """Conditions of steps ``start:stop``: long [B, n, 4] and float [B, n, 12]."""
    steps = np.arange(start, stop)
    beats = slice(start // STEPS_PER_BEAT, (stop - 1) // STEPS_PER_BEAT + 1)
    per_step = steps // STEPS_PER_BEAT - beats.start
    root = ctx.chord_root[:, beats] - UNKNOWN  # [B, beats]: rows of the tables above
    cond = np.empty((len(root), len(steps), 4), dtype=np.int64)
    cond[..., 0] = _ROOT_COND[root][:, per_step]
    cond[..., 1] = ((ctx.chord_quality[:, beats] + 1) * _HAS_QUALITY[root])[:, per_step]
    cond[..., 2] = steps % STEPS_PER_BAR
    cond[..., 3] = (steps // STEPS_PER_BAR) % 4
    multi = ctx.chord_pcs(beats)[:, per_step]
    return cond, multi


def token_mask(prev: np.ndarray, low: int = LOW, high: int = HIGH) -> np.ndarray:
    """Allowed next tokens [B, V] given previous tokens [B]: the range, and no hold after a rest."""
    mask = np.zeros((len(prev), VOCAB_SIZE), dtype=bool)
    mask[:, REST_TOKEN] = True
    mask[:, HOLD_TOKEN] = prev >= FIRST_PITCH_TOKEN
    mask[:, HOLD_TOKEN] |= prev == HOLD_TOKEN
    lo = FIRST_PITCH_TOKEN + max(low, LOW) - LOW
    hi = FIRST_PITCH_TOKEN + min(high, HIGH) - LOW
    mask[:, lo:hi] = True
    return mask


REGISTER_CENTER = 72  # key-relative pitch the training melodies are centred on (fit_range)


def register_shift(low: int, high: int) -> int:
    """Octaves (in semitones) that move the key-relative range ``low..high`` around the
    register the model learnt in; the song's melody is moved back by as much."""
    return 12 * round((REGISTER_CENTER - (low + high) / 2) / 12)


def shift_tokens(tokens: np.ndarray, semitones: int) -> np.ndarray:
    """Transpose the note-on tokens of ``tokens`` (rests, holds and start stay)."""
    tokens = np.asarray(tokens, dtype=np.int64)
    pitch = tokens >= FIRST_PITCH_TOKEN
    moved = np.clip(tokens + semitones, FIRST_PITCH_TOKEN, VOCAB_SIZE - 1)
    return np.where(pitch, moved, tokens)
