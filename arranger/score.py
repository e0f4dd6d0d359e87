"""The score: a 4/4 song on a 16-steps-per-bar grid, every pitch relative to the key.

Times are integer grid steps; seconds appear only when rendering. Pitches are stored relative to
the key's tonic (absolute MIDI pitch = relative pitch + tonic pitch class), so the models never see
the key and are transposition-invariant.

Layers
------
chords : tuple of ``Chord | None`` per beat (4 per bar); ``None`` is "no chord" (N).
melody, bass : int16 array per step: ``REST``, ``HOLD`` or a key-relative MIDI pitch (note-on).
drums : uint16 array per step, a bit mask over ``DRUM_CLASSES``.
drum_velocity : uint8 array per step, a level 0..2 (ghost, normal, accent) for that step's hits.
drum_hit_velocity : None, or uint8 [steps, classes]: the MIDI velocity of each hit (0 where a
    class is not hit); None writes every hit at its step level's ``DRUM_VELOCITIES``.
style : the drum style the song is played in (a Groove MIDI style such as ``"hiphop"``), or
    ``""`` when unknown.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

STEPS_PER_BEAT = 4
BEATS_PER_BAR = 4
STEPS_PER_BAR = STEPS_PER_BEAT * BEATS_PER_BAR
LAYERS = ("chords", "melody", "bass", "drums")

REST = -1
HOLD = -2

PITCH_CLASS_NAMES = ("C", "Db", "D", "Eb", "E", "F", "Gb", "G", "Ab", "A", "Bb", "B")
SHARP_NAMES = ("C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B")
SPELLINGS = {"flats": PITCH_CLASS_NAMES, "sharps": SHARP_NAMES}  # "flats" is the default
_NAME_TO_PC = {n: i for i, n in enumerate(PITCH_CLASS_NAMES)} | {
    "C#": 1, "D#": 3, "E#": 5, "Fb": 4, "F#": 6, "G#": 8, "A#": 10, "Cb": 11, "B#": 0,
}

# Chord qualities as intervals above the root (semitones). Order is the vocabulary order.
QUALITIES: dict[str, tuple[int, ...]] = {
    "maj": (0, 4, 7),
    "min": (0, 3, 7),
    "dim": (0, 3, 6),
    "aug": (0, 4, 8),
    "sus2": (0, 2, 7),
    "sus4": (0, 5, 7),
    "6": (0, 4, 7, 9),
    "m6": (0, 3, 7, 9),
    "7": (0, 4, 7, 10),
    "maj7": (0, 4, 7, 11),
    "m7": (0, 3, 7, 10),
    "m7b5": (0, 3, 6, 10),
    "dim7": (0, 3, 6, 9),
    "7sus4": (0, 5, 7, 10),
    "9": (0, 4, 7, 10, 14),
    "maj9": (0, 4, 7, 11, 14),
    "m9": (0, 3, 7, 10, 14),
}

# Magenta DrumsRNN's 9 classes; the first GM note of each is the one we write.
DRUM_CLASSES = ("kick", "snare", "closed_hat", "open_hat", "low_tom", "mid_tom", "high_tom",
                "crash", "ride")
# Per class, the notes read as it (the first is the one written): General MIDI, and the Roland
# TD-11 notes of the Groove MIDI Dataset as Magenta reduces them to 9 classes (music_vae
# ROLAND_DRUM_PITCH_CLASSES: floor tom 43/58, tom 2 45/47, tom 1 48/50).
DRUM_CLASS_NOTES: tuple[tuple[int, ...], ...] = (
    (36, 35),
    (38, 40, 37, 39),
    (42, 44, 22),
    (46, 26),
    (43, 41, 58),
    (47, 45),
    (50, 48),
    (49, 52, 55, 57, 27),
    (51, 59, 53, 56, 54, 80, 81),
)
DRUM_VELOCITIES = (45, 85, 112)  # MIDI velocity written for level 0 (ghost), 1, 2 (accent)

_PITCH_TO_DRUM_CLASS = {note: cls for cls, notes in enumerate(DRUM_CLASS_NOTES) for note in notes}


def hit_matrix(masks: np.ndarray) -> np.ndarray:
    """Bool [..., classes]: which of ``DRUM_CLASSES`` each drum hit mask [...] holds."""
    return (np.asarray(masks, np.int64)[..., None] >> np.arange(len(DRUM_CLASSES))) & 1 == 1


def velocity_level(velocity: np.ndarray) -> np.ndarray:
    """Drum level per MIDI velocity: 0 (ghost, < 64), 1 (< 100) or 2 (accent); uint8."""
    velocity = np.asarray(velocity)
    return np.where(velocity < 64, 0, np.where(velocity < 100, 1, 2)).astype(np.uint8)


def drum_class_of_pitch(pitch: int) -> int | None:
    """Map a GM / Roland TD-11 drum note to its DrumsRNN class index, or None if unmapped."""
    return _PITCH_TO_DRUM_CLASS.get(int(pitch))


def pitch_class_of_name(name: str) -> int:
    """Pitch class (0-11) of a note name such as ``"Eb"`` or ``"F#"``."""
    try:
        return _NAME_TO_PC[name[:1].upper() + name[1:]]
    except KeyError:
        raise ValueError(f"unknown note name {name!r}") from None


# Tonics (pitch classes) whose key signatures hold sharps, per mode; the others are spelt with
# flats (C major and A minor have no accidentals and keep the flat names of chromatic chords).
_SHARP_TONICS = {"major": frozenset({7, 2, 9, 4, 11, 6}), "minor": frozenset({4, 11, 6, 1, 8})}


def conventional_spelling(tonic: int, mode: str) -> str:
    """"sharps" or "flats": how the key signature of ``tonic`` (0 = C) in ``mode`` spells."""
    return "sharps" if tonic in _SHARP_TONICS.get(mode, ()) else "flats"


@dataclass(frozen=True)
class Key:
    """A key: tonic pitch class (0 = C) and mode ("major" or "minor").

    ``spelling`` ("flats" or "sharps") names its notes and chords the way the key was written
    (``C#m`` -> C#m7, not Dbm7), else as its key signature does (E major: C#m7, not Dbm7); it
    takes no part in equality or hashing, so it never changes what the models see or write.
    """

    tonic: int
    mode: str = "major"
    spelling: str = field(default="", compare=False)  # "" = the key signature's

    def __post_init__(self) -> None:
        if not self.spelling:
            object.__setattr__(self, "spelling", conventional_spelling(self.tonic, self.mode))
        if not 0 <= self.tonic < 12:
            raise ValueError(f"key tonic must be a pitch class 0-11, got {self.tonic}")
        if self.mode not in ("major", "minor"):
            raise ValueError(f"key mode must be 'major' or 'minor', got {self.mode!r}")
        if self.spelling not in SPELLINGS:
            raise ValueError(f"key spelling must be one of {', '.join(SPELLINGS)}, "
                             f"got {self.spelling!r}")

    @classmethod
    def parse(cls, text: str) -> Key:
        """Parse ``"C"``, ``"Am"``, ``"F# minor"``, ``"Eb major"`` or ``"A:min"``."""
        t = text.strip().replace(":", " ")
        parts = t.split()
        if not parts:
            raise ValueError("empty key")
        name, rest = parts[0], " ".join(parts[1:]).lower()
        mode = "major"
        if len(name) > 1 and name.endswith("m") and name[:-1] in _NAME_TO_PC:
            name, mode = name[:-1], "minor"
        if rest in ("minor", "min", "m"):
            mode = "minor"
        elif rest not in ("", "major", "maj"):
            raise ValueError(f"unknown key mode {rest!r} in {text!r}")
        written = "sharps" if "#" in name else "flats" if len(name) > 1 else ""
        return cls(pitch_class_of_name(name), mode, written)

    @property
    def scale(self) -> tuple[int, ...]:
        """Scale degrees as semitones above the tonic (natural minor for minor keys)."""
        return (0, 2, 4, 5, 7, 9, 11) if self.mode == "major" else (0, 2, 3, 5, 7, 8, 10)

    def note_name(self, pitch_class: int) -> str:
        """The name of an absolute pitch class (0 = C) in this key's spelling."""
        return SPELLINGS[self.spelling][pitch_class % 12]

    @property
    def tonic_name(self) -> str:
        return self.note_name(self.tonic)

    def __str__(self) -> str:
        return f"{self.tonic_name} {self.mode}"


@dataclass(frozen=True)
class Chord:
    """A chord relative to the key: root in semitones above the tonic (0-11) and a quality."""

    root: int
    quality: str

    def __post_init__(self) -> None:
        if not 0 <= self.root < 12:
            raise ValueError(f"chord root must be 0-11 semitones above the tonic, got {self.root}")
        if self.quality not in QUALITIES:
            raise ValueError(f"unknown chord quality {self.quality!r}")

    @property
    def intervals(self) -> tuple[int, ...]:
        return QUALITIES[self.quality]

    def pitch_classes(self) -> frozenset[int]:
        """Key-relative pitch classes of the chord tones."""
        return frozenset((self.root + i) % 12 for i in self.intervals)

    def name(self, key: Key) -> str:
        """Absolute chord symbol in ``key``, e.g. ``"Dm7"``."""
        suffix = {"maj": "", "min": "m"}.get(self.quality, self.quality)
        return key.note_name(self.root + key.tonic) + suffix


@dataclass
class Score:
    """A bar-aligned multi-track song. See the module docstring for the layer encodings.

    Arrays are per step (``bars * 16`` long); ``chords`` is per beat (``bars * 4`` long).
    """

    bars: int
    tempo_bpm: float = 80.0
    key: Key = field(default_factory=lambda: Key(0, "major"))
    swing: float = 0.0
    chords: tuple[Chord | None, ...] = ()
    melody: np.ndarray = field(default=None)  # type: ignore[assignment]
    bass: np.ndarray = field(default=None)  # type: ignore[assignment]
    drums: np.ndarray = field(default=None)  # type: ignore[assignment]
    drum_velocity: np.ndarray = field(default=None)  # type: ignore[assignment]
    drum_hit_velocity: np.ndarray | None = None
    style: str = ""

    def __post_init__(self) -> None:
        if self.bars < 1:
            raise ValueError(f"a score needs at least 1 bar, got {self.bars}")
        if not 20 <= self.tempo_bpm <= 300:
            raise ValueError(f"tempo must be 20-300 bpm, got {self.tempo_bpm}")
        if not 0.0 <= self.swing <= 0.75:
            raise ValueError(f"swing must be 0-0.75, got {self.swing}")
        n = self.steps
        self.chords = tuple(self.chords) or (None,) * (self.bars * BEATS_PER_BAR)
        self.melody = _steps(self.melody, n, np.int16, REST, "melody")
        self.bass = _steps(self.bass, n, np.int16, REST, "bass")
        self.drums = _steps(self.drums, n, np.uint16, 0, "drums")
        self.drum_velocity = _steps(self.drum_velocity, n, np.uint8, 1, "drum_velocity")
        if self.drum_hit_velocity is not None:
            self.drum_hit_velocity = np.asarray(self.drum_hit_velocity).astype(np.uint8)
            if self.drum_hit_velocity.shape != (n, len(DRUM_CLASSES)):
                raise ValueError(f"drum_hit_velocity needs shape ({n}, {len(DRUM_CLASSES)}), "
                                 f"got {self.drum_hit_velocity.shape}")
        if len(self.chords) != self.bars * BEATS_PER_BAR:
            raise ValueError(f"chords need {self.bars * BEATS_PER_BAR} beats, "
                             f"got {len(self.chords)}")

    @property
    def steps(self) -> int:
        return self.bars * STEPS_PER_BAR

    @property
    def seconds_per_step(self) -> float:
        return 60.0 / self.tempo_bpm / STEPS_PER_BEAT

    def chord_at_step(self, step: int) -> Chord | None:
        return self.chords[step // STEPS_PER_BEAT]

    def copy(self, **changes) -> Score:
        """A deep copy with ``changes`` applied."""
        arrays = {k: getattr(self, k).copy() for k in ("melody", "bass", "drums", "drum_velocity")}
        hits = None if self.drum_hit_velocity is None else self.drum_hit_velocity.copy()
        return replace(self, **(arrays | {"drum_hit_velocity": hits} | changes))

    def hit_velocities(self) -> np.ndarray:
        """uint8 [steps, classes]: the MIDI velocity each drum hit is written with (0: no hit),
        from ``drum_hit_velocity`` where it has one, else the step level's ``DRUM_VELOCITIES``."""
        hit = hit_matrix(self.drums)
        by_level = np.asarray(DRUM_VELOCITIES, np.uint8)[np.minimum(self.drum_velocity, 2)]
        own = self.drum_hit_velocity
        velocity = by_level[:, None] if own is None else np.where(own > 0, own, by_level[:, None])
        return np.where(hit, velocity, 0).astype(np.uint8)

    def equals(self, other: Score) -> bool:
        """Same grid content (tempo, key, swing and every layer)."""
        return (
            self.bars == other.bars and self.tempo_bpm == other.tempo_bpm
            and self.key == other.key and self.swing == other.swing
            and self.chords == other.chords
            and all(np.array_equal(getattr(self, k), getattr(other, k))
                    for k in ("melody", "bass", "drums", "drum_velocity"))
            and np.array_equal(self.hit_velocities(), other.hit_velocities())
        )


def _steps(values, n: int, dtype, fill: int, name: str) -> np.ndarray:
    if values is None:
        return np.full(n, fill, dtype=dtype)
    arr = np.asarray(values).astype(dtype)
    if arr.shape != (n,):
        raise ValueError(f"{name} needs shape ({n},), got {arr.shape}")
    return arr


def note_spans(line: np.ndarray) -> list[tuple[int, int, int]]:
    """Notes of a monophonic step line as ``(start_step, end_step, relative_pitch)``.

    A ``HOLD`` after a rest (invalid) is treated as a rest.
    """
    notes: list[tuple[int, int, int]] = []
    start, pitch = -1, 0
    for i, v in enumerate(line.tolist()):
        if v == HOLD and start >= 0:
            continue
        if start >= 0:
            notes.append((start, i, pitch))
            start = -1
        if v >= 0:
            start, pitch = i, v
    if start >= 0:
        notes.append((start, len(line), pitch))
    return notes


def line_from_spans(spans, n_steps: int) -> np.ndarray:
    """Inverse of :func:`note_spans`: later notes cut earlier ones (monophony)."""
    line = np.full(n_steps, REST, dtype=np.int16)
    for start, end, pitch in sorted(spans):
        if not 0 <= start < n_steps:
            continue
        line[start] = pitch
        line[start + 1 : min(end, n_steps)] = HOLD
    return line


def sounding(line: np.ndarray) -> np.ndarray:
    """Pitch sounding at each step of step lines [..., T] (holds resolved), -1 for silence."""
    line = np.asarray(line, dtype=np.int64)
    pos = np.where(line != HOLD, np.arange(line.shape[-1]), 0)
    last = np.maximum.accumulate(pos, axis=-1)
    values = np.take_along_axis(line, last, axis=-1)
    return np.where(values >= 0, values, -1)
