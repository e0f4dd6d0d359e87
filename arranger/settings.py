"""Settings a user writes (in a preset) that the engine reads: declared once, here.

``SongSettings`` is the song's feel and form; ``Sampling`` how a layer model samples.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Sampling:
    """How one layer samples: softmax temperature and nucleus (top-p) mass."""

    temperature: float = 1.0
    top_p: float = 0.95


@dataclass(frozen=True)
class SongSettings:
    """Feel and form of the song."""

    tempo_bpm: float = 80.0  # quarter notes per minute, 40..200
    key: str = "C major"  # tonic and mode, e.g. "F minor", "Eb major", "Am"
    swing: float = 0.0  # delay of off-beat 16ths as a fraction of a 16th, 0..0.75
    bars: int = 32  # song length in 4/4 bars, 2..512
    loop_bars: int = 4  # chord progression repeats every N bars (0 = through-composed)
    ending: bool = True  # close on the tonic with a final note and a crash
    melody_range: tuple[int, int] = (60, 84)  # lowest and highest melody note (MIDI)
    chord_color: str = "natural"  # triads, natural (as the model writes), sevenths or ninths
    drum_kit: str = "full"  # full, sparse (kick, snare, ride, crash only) or none
    drum_loop_bars: int = 2  # drums repeat every N bars, with a fill every 4th bar (0 = free)
    melody_gap_bars: float = 1.0  # longer without a new melody note gets ever less likely (0 = off)
    melody_form: str = ""  # a letter per phrase of loop_bars, e.g. "AABA": a letter seen before
    # repeats that phrase's melody ("" = every phrase new)
