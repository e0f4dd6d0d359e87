"""The song's settings (``[song]`` of a preset) and how a layer model samples (``[sampling]``).

``SongSettings`` is the song's feel and form; ``Sampling`` how a layer model samples. Both are
declared with :func:`arranger.settings.setting` and read by :func:`arranger.settings.parse`.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from arranger.compose.sections import Section, replace_bars
from arranger.score import Key
from arranger.settings import Settings, setting
from tracks.drums import KITS, STYLE_PROFILES

CHORD_COLORS = ("triads", "natural", "sevenths", "ninths")
DRUM_KITS = tuple(KITS)
DRUM_STYLES = ("", *STYLE_PROFILES)  # "" = no style preference


def _is_key(text: str) -> bool:
    try:
        Key.parse(text)
    except ValueError:
        return False
    return True


def _is_form(text: str) -> bool:
    return len(text) <= 32 and all("A" <= c <= "Z" for c in text)


@dataclasses.dataclass(frozen=True)
class Sampling(Settings):
    """How one layer samples: softmax temperature and nucleus (top-p) mass."""

    temperature: float = setting(1.0, low=0.05, high=3.0, help="softmax temperature")
    top_p: float = setting(0.95, low=0.05, high=1.0, help="nucleus mass kept when sampling")


@dataclasses.dataclass(frozen=True)
class SongSettings(Settings):
    """Feel and form of the song."""

    tempo_bpm: float = setting(80.0, low=40, high=200, unit="bpm",
                               help="quarter notes per minute")
    key: str = setting("C major", check=_is_key, expected="a key like 'F minor', 'Eb', 'Am'",
                       help="tonic and mode, e.g. 'F minor', 'Eb major', 'C#m'")
    swing: float = setting(0.0, low=0.0, high=0.75, unit="16ths",
                           help="delay of off-beat 16ths as a fraction of a 16th")
    bars: int = setting(32, low=2, high=512, unit="bars", help="song length in 4/4 bars")
    loop_bars: int = setting(4, low=0, high=64, unit="bars",
                             help="the chord progression repeats every N bars "
                                  "(0 = through-composed)")
    ending: bool = setting(True, help="close on the tonic with a final note and a crash")
    melody_range: tuple[int, int] = setting(
        (60, 84), low=36, high=100, unit="MIDI notes", check=lambda r: r[1] - r[0] >= 12,
        expected="[low, high] MIDI notes in 36..100, at least an octave apart",
        help="lowest and highest melody note")
    chord_color: str = setting("natural", choices=CHORD_COLORS,
                               help="triads, natural (as the model writes), sevenths or ninths")
    drum_kit: str = setting("full", choices=DRUM_KITS,
                            help="full, sparse (kick, snare, ride, crash only; the hats' "
                                 "quarter notes on the ride), ride (hats on the ride) or none")
    drum_loop_bars: int = setting(2, low=0, high=16, unit="bars",
                                  help="drums repeat every N bars, with a fill every 4th bar "
                                       "(0 = free)")
    melody_gap_bars: float = setting(1.0, low=0, high=16, unit="bars",
                                     help="longer without a new melody note gets ever less "
                                          "likely, and so does a bar inside a phrase without "
                                          "one (0 = off)")
    melody_form: str = setting("", check=_is_form,
                               expected='capital letters, one per phrase, like "AABA" '
                                        '(or "" for none)',
                               help="a letter per phrase of loop_bars: a letter seen before "
                                    "repeats that phrase's melody")
    drum_style: str = setting("", choices=DRUM_STYLES,
                              help="the Groove MIDI style the drum model plays (its style "
                                   "input, with the tempo) and whose hits per bar the kept "
                                   "candidate matches best (\"\" = none)")
    candidates: int = setting(1, low=1, high=64, unit="songs",
                              help="songs sampled per song written, in one batch: the one "
                                   "passing the most musical checks, then the likeliest, is kept")
    sections: tuple[Section, ...] = setting(
        (), check=lambda s: sum(x.bars for x in s) <= 512,
        expected="a list of [[song.sections]] tables, 512 bars at most in all",
        help="the song's form: named sections and the layers playing in each; the song is "
             "their sum (bars is then derived)")

    @classmethod
    def parse_at(cls, d: Any, file: str, path: str) -> SongSettings:
        """As declared; with sections and no ``bars``, the song is their sum (a ``bars`` given
        fits the form to that length: :func:`arranger.compose.sections.fit`)."""
        song = super().parse_at(d, file, path)
        return song if "bars" in d else replace_bars(song, song.sections)
