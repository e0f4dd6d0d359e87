"""Typed, validated settings for the audio stage: effects, layer sounds, master bus, rendering.

Every class is a frozen dataclass whose fields declare their units, ranges and help
(:func:`arranger.settings.setting`); ``from_dict(d, where)`` validates through the one generic
mechanism of :mod:`arranger.settings`, raising :class:`arranger.errors.InputError` (one line
naming the file/field, the value and what is allowed), and ``to_dict()`` round-trips. ``where``
is the location of ``d`` in its source, e.g. ``"presets/rainy.toml: layers.drums"``.

An effect in TOML is an inline table, ``{type = "LowPass", cutoff_frequency_hz = 5000.0}``; its
parameters are declared in the effect table, :data:`arranger.audio.effects.EFFECTS`.
"""

from __future__ import annotations

import zlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from arranger.audio.effects import EFFECTS
from arranger.errors import InputError
from arranger.settings import Settings, check_table, setting

# Effect name -> its parameters dataclass (a view of the effect table).
EFFECT_PARAMETERS: dict[str, type] = {name: kind.params for name, kind in EFFECTS.items()}


def derive_seed(seed: int, *labels: str) -> int:
    """A 32-bit seed from ``seed`` and labels (e.g. a layer name), stable across runs/platforms.

    Seeding each layer from its own name keeps a layer's randomness independent of the others,
    so re-rendering one layer leaves every other stem byte-identical.
    """
    return zlib.crc32("/".join((str(int(seed)), *labels)).encode())


@dataclass(frozen=True)
class EffectSpec(Settings):
    """One effect of a chain: its ``type`` (a key of ``EFFECTS``) and the parameters given.

    Parameters left out take the effect's own defaults (see ``arranger.audio.fx``).
    """

    type: str = setting(choices=tuple(EFFECTS), help="effect name")
    params: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def parse_at(cls, d: Any, file: str, path: str) -> EffectSpec:
        """``{type = "LowPass", cutoff_frequency_hz = 900.0}`` checked against its effect."""
        if not isinstance(d, Mapping):
            raise InputError(path, d, 'a table like {type = "LowPass"}', file)
        kind = d.get("type")
        if kind not in EFFECTS:
            raise InputError(f"{path}.type", kind, f"one of {', '.join(EFFECTS)}", file)
        params = {k: v for k, v in d.items() if k != "type"}
        return cls(kind, check_table(EFFECTS[kind].params, params, file, path,
                                     "unknown parameter {key} for " + kind))

    def to_dict(self) -> dict[str, Any]:
        return {"type": self.type, **self.params}


_EFFECTS_TEXT = "a list of effect tables"

# The mix bus's reference loudness, BS.1770 integrated (EBU R128's programme level): a stem with
# ``level_lu = L`` is brought to ``BUS_REFERENCE_LUFS + L``. Stems a few LU under it sum to about
# this level, where the master chains' compressor thresholds were set.
BUS_REFERENCE_LUFS = -23.0


@dataclass(frozen=True)
class LayerSound(Settings):
    """How one layer sounds: instrument, level, position and effect chain."""

    program: int = setting(0, low=0, high=127, help="General MIDI program; drums ignore it "
                                                    "(channel 10, bank 128)")
    gain_db: float = setting(0.0, low=-60.0, high=12.0, unit="dB",
                             help="fader, applied after the layer's effects (0 with level_lu)")
    pan: float = setting(0.0, low=-1.0, high=1.0,
                         help="-1 hard left .. 0 centre .. 1 hard right (constant-power)")
    effects: tuple[EffectSpec, ...] = setting((), expected=_EFFECTS_TEXT, help="effect chain")
    enabled: bool = setting(True, help="a disabled layer is neither rendered nor mixed")
    level_lu: float | None = setting(None, low=-40.0, high=0.0, unit="LU",
                                     help="loudness of the rendered stem relative to the mix bus "
                                          f"({BUS_REFERENCE_LUFS:g} LUFS), measured after the "
                                          "effects; unset: gain_db is a raw fader")
    density: float | None = setting(None, low=0.0, high=1.0,
                                    help="how busy the layer plays, 0..1: more notes (melody), "
                                         "hits (drums) or chord changes (chords) as it rises, "
                                         "the model still choosing which; unset: as it learnt "
                                         "(the bass follows the chords and ignores it)")

    @classmethod
    def parse_at(cls, d: Any, file: str, path: str) -> LayerSound:
        """Fields checked one by one, then together: a level in LU leaves no room for a fader."""
        sound = super().parse_at(d, file, path)
        if sound.level_lu is not None and sound.gain_db != 0.0:
            where = f"{path}.gain_db" if path else "gain_db"
            raise InputError(where, sound.gain_db, "0 (or no gain_db) when level_lu is set: "
                             "level_lu sets the stem's loudness", file)
        return sound

    def to_dict(self) -> dict[str, Any]:
        """As declared, less an unset ``level_lu`` or ``density`` (TOML has no None)."""
        d = super().to_dict()
        for name in ("level_lu", "density"):  # unset: left out
            if d[name] is None:
                del d[name]
        return d


@dataclass(frozen=True)
class MasterSound(Settings):
    """The master bus: effect chain, then loudness normalisation under a true-peak ceiling."""

    effects: tuple[EffectSpec, ...] = setting((), expected=_EFFECTS_TEXT, help="effect chain")
    target_lufs: float = setting(-14.0, low=-40.0, high=-5.0, unit="LUFS",
                                 help="integrated loudness, ITU-R BS.1770-4")
    true_peak_dbtp: float = setting(-1.0, low=-12.0, high=0.0, unit="dBTP",
                                    help="ceiling for 4x-oversampled peaks")


@dataclass(frozen=True)
class RenderSettings(Settings):
    """MIDI-to-audio settings shared by every layer."""

    soundfont: str = setting("", help="path to a .sf2/.sf3 file; empty = look one up "
                                      "(arranger.audio.soundfont)")
    sample_rate: int = setting(44100, low=8000, high=96000, unit="Hz")
    humanize_ms: float = setting(6.0, low=0.0, high=50.0, unit="ms",
                                 help="standard deviation of per-onset timing jitter")
    humanize_velocity: int = setting(6, low=0, high=40, unit="MIDI velocity",
                                     help="standard deviation of per-note velocity jitter")
    tail_seconds: float = setting(2.0, low=0.0, high=30.0, unit="s",
                                  help="silence kept after the last note-off for release tails")
