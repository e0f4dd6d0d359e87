"""Typed, validated settings for the audio stage: effects, layer sounds, master bus, rendering.

Every class is a frozen dataclass with ``from_dict(d, where)`` (validates, raising one-line
``ValueError`` messages that name the file/field, the value and what is allowed) and ``to_dict()``
that round-trips. ``where`` is the location of ``d`` in its source, e.g.
``"presets/rainy.toml: layers.drums"``.

An effect in TOML is an inline table, ``{type = "LowPass", cutoff_frequency_hz = 5000.0}``; its
parameters use pedalboard's names and units (``*_hz``, ``*_db``, ``*_ms``).
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

INF = math.inf


@dataclass(frozen=True)
class Param:
    """Allowed values of one effect parameter: a number in ``low..high`` or one of ``choices``."""

    low: float = -INF
    high: float = INF
    choices: tuple[str, ...] = ()
    integer: bool = False


def _hz(low: float = 10.0, high: float = 24000.0) -> Param:
    return Param(low, high)


_UNIT = Param(0.0, 1.0)
_FILTER = {"cutoff_frequency_hz": _hz(), "order": Param(1, 8, integer=True)}
_SHELF = {"cutoff_frequency_hz": _hz(), "gain_db": Param(-48.0, 48.0), "q": Param(0.05, 20.0)}
RESAMPLE_QUALITIES = ("ZeroOrderHold", "Linear", "CatmullRom", "Lagrange", "WindowedSinc")

# Effect name -> parameter name -> allowed values. Names and units follow pedalboard; LowPass and
# HighPass (Butterworth, ``order`` x 6 dB/octave), TapeWobble and VinylCrackle are ours
# (arranger.audio.fx). Keep in step with arranger.audio.fx.EFFECT_FACTORIES.
EFFECT_PARAMETERS: dict[str, dict[str, Param]] = {
    "LowPass": _FILTER,
    "HighPass": _FILTER,
    "LowShelf": _SHELF,
    "HighShelf": _SHELF,
    "PeakFilter": _SHELF,
    "Compressor": {"threshold_db": Param(-80.0, 0.0), "ratio": Param(1.0, 50.0),
                   "attack_ms": Param(0.01, 1000.0), "release_ms": Param(1.0, 5000.0)},
    "Reverb": {"room_size": _UNIT, "damping": _UNIT, "wet_level": _UNIT, "dry_level": _UNIT,
               "width": _UNIT, "freeze_mode": _UNIT},
    "Chorus": {"rate_hz": Param(0.01, 50.0), "depth": _UNIT, "centre_delay_ms": Param(0.1, 100.0),
               "feedback": Param(-0.95, 0.95), "mix": _UNIT},
    "Bitcrush": {"bit_depth": Param(1.0, 32.0)},
    "Resample": {"target_sample_rate": Param(1000.0, 192000.0),
                 "quality": Param(choices=RESAMPLE_QUALITIES)},
    "Limiter": {"threshold_db": Param(-60.0, 0.0), "release_ms": Param(1.0, 5000.0)},
    "Gain": {"gain_db": Param(-60.0, 24.0)},
    "Distortion": {"drive_db": Param(0.0, 60.0)},
    "Delay": {"delay_seconds": Param(0.0, 5.0), "feedback": Param(0.0, 0.99), "mix": _UNIT},
    "TapeWobble": {"depth_percent": Param(0.0, 5.0), "wow_rate_hz": Param(0.05, 5.0),
                   "flutter_rate_hz": Param(2.0, 30.0), "flutter_depth_percent": Param(0.0, 2.0),
                   "drift_percent": Param(0.0, 2.0), "interpolation": Param(
                       choices=("linear", "cubic"))},
    "VinylCrackle": {"density_per_s": Param(0.0, 200.0), "level_db": Param(-80.0, 0.0),
                     "hiss_db": Param(-INF, 0.0), "rumble_db": Param(-INF, 0.0)},
}


def derive_seed(seed: int, *labels: str) -> int:
    """A 32-bit seed from ``seed`` and labels (e.g. a layer name), stable across runs/platforms.

    Seeding each layer from its own name keeps a layer's randomness independent of the others,
    so re-rendering one layer leaves every other stem byte-identical.
    """
    return zlib.crc32("/".join((str(int(seed)), *labels)).encode())


def _fail(where: str, key: str, value: Any, expected: str) -> ValueError:
    return ValueError(f"{where}.{key} = {value!r}: expected {expected}")


def _range_text(low: float, high: float) -> str:
    return f"{low:g}..{high:g}"


def _number(d: Mapping, key: str, where: str, default: float, low: float, high: float) -> float:
    value = d.get(key, default)
    ok = isinstance(value, int | float) and not isinstance(value, bool)
    if not ok or math.isnan(value) or not low <= value <= high:
        raise _fail(where, key, value, f"a number in {_range_text(low, high)}")
    return float(value)


def _integer(d: Mapping, key: str, where: str, default: int, low: int, high: int) -> int:
    value = d.get(key, default)
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise _fail(where, key, value, f"an integer in {low}..{high}")
    return value


def _boolean(d: Mapping, key: str, where: str, default: bool) -> bool:
    value = d.get(key, default)
    if not isinstance(value, bool):
        raise _fail(where, key, value, "true or false")
    return value


def _string(d: Mapping, key: str, where: str, default: str) -> str:
    value = d.get(key, default)
    if not isinstance(value, str):
        raise _fail(where, key, value, "a string")
    return value


def _check_keys(d: Any, where: str, allowed: tuple[str, ...]) -> None:
    if not isinstance(d, Mapping):
        raise ValueError(f"{where} = {d!r}: expected a table")
    unknown = [k for k in d if k not in allowed]
    if unknown:
        raise ValueError(f"{where}: unknown field {unknown[0]!r}: expected one of "
                         f"{', '.join(allowed)}")


def _effects(d: Mapping, where: str) -> tuple[EffectSpec, ...]:
    value = d.get("effects", [])
    if not isinstance(value, list | tuple):
        raise _fail(where, "effects", value, "a list of effect tables")
    return tuple(EffectSpec.from_dict(e, f"{where}.effects[{i}]") for i, e in enumerate(value))


@dataclass(frozen=True)
class EffectSpec:
    """One effect of a chain: its ``type`` (a key of ``EFFECT_PARAMETERS``) and parameters.

    Parameters left out take the effect's own defaults (see ``arranger.audio.fx``).
    """

    type: str
    params: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, d: Mapping, where: str) -> EffectSpec:
        if not isinstance(d, Mapping):
            raise ValueError(f"{where} = {d!r}: expected a table like {{type = \"LowPass\"}}")
        kind = d.get("type")
        if kind not in EFFECT_PARAMETERS:
            raise _fail(where, "type", kind, f"one of {', '.join(EFFECT_PARAMETERS)}")
        schema = EFFECT_PARAMETERS[kind]
        params = {}
        for key in d:
            if key == "type":
                continue
            if key not in schema:
                raise ValueError(f"{where}: unknown parameter {key!r} for {kind}: expected one "
                                 f"of {', '.join(schema)}")
            params[key] = _param(d, key, where, schema[key])
        return cls(kind, params)

    def to_dict(self) -> dict[str, Any]:
        return {"type": self.type, **self.params}


def _param(d: Mapping, key: str, where: str, rule: Param) -> Any:
    if rule.integer:
        return _integer(d, key, where, 0, int(rule.low), int(rule.high))
    if not rule.choices:
        return _number(d, key, where, 0.0, rule.low, rule.high)
    value = d[key]
    if value not in rule.choices:
        raise _fail(where, key, value, f"one of {', '.join(rule.choices)}")
    return value


@dataclass(frozen=True)
class LayerSound:
    """How one layer sounds: instrument, level, position and effect chain."""

    program: int  # General MIDI program 0-127; drums ignore it (channel 10, bank 128)
    gain_db: float = 0.0  # fader, applied after the layer's effects
    pan: float = 0.0  # -1 hard left .. 0 centre .. 1 hard right (constant-power)
    effects: tuple[EffectSpec, ...] = ()
    enabled: bool = True  # a disabled layer is neither rendered nor mixed

    @classmethod
    def from_dict(cls, d: Mapping, where: str) -> LayerSound:
        _check_keys(d, where, ("program", "gain_db", "pan", "effects", "enabled"))
        return cls(
            program=_integer(d, "program", where, 0, 0, 127),
            gain_db=_number(d, "gain_db", where, 0.0, -60.0, 12.0),
            pan=_number(d, "pan", where, 0.0, -1.0, 1.0),
            effects=_effects(d, where),
            enabled=_boolean(d, "enabled", where, True),
        )

    def to_dict(self) -> dict[str, Any]:
        return {"program": self.program, "gain_db": self.gain_db, "pan": self.pan,
                "effects": [e.to_dict() for e in self.effects], "enabled": self.enabled}


@dataclass(frozen=True)
class MasterSound:
    """The master bus: effect chain, then loudness normalisation under a true-peak ceiling."""

    effects: tuple[EffectSpec, ...] = ()
    target_lufs: float = -14.0  # integrated loudness, ITU-R BS.1770-4
    true_peak_dbtp: float = -1.0  # ceiling for 4x-oversampled peaks

    @classmethod
    def from_dict(cls, d: Mapping, where: str) -> MasterSound:
        _check_keys(d, where, ("effects", "target_lufs", "true_peak_dbtp"))
        return cls(
            effects=_effects(d, where),
            target_lufs=_number(d, "target_lufs", where, -14.0, -40.0, -5.0),
            true_peak_dbtp=_number(d, "true_peak_dbtp", where, -1.0, -12.0, 0.0),
        )

    def to_dict(self) -> dict[str, Any]:
        return {"effects": [e.to_dict() for e in self.effects], "target_lufs": self.target_lufs,
                "true_peak_dbtp": self.true_peak_dbtp}


@dataclass(frozen=True)
class RenderSettings:
    """MIDI-to-audio settings shared by every layer."""

    soundfont: str = ""  # path to a .sf2/.sf3 file; empty = look one up (arranger.audio.soundfont)
    sample_rate: int = 44100  # Hz
    humanize_ms: float = 6.0  # standard deviation of per-onset timing jitter
    humanize_velocity: int = 6  # standard deviation of per-note velocity jitter
    tail_seconds: float = 2.0  # silence kept after the last note-off for release tails

    @classmethod
    def from_dict(cls, d: Mapping, where: str) -> RenderSettings:
        _check_keys(d, where, ("soundfont", "sample_rate", "humanize_ms", "humanize_velocity",
                               "tail_seconds"))
        return cls(
            soundfont=_string(d, "soundfont", where, ""),
            sample_rate=_integer(d, "sample_rate", where, 44100, 8000, 96000),
            humanize_ms=_number(d, "humanize_ms", where, 6.0, 0.0, 50.0),
            humanize_velocity=_integer(d, "humanize_velocity", where, 6, 0, 40),
            tail_seconds=_number(d, "tail_seconds", where, 2.0, 0.0, 30.0),
        )

    def to_dict(self) -> dict[str, Any]:
        return {"soundfont": self.soundfont, "sample_rate": self.sample_rate,
                "humanize_ms": self.humanize_ms, "humanize_velocity": self.humanize_velocity,
                "tail_seconds": self.tail_seconds}
