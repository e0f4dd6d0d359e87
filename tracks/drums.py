"""Drum layer: per 16th step one token for the set of hits (9 DrumsRNN classes) and a level.

Tokens: 0 = start, 1 = silence, then one token per ``(hit mask, velocity level)`` pair seen at
least ``min_count`` times in the training data (the vocabulary travels with the weights). A pair
outside the vocabulary is reduced to the nearest one by dropping its least essential hits.
Conditions at step t: step in bar, bar in a 4-bar phrase, chord change at this step and melody
onset at this step (each 0 = unknown, 1 = no, 2 = yes), the song's style (0 = unknown, then
:data:`GROOVE_STYLES`) and its tempo bucket (0 = unknown, then :data:`TEMPO_EDGES`). A model
trained with fewer conditions (the first four: weights from before style and tempo) reads only
the columns its config has; the others are computed all the same.

Velocities: a model's card may hold a :class:`VelocityTable` (per style, class, step in bar and
level, the mean MIDI velocity of the Groove performances); a song's hits are then written at
those velocities, else each at its step level's ``DRUM_VELOCITIES``.
"""

from __future__ import annotations

import functools
from collections import Counter
from collections.abc import Iterable, Sequence

import numpy as np

from arranger.score import (
    DRUM_CLASSES,
    HOLD,
    STEPS_PER_BAR,
    STEPS_PER_BEAT,
    Score,
    hit_matrix,
    velocity_level,
)
from tracks.common import UNKNOWN, Context

# The main styles of the Groove MIDI Dataset's info.csv ("funk/groove1" -> "funk"); condition
# value 1 + index, 0 = unknown.
GROOVE_STYLES = ("afrobeat", "afrocuban", "blues", "country", "dance", "funk", "gospel",
                 "highlife", "hiphop", "jazz", "latin", "middleeastern", "neworleans", "pop",
                 "punk", "reggae", "rock", "soul")
# Tempo bucket edges, bpm: 8 buckets over 60-140 (the first and last open-ended); condition
# value 1 + bucket, 0 = unknown. Lo-fi sits at 60-95, the Groove lo-fi styles at 80-120.
TEMPO_EDGES = (70.0, 80.0, 90.0, 100.0, 110.0, 120.0, 130.0)
SILENCE_TOKEN = 1
COND_SIZES = (STEPS_PER_BAR, 4, 3, 3, len(GROOVE_STYLES) + 1, len(TEMPO_EDGES) + 2)
STYLE_COND, TEMPO_COND = 4, 5  # their columns
MULTI_HOT = 0
GHOST, NORMAL, ACCENT = 0, 1, 2  # drum levels (see arranger.score.velocity_level)


def drum_mask(*names: str) -> int:
    """Hit mask of the named classes of ``DRUM_CLASSES``, e.g. ``drum_mask("kick", "crash")``."""
    mask = 0
    for name in names:
        if name not in DRUM_CLASSES:
            raise ValueError(f"unknown drum class {name!r} (known: {', '.join(DRUM_CLASSES)})")
        mask |= 1 << DRUM_CLASSES.index(name)
    return mask


ALL_DRUMS = drum_mask(*DRUM_CLASSES)
# The drums each kit of a preset's ``drum_kit`` plays.
KITS: dict[str, tuple[str, ...]] = {"full": DRUM_CLASSES,
                                    "sparse": ("kick", "snare", "crash", "ride"), "none": (),
                                    "ride": ("kick", "snare", "low_tom", "mid_tom", "high_tom",
                                             "crash", "ride")}
# What a kit without hats plays their part on, and on every how many steps: time is kept on
# the ride (a jazz drummer's way); the sparse kit rides quarter notes only, so it stays sparse.
KIT_SUBSTITUTES: dict[str, dict[str, tuple[str, int]]] = {
    "sparse": {"closed_hat": ("ride", 4), "open_hat": ("ride", 4)},
    "ride": {"closed_hat": ("ride", 1), "open_hat": ("ride", 1)},
}


# Hits per bar of the main drums in the Groove MIDI beats of each style (phase-aligned and
# trimmed, arranger.corpus.groove; measured by benchmarks/music_checks.py): a preset's
# ``drum_style`` picks, among its candidate grooves, the one played most like this.
STYLE_PROFILES: dict[str, dict[str, float]] = {
    "hiphop": {"kick": 4.5, "snare": 3.7, "closed_hat": 7.2, "open_hat": 1.45, "ride": 0.63},
    "soul": {"kick": 3.8, "snare": 4.5, "closed_hat": 7.5, "open_hat": 0.59, "ride": 1.0},
    "funk": {"kick": 4.0, "snare": 5.5, "closed_hat": 7.5, "open_hat": 1.03, "ride": 1.35},
    "jazz": {"kick": 2.3, "snare": 4.2, "closed_hat": 2.6, "open_hat": 0.26, "ride": 3.3},
}


