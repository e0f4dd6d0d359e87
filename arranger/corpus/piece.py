"""What every corpus reader shares: the rejection, the song it yields and the piece it builds.

Every reader turns its input into a :class:`Piece` (notes and chord annotations on a quarter-note
beat axis, plus the bar structure), and :func:`arranger.corpus.songs.songs_from_piece` turns a
piece into key-relative 4/4 :class:`Song` s on the 16th grid.
A rejected input raises :class:`SkipSong` with a reason of the form ``"category: detail"``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from arranger.score import Score

MAX_FILE_BYTES = 16 * 2**20  # larger files are skipped before parsing


class SkipSong(Exception):
    """A rejected input; ``reason`` reads ``"category: detail"`` (reports count by category)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason or "rejected"

    @property
    def category(self) -> str:
        return self.reason.split(":", 1)[0]


def check_size(n_bytes: int) -> None:
    """Raise :class:`SkipSong` ("too big") for an input over ``MAX_FILE_BYTES``."""
    if n_bytes > MAX_FILE_BYTES:
        raise SkipSong(f"too big: {n_bytes / 2**20:.1f} MB")


def first_line(exc: BaseException) -> str:
    """The first line of an exception's message (its type name when empty), at most 120 chars."""
    text = str(exc).strip().splitlines()
    return (text[0] if text else type(exc).__name__)[:120]


@dataclass(frozen=True)
class Song:
    """One training song: a 4/4 key-relative Score and the layers it truly holds."""

    source: str  # file path (zip: "archive.zip:member.mid"; POP909: the song folder)
    score: Score  # 4/4, quantised to 16ths, key-relative, tempo = median bpm
    layers: frozenset[str]  # which of "chords", "melody", "bass", "drums" it holds
    dataset: str = ""  # "pop909", "groove-gmd", "openewld", "jazz-chord-corpus", "nottingham"


Result = list[Song] | str  # songs, or the reason the file was skipped


@dataclass
class Notes:
    """Notes on a quarter-note beat axis: float beats [n], int pitch and velocity [n]."""

    start: np.ndarray
    end: np.ndarray
    pitch: np.ndarray
    velocity: np.ndarray

    def __len__(self) -> int:
        return len(self.start)

    @classmethod
    def concat(cls, parts: Sequence[Notes]) -> Notes:
        parts = [p for p in parts if p is not None and len(p)]
        if not parts:
            return cls(np.zeros(0), np.zeros(0), np.zeros(0, np.int64), np.zeros(0, np.int64))
        return cls(*(np.concatenate([getattr(p, k) for p in parts])
                     for k in ("start", "end", "pitch", "velocity")))

    def select(self, mask: np.ndarray) -> Notes:
        return Notes(self.start[mask], self.end[mask], self.pitch[mask], self.velocity[mask])


@dataclass
class Piece:
    """A song as read from its file, before it is cut into 4/4 segments on the 16th grid.

    ``bar_starts`` / ``bar_beats``: each bar's first beat and length in quarter notes (a bar of
    length 4 is 4/4, anything else breaks the song into separate segments). ``chords``: annotated
    chord changes ``(beat, (root_pc, quality) | None)`` in absolute pitch classes.
    ``beat_seconds``: seconds of each integer beat (for the tempo), else ``tempo_bpm`` is used.
    """

    source: str = ""
    dataset: str = ""
    melody: Notes | None = None
    harmony: Notes | None = None
    bass: Notes | None = None
    drums: Notes | None = None
    chords: list | None = None
    key_changes: list = field(default_factory=list)  # (beat, Key) from the file
    key_trusted: bool = False  # annotated keys (POP909) are used as they are
    bar_starts: np.ndarray = field(default_factory=lambda: np.zeros(0))
    bar_beats: np.ndarray = field(default_factory=lambda: np.zeros(0))
    beat_seconds: np.ndarray | None = None
    tempo_bpm: float = 100.0
    swing: float = 0.0  # Score.swing: only this tool's own files say
    meters: list[str] = field(default_factory=list)

    def note_layers(self) -> dict[str, Notes]:
        layers = {"melody": self.melody, "harmony": self.harmony, "bass": self.bass,
                  "drums": self.drums}
        return {k: v for k, v in layers.items() if v is not None and len(v)}

    def end_beat(self) -> float:
        ends = [float(n.end.max()) for n in self.note_layers().values()]
        ends += [c[0] + 4 for c in self.chords or []]
        return max(ends, default=0.0)
