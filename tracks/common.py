"""What every layer module shares: the generation context and special token ids.

The context holds, for a batch of songs, the semantic content the layers condition on. Training
fills it from a whole song; the coordinator fills it step by step. Each layer module computes its
conditions for a slice of steps from it, so both paths use the very same code.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields

import numpy as np

from arranger.score import BEATS_PER_BAR, QUALITIES, STEPS_PER_BAR, Score

BOS = 0  # token id 0 of every layer: "start of song", fed as the previous token at step 0
UNKNOWN = -3  # context value of a layer the song does not have (or not yet generated)
NO_CHORD = 12  # chord_root value for "N"
MODES = {"major": 1, "minor": 2}  # context value of the key's mode (0 = unknown)

QUALITY_NAMES = tuple(QUALITIES)

# [chord_root - UNKNOWN, n_qualities] -> 12-bit pitch-class set of the chord (key-relative):
# every context root value has a row (one gather per call), unknown ones and N hold none.
_PCS = np.zeros((NO_CHORD + 1 - UNKNOWN, len(QUALITIES), 12), dtype=np.float32)
for _r in range(12):
    for _q, _iv in enumerate(QUALITIES.values()):
        for _i in _iv:
            _PCS[_r - UNKNOWN, _q, (_r + _i) % 12] = 1.0


@dataclass
class Context:
    """Semantic content of a batch of songs, shapes [B, beats] and [B, steps].

    chord_root : int16, root 0-11 above the tonic, ``NO_CHORD`` or ``UNKNOWN``.
    chord_quality : int16, index into ``QUALITIES`` (0 where there is no chord).
    melody : int16, ``REST``, ``HOLD``, key-relative pitch, or ``UNKNOWN``.
    mode : the key's mode per song, see ``MODES``.
    style : str [B], the drum style per song (a Groove MIDI style), ``""`` when unknown.
    tempo_bpm : float [B], the tempo per song, 0 when unknown.
    """

    chord_root: np.ndarray
    chord_quality: np.ndarray
    melody: np.ndarray
    mode: np.ndarray  # int64 [B]: 0 unknown, 1 major, 2 minor
    style: np.ndarray | None = None
    tempo_bpm: np.ndarray | None = None

    def __post_init__(self) -> None:
        batch = len(self.mode)
        if self.style is None:
            self.style = np.full(batch, "", dtype=object)
        if self.tempo_bpm is None:
            self.tempo_bpm = np.zeros(batch, np.float64)

    @classmethod
    def empty(cls, batch: int, bars: int, mode: str | None = None, style: str = "",
              tempo_bpm: float = 0.0) -> Context:
        beats, steps = bars * BEATS_PER_BAR, bars * STEPS_PER_BAR
        return cls(
            np.full((batch, beats), UNKNOWN, np.int16),
            np.zeros((batch, beats), np.int16),
            np.full((batch, steps), UNKNOWN, np.int16),
            np.full(batch, MODES.get(mode, 0), np.int64),
            np.full(batch, style, dtype=object),
            np.full(batch, float(tempo_bpm), np.float64),
        )

    @classmethod
    def from_score(cls, score: Score, has: frozenset[str] | set[str] = frozenset(
            ("chords", "melody"))) -> Context:
        """Context of one song; layers not in ``has`` are marked unknown."""
        ctx = cls.empty(1, score.bars, score.key.mode, score.style, score.tempo_bpm)
        if "chords" in has:
            for b, chord in enumerate(score.chords):
                ctx.set_chord(b, chord)
        if "melody" in has:
            ctx.melody[0] = score.melody
        return ctx

    def take(self, rows: Sequence[int]) -> None:
        """Keep only these songs (rows, in this order), in place: a batch narrowed part-way
        (to the candidates chosen) goes on with each kept song's context as it was."""
        rows = list(rows)
        for f in fields(self):  # every field is per song, batch first
            setattr(self, f.name, getattr(self, f.name)[rows])

    def set_chord(self, beat: int, chord, row: int = 0) -> None:
        if chord is None:
            self.chord_root[row, beat], self.chord_quality[row, beat] = NO_CHORD, 0
        else:
            self.chord_root[row, beat] = chord.root
            self.chord_quality[row, beat] = QUALITY_NAMES.index(chord.quality)

    def chord_pcs(self, beats: slice) -> np.ndarray:
        """Float [B, n, 12] pitch-class sets of the chords on ``beats`` (zeros if unknown/N)."""
        return _PCS[self.chord_root[:, beats] - UNKNOWN, self.chord_quality[:, beats]]