def on_kit(masks: np.ndarray, kit: str) -> np.ndarray:
    """Hit masks (int [steps], from a bar's first step) as kit ``kit`` of :data:`KITS` plays
    them: drums it lacks move to their :data:`KIT_SUBSTITUTES` stand-in (on its steps) where
    it has one, else are dropped."""
    masks = np.asarray(masks, dtype=np.int64)
    out = masks.copy()
    steps = np.arange(len(masks))
    for name, (stand_in, every) in KIT_SUBSTITUTES.get(kit, {}).items():
        moved = (masks & drum_mask(name)).astype(bool) & (steps % every == 0)
        out = np.where(moved, out | drum_mask(stand_in), out)
    return out & drum_mask(*KITS[kit])


# Hits dropped first when a combination is rare: toms, crash, open hat, ride, then the rest.
_DROP_ORDER = tuple(DRUM_CLASSES.index(name) for name in (
    "high_tom", "mid_tom", "low_tom", "crash", "open_hat", "ride", "closed_hat", "snare", "kick"))


class DrumVocab:
    """The ``(mask, level)`` pairs a drum model knows; index i is token ``i + 2``."""

    def __init__(self, pairs: Sequence[tuple[int, int]]) -> None:
        self.pairs = [tuple(int(v) for v in p) for p in pairs]
        self.index = {p: i + 2 for i, p in enumerate(self.pairs)}
        self._mask = np.array([0, 0] + [m for m, _ in self.pairs], dtype=np.int64)
        self._level = np.array([1, 1] + [lv for _, lv in self.pairs], dtype=np.int64)

    @property
    def size(self) -> int:
        return len(self.pairs) + 2

    def to_list(self) -> list[str]:
        """Vocabulary as stored with the weights: one ``"mask:level"`` string per token."""
        return ["<start>", "silence"] + [f"{m}:{lv}" for m, lv in self.pairs]

    @classmethod
    def from_list(cls, items: Sequence[str]) -> DrumVocab:
        """The vocabulary of a weights file's list; parsed once per distinct list (every
        song generated asks for it, and parsing ~500 pairs costs ~30 ms). Read-only."""
        return _parsed_vocab(tuple(items))

    def token(self, mask: int, level: int) -> int:
        if mask == 0:
            return SILENCE_TOKEN
        for m in _reductions(mask):
            for lv in (level, 1, 2, 0):
                tok = self.index.get((m, lv))
                if tok is not None:
                    return tok
        return SILENCE_TOKEN

    def mask_of(self, tokens: np.ndarray) -> np.ndarray:
        return self._mask[np.asarray(tokens, dtype=np.int64)]

    def level_of(self, tokens: np.ndarray) -> np.ndarray:
        return self._level[np.asarray(tokens, dtype=np.int64)]


@functools.lru_cache(maxsize=8)
def _parsed_vocab(items: tuple[str, ...]) -> DrumVocab:
    if list(items[:2]) != ["<start>", "silence"]:
        raise ValueError("drum vocabulary must start with '<start>', 'silence'")
    return DrumVocab([tuple(int(v) for v in s.split(":")) for s in items[2:]])


def _reductions(mask: int) -> Iterable[int]:
    yield mask
    for bit in _DROP_ORDER:
        if mask & (1 << bit) and mask != (1 << bit):
            mask &= ~(1 << bit)
            yield mask


def build_vocab(scores: Iterable[Score], min_count: int = 3, max_size: int = 512) -> DrumVocab:
    """The most frequent ``(mask, level)`` pairs occurring at least ``min_count`` times."""
    counts: Counter = Counter()
    for s in scores:
        hit = s.drums > 0
        counts.update(zip(s.drums[hit].tolist(), s.drum_velocity[hit].tolist(), strict=True))
    common = [p for p, c in counts.most_common(max_size) if c >= min_count]
    singles = [(drum_mask(name), NORMAL) for name in DRUM_CLASSES]  # each stays reachable alone
    return DrumVocab(common + [p for p in singles if p not in common])


def encode(score: Score, vocab: DrumVocab) -> np.ndarray:
    """Drum tokens per step, int64 [steps]."""
    pairs = zip(score.drums.tolist(), score.drum_velocity.tolist(), strict=True)
    return np.array([vocab.token(m, lv) for m, lv in pairs], dtype=np.int64)


def decode(tokens: np.ndarray, vocab: DrumVocab) -> tuple[np.ndarray, np.ndarray]:
    """(hit masks uint16, levels uint8) per step; the start token decodes as silence."""
    return vocab.mask_of(tokens).astype(np.uint16), vocab.level_of(tokens).astype(np.uint8)


def style_value(styles: Sequence[str]) -> np.ndarray:
    """Style condition per song: 1 + index in :data:`GROOVE_STYLES`, 0 unknown; int64 [B]."""
    return np.array([GROOVE_STYLES.index(s) + 1 if s in GROOVE_STYLES else 0 for s in styles],
                    dtype=np.int64)


