"""The effect table: every effect a preset can name, declared once.

Each :class:`EffectKind` gives an effect's parameters (a frozen dataclass whose fields carry
units, ranges and help), how to build it, whether it treats channels independently, and its
relative CPU cost. :mod:`arranger.audio.config` validates specs against the parameters,
:mod:`arranger.audio.fx` builds chains from the factories, :mod:`arranger.audio.produce`
orders work by the costs.

Parameters use pedalboard's names and units (``*_hz``, ``*_db``, ``*_ms``). A parameter left out
takes the effect's own default (pedalboard's, or the dataclass in ``arranger.audio.fx``), so
every field here defaults to None, "not given". Factories are named ``"module:attribute"`` and
imported on first use: this module never imports pedalboard or scipy.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from arranger.settings import INF, setting

RESAMPLE_QUALITIES = ("ZeroOrderHold", "Linear", "CatmullRom", "Lagrange", "WindowedSinc")


def _hz(help: str = "cutoff (-3 dB) frequency", low: float = 10.0, high: float = 24000.0):
    return setting(None, low=low, high=high, unit="Hz", help=help)


def _unit(help: str):
    return setting(None, low=0.0, high=1.0, help=help)


@dataclass(frozen=True)
class ButterworthParams:
    """LowPass / HighPass: Butterworth, ``order`` x 6 dB/octave."""

    cutoff_frequency_hz: float | None = _hz()
    order: int | None = setting(None, low=1, high=8, help="filter order (4 = 24 dB/octave)")


@dataclass(frozen=True)
class ShelfParams:
    """LowShelf / HighShelf / PeakFilter."""

    cutoff_frequency_hz: float | None = _hz("centre or corner frequency")
    gain_db: float | None = setting(None, low=-48.0, high=48.0, unit="dB", help="boost or cut")
    q: float | None = setting(None, low=0.05, high=20.0, help="bandwidth (quality factor)")


@dataclass(frozen=True)
class CompressorParams:
    threshold_db: float | None = setting(None, low=-80.0, high=0.0, unit="dBFS")
    ratio: float | None = setting(None, low=1.0, high=50.0, help="input:output above threshold")
    attack_ms: float | None = setting(None, low=0.01, high=1000.0, unit="ms")
    release_ms: float | None = setting(None, low=1.0, high=5000.0, unit="ms")


@dataclass(frozen=True)
class ReverbParams:
    room_size: float | None = _unit("size of the simulated room")
    damping: float | None = _unit("high-frequency damping")
    wet_level: float | None = _unit("level of the reverberated signal")
    dry_level: float | None = _unit("level of the direct signal")
    width: float | None = _unit("stereo width of the tail")
    freeze_mode: float | None = _unit("above 0.5 the tail is held forever")


@dataclass(frozen=True)
class ChorusParams:
    rate_hz: float | None = _hz("modulation rate", 0.01, 50.0)
    depth: float | None = _unit("modulation depth")
    centre_delay_ms: float | None = setting(None, low=0.1, high=100.0, unit="ms")
    feedback: float | None = setting(None, low=-0.95, high=0.95)
    mix: float | None = _unit("wet share (1 = vibrato only)")


@dataclass(frozen=True)
class BitcrushParams:
    bit_depth: float | None = setting(None, low=1.0, high=32.0, unit="bits")


@dataclass(frozen=True)
class ResampleParams:
    target_sample_rate: float | None = _hz("the rate passed through", 1000.0, 192000.0)
    quality: str | None = setting(None, choices=RESAMPLE_QUALITIES,
                                  help="interpolation (default Linear: lo-fi wants the grit)")


@dataclass(frozen=True)
class LimiterParams:
    threshold_db: float | None = setting(None, low=-60.0, high=0.0, unit="dBFS")
    release_ms: float | None = setting(None, low=1.0, high=5000.0, unit="ms")


@dataclass(frozen=True)
class GainParams:
    gain_db: float | None = setting(None, low=-60.0, high=24.0, unit="dB")


@dataclass(frozen=True)
class DistortionParams:
    drive_db: float | None = setting(None, low=0.0, high=60.0, unit="dB")


@dataclass(frozen=True)
class DelayParams:
    delay_seconds: float | None = setting(None, low=0.0, high=5.0, unit="s")
    feedback: float | None = setting(None, low=0.0, high=0.99)
    mix: float | None = _unit("wet share")


@dataclass(frozen=True)
class TapeWobbleParams:
    """See :class:`arranger.audio.fx.TapeWobble`."""

    depth_percent: float | None = setting(None, low=0.0, high=5.0, unit="%",
                                          help="peak wow speed deviation")
    wow_rate_hz: float | None = _hz("wow rate", 0.05, 5.0)
    flutter_rate_hz: float | None = _hz("flutter rate", 2.0, 30.0)
    flutter_depth_percent: float | None = setting(None, low=0.0, high=2.0, unit="%")
    drift_percent: float | None = setting(None, low=0.0, high=2.0, unit="%",
                                          help="peak of the slow random drift")
    interpolation: str | None = setting(None, choices=("linear", "cubic"))


@dataclass(frozen=True)
class VinylCrackleParams:
    """See :class:`arranger.audio.fx.VinylCrackle`."""

    density_per_s: float | None = setting(None, low=0.0, high=200.0, unit="1/s",
                                          help="clicks per second")
    level_db: float | None = setting(None, low=-80.0, high=0.0, unit="dBFS",
                                     help="peak level of the loudest clicks")
    hiss_db: float | None = setting(None, low=-INF, high=0.0, unit="dBFS",
                                    help="RMS of the surface hiss (-inf: none)")
    rumble_db: float | None = setting(None, low=-INF, high=0.0, unit="dBFS",
                                      help="RMS of turntable rumble (-inf: none)")


@dataclass(frozen=True)
class EffectKind:
    """One row of the effect table."""

    params: type  # dataclass of the parameters (fields carry units and ranges)
    factory: str  # "module:attribute", called with the parameters (and ``seed=`` if seeded)
    channel_wise: bool = True  # each channel on its own: a stereo chain == one per channel
    cost: float = 1.0  # CPU over a whole stem, relative to a filter or a compressor
    seeded: bool = False  # takes a ``seed`` (noise, LFO phases)
    noise: bool = False  # adds a signal of its own (``.noise(shape, rate)``), whatever the input
    # Its output depends on where the audio starts (an LFO's phase, seeded noise), not only on
    # what came before: such a chain cannot start part-way into a song (audio.sections).
    time_origin: bool = False

    def build(self, params: dict[str, Any], seed: int = 0) -> Callable:
        """The effect, ``effect(audio, sample_rate) -> audio``; imports its module now."""
        module, _, name = self.factory.partition(":")
        make = getattr(importlib.import_module(module), name)
        return make(**params, seed=seed) if self.seeded else make(**params)


_PB, _FX = "pedalboard:", "arranger.audio.fx:"

# Effect name (EffectSpec.type) -> its row. pedalboard: every plugin treats channels on their
# own except Reverb, which mixes left into right (tests/test_fx.py checks each).
EFFECTS: dict[str, EffectKind] = {
    "LowPass": EffectKind(ButterworthParams, _FX + "LowPass"),
    "HighPass": EffectKind(ButterworthParams, _FX + "HighPass"),
    "LowShelf": EffectKind(ShelfParams, _PB + "LowShelfFilter"),
    "HighShelf": EffectKind(ShelfParams, _PB + "HighShelfFilter"),
    "PeakFilter": EffectKind(ShelfParams, _PB + "PeakFilter"),
    "Compressor": EffectKind(CompressorParams, _PB + "Compressor"),
    "Reverb": EffectKind(ReverbParams, _PB + "Reverb", channel_wise=False, cost=3.0),
    "Chorus": EffectKind(ChorusParams, _PB + "Chorus", cost=1.5, time_origin=True),
    "Bitcrush": EffectKind(BitcrushParams, _PB + "Bitcrush", cost=0.5),
    "Resample": EffectKind(ResampleParams, _FX + "make_resample", time_origin=True),  # its grid
    "Limiter": EffectKind(LimiterParams, _PB + "Limiter"),
    "Gain": EffectKind(GainParams, _PB + "Gain", cost=0.2),
    "Distortion": EffectKind(DistortionParams, _PB + "Distortion"),
    "Delay": EffectKind(DelayParams, _PB + "Delay", cost=1.5),
    "TapeWobble": EffectKind(TapeWobbleParams, _FX + "TapeWobble", seeded=True,
                             time_origin=True),
    "VinylCrackle": EffectKind(VinylCrackleParams, _FX + "VinylCrackle", seeded=True,
                               noise=True, time_origin=True),
}
