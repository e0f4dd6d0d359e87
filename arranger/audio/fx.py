"""Lo-fi effects as pedalboard-style callables, ``effect(audio, sample_rate) -> audio``.

``audio`` is float32 of shape (channels, samples); every effect returns the same shape, so
reverb and delay tails are cut at the end of the input (stems already carry a release tail).

``TapeWobble``, ``VinylCrackle``, ``LowPass`` and ``HighPass`` are ours (numpy, scipy's IIR loop);
everything else is pedalboard. Chains come from ``EffectSpec`` lists (see
``arranger.audio.config``) through ``build_chain``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass
from typing import Any

import numpy as np
import pedalboard as pb

from arranger.audio.config import EffectSpec, derive_seed
from arranger.audio.effects import EFFECTS
from arranger.audio.iir import butterworth_sos, guarded_sosfilt, sosfilt

Effect = Callable[[np.ndarray, float], np.ndarray]
CONTROL_STEP = 32  # samples between control points of slow modulations (wow, drift, rumble)
_CHUNK = 1 << 15  # samples per vectorised batch: keeps the temporaries in cache


def upsample_linear(control: np.ndarray, step: int, n_samples: int) -> np.ndarray:
    """Linearly interpolate control points spaced ``step`` samples apart to ``n_samples``.

    ``control`` needs at least ``ceil(n_samples / step) + 1`` points. Returns float32 (n,).
    """
    blocks = -(-n_samples // step)
    points = np.asarray(control[: blocks + 1], dtype=np.float32)
    out = np.empty((blocks, step), dtype=np.float32)  # float32 throughout: no 64-bit temporaries
    np.multiply(np.diff(points)[:, None], np.arange(step, dtype=np.float32) / step, out=out)
    out += points[:blocks, None]
    return out.ravel()[:n_samples]


def _catmull_rom(xm: np.ndarray, x0: np.ndarray, x1: np.ndarray, x2: np.ndarray,
                 frac: np.ndarray) -> np.ndarray:
    slope0, slope1 = 0.5 * (x1 - xm), 0.5 * (x2 - x0)
    a = 2 * x0 - 2 * x1 + slope0 + slope1
    b = -3 * x0 + 3 * x1 - 2 * slope0 - slope1
    return ((a * frac + b) * frac + slope0) * frac + x0


def _fractional_read(audio: np.ndarray, delay: np.ndarray, cubic: bool) -> np.ndarray:
    """Read ``audio`` at ``index - delay`` (delay in samples, >= 0), linear or Catmull-Rom.

    Splitting the position into an integer base and a float32 fraction keeps sub-sample
    precision that a float32 absolute position would lose after ~16 M samples. Edge samples
    repeat beyond the ends. Works in cache-sized chunks: on long audio that is ~5x faster than
    whole-array temporaries, and ``np.take`` from a padded chunk is ~8x faster than clipping.
    """
    n = audio.shape[-1]
    reach = int(np.ceil(delay.max(initial=0.0))) + 2  # how far back a chunk reads
    out = np.empty_like(audio)
    for start in range(0, n, _CHUNK):
        stop = min(start + _CHUNK, n)
        source = _edge_padded(audio, start - reach, stop + 2)  # a view except at the ends
        whole = np.ceil(delay[start:stop]).astype(np.intp)
        frac = (whole - delay[start:stop]).astype(np.float32)  # position = base + frac
        base = np.arange(reach, reach + stop - start, dtype=np.intp) - whole
        x0, x1 = np.take(source, base, axis=1), np.take(source, base + 1, axis=1)
        if cubic:
            xm, x2 = np.take(source, base - 1, axis=1), np.take(source, base + 2, axis=1)
            out[:, start:stop] = _catmull_rom(xm, x0, x1, x2, frac)
        else:
            out[:, start:stop] = x0 + frac * (x1 - x0)
    return out


def _edge_padded(audio: np.ndarray, lo: int, hi: int) -> np.ndarray:
    """``audio[:, lo:hi]`` with the edge samples repeated where the range runs off the ends."""
    n = audio.shape[-1]
    inner = audio[:, max(lo, 0) : min(hi, n)]
    if lo >= 0 and hi <= n:
        return inner
    return np.pad(inner, ((0, 0), (max(-lo, 0), max(hi - n, 0))), mode="edge")


@dataclass(frozen=True)
class TapeWobble:
    """Tape speed variation: wow + flutter + slow random drift, as a time-varying delay.

    The speed deviation is a sum of sines, ``s(t) = sum_k a_k sin(2 pi f_k t + phi_k)``; the read
    delay is its integral, ``D(t) = sum_k a_k / (2 pi f_k) cos(...) + const``, so the pitch of the
    output deviates from the input by exactly ``s(t)``: a peak of ``depth_percent`` from wow.

    Parameters
    ----------
    depth_percent : peak wow speed deviation, % of nominal speed (0.3 % ~ 5 cents).
    wow_rate_hz : wow rate (0.3-2 Hz on real machines).
    flutter_rate_hz, flutter_depth_percent : faster capstan flutter (5-15 Hz).
    drift_percent : peak of the slow random drift (three seeded sines at 0.05-0.25 Hz).
    seed : phases of the LFOs and the drift.
    interpolation : "linear" (faster, slightly dulls highs) or "cubic" (Catmull-Rom).
    """

    depth_percent: float = 0.3
    wow_rate_hz: float = 0.6
    flutter_rate_hz: float = 9.0
    flutter_depth_percent: float = 0.05
    drift_percent: float = 0.1
    seed: int = 0
    interpolation: str = "linear"

    def components(self) -> list[tuple[float, float, float]]:
        """The speed-deviation sines as (rate_hz, peak fraction of speed, phase_rad)."""
        rng = np.random.default_rng(self.seed)
        phases = rng.uniform(0.0, 2 * math.pi, 5)
        weights = rng.uniform(0.5, 1.0, 3)
        drift_rates = rng.uniform(0.05, 0.25, 3)
        parts = [(self.wow_rate_hz, self.depth_percent / 100, phases[0]),
                 (self.flutter_rate_hz, self.flutter_depth_percent / 100, phases[1])]
        drift = self.drift_percent / 100 * weights / weights.sum()
        drifts = zip(drift_rates, drift, phases[2:], strict=True)
        parts += [(float(r), float(a), float(p)) for r, a, p in drifts]
        return [part for part in parts if part[1] > 0]

    def delay_samples(self, n_samples: int, sample_rate: float) -> np.ndarray:
        """The read delay D(t) in samples, float32 (n,), always >= 0."""
        times = np.arange(-(-n_samples // CONTROL_STEP) + 1) * (CONTROL_STEP / sample_rate)
        delay_s = np.zeros_like(times)
        for rate, amount, phase in self.components():
            scale = amount / (2 * math.pi * rate)
            delay_s += scale * (1.0 + np.cos(2 * math.pi * rate * times + phase))
        return upsample_linear(delay_s * sample_rate, CONTROL_STEP, n_samples)

    def __call__(self, audio: np.ndarray, sample_rate: float) -> np.ndarray:
        audio = np.asarray(audio, dtype=np.float32)
        if not self.components() or audio.shape[-1] == 0:
            return audio.copy()
        delay = self.delay_samples(audio.shape[-1], sample_rate)
        return _fractional_read(audio, delay, self.interpolation == "cubic")


def _db(level_db: float | None) -> float:
    """Linear amplitude of a level in dB; None or -inf is silence."""
    return 0.0 if level_db is None or level_db == -math.inf else 10.0 ** (level_db / 20.0)


@dataclass(frozen=True)
class VinylCrackle:
    """Record-surface noise added to the input: clicks and pops, hiss, optional rumble.

    Parameters
    ----------
    density_per_s : clicks per second, exactly (positions are random, the count is not).
    level_db : peak level of the loudest clicks, dBFS; each peaks 0 to -6 dB below it (clicks
        that overlap add up).
    hiss_db : RMS level of the surface hiss, dBFS (None or -inf: none).
    rumble_db : RMS level of turntable rumble (8-35 Hz), dBFS (None or -inf: none).
    seed : makes the noise reproducible.
    """

    density_per_s: float = 4.0
    level_db: float = -30.0
    hiss_db: float | None = -50.0
    rumble_db: float | None = None
    seed: int = 0

    def clicks(self, rng: np.random.Generator, shape: tuple[int, int],
               sample_rate: float) -> np.ndarray:
        """Exponentially decaying impulses, 15 % of them longer "pops"; float32 ``shape``."""
        channels, n = shape
        out = np.zeros(shape, dtype=np.float32)
        count = round(self.density_per_s * n / sample_rate)
        if count == 0 or n == 0:
            return out
        length = max(4, int(sample_rate * 0.006))
        decay_s = np.where(rng.random(count) < 0.15, rng.uniform(5e-4, 1.5e-3, count),
                           rng.uniform(5e-5, 3e-4, count))
        peak = _db(self.level_db) * rng.uniform(0.5, 1.0, count) * rng.choice([-1.0, 1.0], count)
        k = np.arange(length)
        shapes = peak[:, None] * np.exp(-k[None, :] / (decay_s[:, None] * sample_rate))
        index = np.minimum(rng.integers(0, n, count)[:, None] + k[None, :], n - 1)
        for c in range(channels):  # a click hits both walls of the groove, not equally hard
            side = rng.uniform(0.8, 1.0, count)[:, None]
            np.add.at(out[c], index, (shapes * side).astype(np.float32))
        return out

    def hiss(self, rng: np.random.Generator, shape: tuple[int, int]) -> np.ndarray:
        """Softly low-passed uniform noise (two-tap average: -3 dB at fs/4) at ``hiss_db`` RMS."""
        noise = rng.random((shape[0], shape[1] + 1), dtype=np.float32) - np.float32(0.5)
        smoothed = noise[:, 1:] + noise[:, :-1]
        return smoothed * np.float32(_db(self.hiss_db) / math.sqrt(2 / 12))

    def rumble(self, rng: np.random.Generator, shape: tuple[int, int],
               sample_rate: float) -> np.ndarray:
        """Mono noise band-passed to 8-35 Hz at the control rate, then upsampled; (1, n)."""
        control_rate = sample_rate / CONTROL_STEP
        points = rng.standard_normal(-(-shape[1] // CONTROL_STEP) + 1 + int(control_rate))
        band = butterworth_sos(2, (8.0, 35.0), control_rate, "bandpass")
        smooth = sosfilt(band, points)[0][int(control_rate) :]
        # (the filter's first second, its settling, dropped)
        smooth *= _db(self.rumble_db) / max(float(np.std(smooth)), 1e-12)
        return upsample_linear(smooth, CONTROL_STEP, shape[1])[None, :]

    def noise(self, shape: tuple[int, int], sample_rate: float) -> np.ndarray:
        """Everything this effect adds, for audio of ``shape``; float32. Needs no audio."""
        rng = np.random.default_rng(self.seed)
        out = self.clicks(rng, shape, sample_rate)
        if _db(self.hiss_db) > 0:
            out += self.hiss(rng, shape)
        if _db(self.rumble_db) > 0:
            out += self.rumble(rng, shape, sample_rate)
        return out

    def prepared(self, shape: tuple[int, int], sample_rate: float) -> Effect:
        """This effect with its noise made ahead, for audio of ``shape`` (see ``prepare_chain``)."""
        return _AddPrepared(self, shape, self.noise(shape, sample_rate))

    def __call__(self, audio: np.ndarray, sample_rate: float) -> np.ndarray:
        audio = np.asarray(audio, dtype=np.float32)
        return audio + self.noise(audio.shape, sample_rate)


@dataclass(frozen=True, eq=False)
class _AddPrepared:
    """An additive effect whose addition was computed ahead for one shape."""

    effect: VinylCrackle
    shape: tuple[int, int]
    addition: np.ndarray

    def __call__(self, audio: np.ndarray, sample_rate: float) -> np.ndarray:
        audio = np.asarray(audio, dtype=np.float32)
        if audio.shape != self.shape:  # not the audio it was prepared for
            return self.effect(audio, sample_rate)
        return audio + self.addition

    def channel(self, index: int) -> _AddPrepared:
        """The addition to one channel of the audio it was prepared for."""
        return _AddPrepared(self.effect, (1, self.shape[1]), self.addition[index : index + 1])


def _butterworth(audio: np.ndarray, sample_rate: float, cutoff_hz: float, order: int,
                 kind: str) -> np.ndarray:
    nyquist = sample_rate / 2
    if kind == "lowpass" and cutoff_hz >= 0.99 * nyquist:
        return np.array(audio, dtype=np.float32)  # nothing to cut below Nyquist
    sos = butterworth_sos(order, min(cutoff_hz, 0.99 * nyquist), sample_rate, kind)
    audio = np.atleast_2d(audio)
    out = np.empty(audio.shape, dtype=np.float32)
    for channel, samples in zip(out, audio, strict=True):
        # The guard tone sits in the passband, where the gain is 1: taken off exactly.
        for where, y, guard in guarded_sosfilt(sos, samples, dc=kind == "lowpass"):
            np.subtract(y, guard, out=channel[where], casting="same_kind")
    return out


@dataclass(frozen=True)
class LowPass:
    """Butterworth low-pass: -3 dB at the cutoff, then ``6 * order`` dB per octave.

    pedalboard's ``LowpassFilter`` is first order (6 dB/octave), too gentle to darken a layer.
    """

    cutoff_frequency_hz: float = 5000.0
    order: int = 4

    def __call__(self, audio: np.ndarray, sample_rate: float) -> np.ndarray:
        return _butterworth(audio, sample_rate, self.cutoff_frequency_hz, self.order, "lowpass")


@dataclass(frozen=True)
class HighPass:
    """Butterworth high-pass: -3 dB at the cutoff, ``6 * order`` dB per octave below it."""

    cutoff_frequency_hz: float = 50.0
    order: int = 2

    def __call__(self, audio: np.ndarray, sample_rate: float) -> np.ndarray:
        return _butterworth(audio, sample_rate, self.cutoff_frequency_hz, self.order, "highpass")


def make_resample(quality: str = "Linear", **params: Any) -> pb.Resample:
    """pedalboard's Resample with its quality named by a string (the effect table's factory)."""
    # Lo-fi wants the grit, not the polish: Linear is ~15x faster than pedalboard's default.
    return pb.Resample(quality=getattr(pb.Resample.Quality, quality), **params)


# Effect name (EffectSpec.type) -> constructor taking the spec's params and a seed: the
# factories of the effect table (arranger.audio.effects.EFFECTS).
EFFECT_FACTORIES: dict[str, Callable[[dict[str, Any], int], Effect]] = {
    name: kind.build for name, kind in EFFECTS.items()}


def build_effect(spec: EffectSpec, seed: int = 0) -> Effect:
    """Instantiate one effect; ``seed`` only matters to seeded effects."""
    return EFFECT_FACTORIES[spec.type](dict(spec.params), seed)


def build_chain(specs: Sequence[EffectSpec], seed: int = 0) -> list[Effect]:
    """Instantiate a chain; each seeded effect gets its own seed derived from ``seed``."""
    return [build_effect(spec, derive_seed(seed, str(i))) for i, spec in enumerate(specs)]


def prepare_chain(chain: Sequence[Effect], shape: tuple[int, int],
                  sample_rate: float) -> list[Effect]:
    """Make ahead what effects can make before their input exists (the crackle's noise).

    The master chain can only start once every stem is done; preparing it meanwhile, on a spare
    core, takes that work off the critical path. The output is the same as the chain's own.
    """
    return [e.prepared(shape, sample_rate) if isinstance(e, VinylCrackle) else e for e in chain]


# Effects that treat each channel on its own: a stereo chain of them gives, bit for bit, what
# one chain per channel gives (tests/test_fx.py checks each); declared in the effect table.
CHANNEL_WISE = frozenset(name for name, kind in EFFECTS.items() if kind.channel_wise)


def channel_chains(specs: Sequence[EffectSpec], seed: int, shape: tuple[int, int],
                   sample_rate: float) -> list[list[Effect]]:
    """The chain of ``specs`` prepared for audio of ``shape`` (see ``prepare_chain``): one chain
    per channel where every effect is channel-wise, so the channels can run in parallel with
    the same output (``apply_chains``); else a single chain.
    """
    if shape[0] < 2 or any(spec.type not in CHANNEL_WISE for spec in specs):
        return [prepare_chain(build_chain(specs, seed), shape, sample_rate)]
    # pedalboard plugins keep state: a set per channel; the crackle's noise is made once
    own = [build_chain(specs, seed) for _ in range(shape[0])]
    shared = prepare_chain(own[0], shape, sample_rate)
    return [[made.channel(c) if isinstance(made, _AddPrepared) else mine
             for made, mine in zip(shared, chain, strict=True)] for c, chain in enumerate(own)]


def apply_chains(chains: Sequence[Sequence[Effect]], audio: np.ndarray, sample_rate: float,
                 pool: Executor) -> np.ndarray:
    """``apply_chain`` with one chain, else ``chains[c]`` on channel ``c``, in parallel on
    ``pool`` (pedalboard releases the GIL). Returns float32 of ``audio``'s shape."""
    if len(chains) == 1:
        return apply_chain(chains[0], audio, sample_rate)
    audio = np.ascontiguousarray(audio, dtype=np.float32)
    out = np.empty_like(audio)

    def run(c: int) -> None:
        out[c] = apply_chain(chains[c], audio[c : c + 1], sample_rate)[0]

    list(pool.map(run, range(len(chains))))
    return out


def _fit_length(audio: np.ndarray, n_samples: int) -> np.ndarray:
    if audio.shape[-1] >= n_samples:
        return audio[..., :n_samples]
    return np.pad(audio, ((0, 0), (0, n_samples - audio.shape[-1])))


def apply_chain(chain: Sequence[Effect], audio: np.ndarray, sample_rate: float) -> np.ndarray:
    """Run ``audio`` (channels, samples) through ``chain``; returns float32 of the same shape.

    Runs of consecutive pedalboard plugins go through one ``pb.Pedalboard`` call, which saves
    a buffer conversion per plugin.
    """
    out = np.ascontiguousarray(audio, dtype=np.float32)
    n_samples, plugins = out.shape[-1], []
    if n_samples == 0:
        return out.copy()
    for effect in [*chain, None]:
        if isinstance(effect, pb.Plugin):
            plugins.append(effect)
            continue
        if plugins:
            out = _fit_length(pb.Pedalboard(plugins)(out, sample_rate, reset=True), n_samples)
            plugins = []
        if effect is not None:
            out = _fit_length(effect(out, sample_rate), n_samples)
    return np.ascontiguousarray(out, dtype=np.float32)