def tempo_value(tempo_bpm: np.ndarray) -> np.ndarray:
    """Tempo condition per song: 1 + bucket of :data:`TEMPO_EDGES`, 0 unknown; int64 [B]."""
    bpm = np.asarray(tempo_bpm, np.float64)
    return np.where(bpm > 0, 1 + np.searchsorted(TEMPO_EDGES, bpm, side="right"), 0)


def conditions(ctx: Context, start: int, stop: int) -> tuple[np.ndarray, None]:
    """Conditions of steps ``start:stop``: long [B, n, len(COND_SIZES)]."""
    steps = np.arange(start, stop)
    batch = ctx.melody.shape[0]
    cond = np.empty((batch, len(steps), len(COND_SIZES)), dtype=np.int64)
    cond[..., 0] = steps % STEPS_PER_BAR
    cond[..., 1] = (steps // STEPS_PER_BAR) % 4
    beat = steps // STEPS_PER_BEAT
    on_beat = steps % STEPS_PER_BEAT == 0
    now = ctx.chord_root[:, beat], ctx.chord_quality[:, beat]
    previous = np.maximum(beat - 1, 0)
    before = ctx.chord_root[:, previous], ctx.chord_quality[:, previous]
    changed = on_beat & ((now[0] != before[0]) | (now[1] != before[1]) | (beat == 0))
    chord_known = now[0] != UNKNOWN
    cond[..., 2] = np.where(chord_known, 1 + changed, 0)
    mel = ctx.melody[:, steps]
    cond[..., 3] = np.where(mel == UNKNOWN, 0, 1 + ((mel >= 0) & (mel != HOLD)))
    cond[..., STYLE_COND] = style_value(ctx.style)[:, None]
    cond[..., TEMPO_COND] = tempo_value(ctx.tempo_bpm)[:, None]
    return cond, None


# --- velocities -------------------------------------------------------------------------------

VELOCITY_CARD = "drum_velocity"  # the model-card key of a VelocityTable
LEVELS = 3  # GHOST, NORMAL, ACCENT
_MIDI = np.arange(1, 128)
# The MIDI velocities each level reads back as (arranger.score.velocity_level): a step's
# loudest hit is kept in its level's range, so a written song reads back with its levels.
LEVEL_RANGES = tuple((int(_MIDI[velocity_level(_MIDI) == lv].min()),
                      int(_MIDI[velocity_level(_MIDI) == lv].max())) for lv in range(LEVELS))


class VelocityTable:
    """Per style (``""``: every style pooled) the mean MIDI velocity of each drum class at each
    step in the bar and level, uint8 [classes, 16, levels]; travels in a drum model's card."""

    def __init__(self, styles: dict[str, np.ndarray]) -> None:
        shape = (len(DRUM_CLASSES), STEPS_PER_BAR, LEVELS)
        self.styles = {k: np.clip(np.asarray(v), 1, 127).astype(np.uint8)
                       for k, v in styles.items()}
        if "" not in self.styles or any(v.shape != shape for v in self.styles.values()):
            raise ValueError(f"a velocity table needs a pooled style '' and {shape} per style")

    def to_card(self) -> dict:
        return {VELOCITY_CARD: {"classes": list(DRUM_CLASSES),
                                "styles": {k: v.tolist() for k, v in self.styles.items()}}}

    @classmethod
    def from_card(cls, card: dict) -> VelocityTable | None:
        """The table a model card holds; None when it has none (weights from before tables)."""
        entry = card.get(VELOCITY_CARD)
        if entry is None:
            return None
        if not isinstance(entry, dict) or entry.get("classes") != list(DRUM_CLASSES):
            raise ValueError(f"card.{VELOCITY_CARD}: expected classes {list(DRUM_CLASSES)}")
        return cls({str(k): np.asarray(v) for k, v in entry.get("styles", {}).items()})

    def hit_velocities(self, masks: np.ndarray, levels: np.ndarray, style: str = ""
                       ) -> np.ndarray:
        """uint8 [steps, classes]: each hit's velocity (0 where none) for hit masks and levels
        per step (from a bar's first step) in ``style`` (pooled if the table lacks it)."""
        table = self.styles.get(style, self.styles[""]).astype(np.int64)
        masks, levels = np.asarray(masks, np.int64), np.minimum(np.asarray(levels), LEVELS - 1)
        steps = np.arange(len(masks)) % STEPS_PER_BAR
        hit = hit_matrix(masks)
        vel = np.where(hit, table[:, steps, levels].T, 0)
        peak = vel.max(axis=1)
        low, high = (np.array(r)[levels] for r in zip(*LEVEL_RANGES, strict=True))
        vel += (np.clip(peak, low, high) - peak)[:, None]  # the loudest hit keeps the level
        return np.where(hit, np.clip(vel, 1, 127), 0).astype(np.uint8)
