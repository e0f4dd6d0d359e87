"""Mix stems into a master: per-layer chain, gain and pan; master chain; loudness + true peak.

A processed stem depends only on its raw stem, its ``LayerSound``, the sample rate and the seed
(effect seeds come from ``derive_seed(seed, layer)``), never on the other layers, so re-rendering
one layer leaves every other stem byte-identical.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from concurrent.futures import Executor, ThreadPoolExecutor
from contextlib import nullcontext
from pathlib import Path
from typing import NamedTuple

import numpy as np

from arranger.audio.config import BUS_REFERENCE_LUFS, LayerSound, MasterSound, derive_seed
from arranger.audio.effects import EFFECTS
from arranger.audio.files import read_audio, write_mp3
from arranger.audio.fx import (
    Effect,
    apply_chain,
    apply_chains,
    build_chain,
    build_effect,
    channel_chains,
)
from arranger.audio.kernels import ND_IMAGE, ND_NEAREST, kernel
from arranger.audio.loudness import (
    db_to_gain,
    integrated_loudness,
    peak_envelope,
    true_peak_db,
)

STEM_CEILING_DBFS = -1.01  # written stems peak at most here (-1 dBFS, minus 24-bit rounding)
LOUDNESS_TOLERANCE_LU = 0.2  # normalisation stops once this close to the target
LIMITER_MARGIN_DB = 0.05  # the limiter aims this far under the true-peak ceiling
MAX_PASSES = 6
ENVELOPE_HEADROOM_DB = 1.5  # gain corrections the peak envelope is computed to allow
LOOKAHEAD_MS, HOLD_MS = 3.0, 40.0
# LAME moves true peaks up by 0.1-0.25 dB (measured on 5 songs): the MP3's source is limited
# this far under the ceiling, and the decoded file is measured to be sure.
MP3_MARGIN_DB = 0.5


def pan_gains(pan: float) -> tuple[float, float]:
    """Constant-power balance for stereo input: (left, right) gains, 1.0 each at centre.

    ``left**2 + right**2 == 2`` for every ``pan`` in -1..1, so moving a layer does not change its
    power; hard left is +3 dB left and silence right.
    """
    angle = (pan + 1.0) * math.pi / 4.0
    return math.sqrt(2.0) * math.cos(angle), math.sqrt(2.0) * math.sin(angle)


def as_stereo(audio: np.ndarray) -> np.ndarray:
    """(channels, samples) -> (2, samples) float32; mono is duplicated."""
    audio = np.atleast_2d(np.asarray(audio, dtype=np.float32))
    return np.repeat(audio, 2, axis=0) if audio.shape[0] == 1 else audio[:2]


def process_stem(stem: np.ndarray, sound: LayerSound, sample_rate: int, seed: int,
                 name: str) -> np.ndarray:
    """Layer chain, fader and pan; scaled down (never up) to peak at most -1 dBFS.

    Returns (2, samples) float32, the same length as ``stem``.
    """
    out = chain_and_pan(stem, sound, sample_rate, seed, name)
    out *= np.float32(db_to_gain(stem_gain_db(out, sound, sample_rate)))
    return under_ceiling(out)


def chain_and_pan(stem: np.ndarray, sound: LayerSound, sample_rate: int, seed: int,
                  name: str) -> np.ndarray:
    """The layer's chain, then its pan: (2, samples) float32, never ``stem``'s own memory."""
    chain = build_chain(sound.effects, derive_seed(seed, name))
    source = stem[:1] if mono_through(stem, sound) else stem  # the copy made after: the same
    out = as_stereo(apply_chain(chain, source, sample_rate))
    if np.shares_memory(out, stem):
        out = out.copy()
    left, right = pan_gains(sound.pan)
    out *= np.array([[left], [right]], dtype=np.float32)  # in place: memory
    return out


def mono_through(stem: np.ndarray, sound: LayerSound) -> bool:
    """Whether ``stem``'s channels are equal and stay so through the layer's chain: effects that
    treat channels alone and add nothing of their own. One channel then does for both (a bass
    synthesised dead centre: its chain costs half)."""
    kinds = [EFFECTS[spec.type] for spec in sound.effects]
    return (stem.ndim == 2 and len(stem) == 2 and all(k.channel_wise and not k.noise for k in kinds)
            and np.array_equal(stem[0], stem[1]))


def under_ceiling(out: np.ndarray) -> np.ndarray:
    """``out`` scaled down in place, if need be, to peak at most ``STEM_CEILING_DBFS``."""
    peak = max(float(out.max(initial=0.0)), -float(out.min(initial=0.0)))  # no |out| copy
    ceiling = db_to_gain(STEM_CEILING_DBFS)
    if peak > ceiling:
        out *= np.float32(ceiling / peak)
    return out


def stem_gain_db(stem: np.ndarray, sound: LayerSound, sample_rate: float) -> float:
    """The gain (dB) that brings a processed, panned stem to its level.

    With ``sound.level_lu`` the stem's own integrated loudness (BS.1770) is brought to
    ``BUS_REFERENCE_LUFS + level_lu``: it depends on this stem only, never on the others. A
    silent stem (or one too short to gate) is left as it is. Without it, ``gain_db`` is the gain.
    """
    if sound.level_lu is None:
        return sound.gain_db
    loudness = integrated_loudness(stem, sample_rate)
    if not math.isfinite(loudness):
        return 0.0
    return BUS_REFERENCE_LUFS + sound.level_lu - loudness


def _runs(mask: np.ndarray, merge_gap: int) -> list[tuple[int, int]]:
    """[start, stop) ranges covering the True samples of ``mask``; True samples at most
    ``merge_gap`` apart share a range."""
    index = np.flatnonzero(mask)
    if len(index) == 0:
        return []
    breaks = np.flatnonzero(np.diff(index) > merge_gap)
    starts = np.concatenate([index[:1], index[breaks + 1]])
    stops = np.concatenate([index[breaks], index[-1:]]) + 1
    return list(zip(starts.tolist(), stops.tolist(), strict=True))


def limiter_gain(envelope: np.ndarray, ceiling: float, ahead: int, hold: int) -> np.ndarray:
    """Gain curve (samples,) float32 that keeps ``envelope * gain <= ceiling``.

    The needed gain ``min(1, ceiling / envelope)`` is held at its minimum from ``ahead`` samples
    before to ``hold`` after each peak, then smoothed by a box ``2 * ahead + 1`` wide: the box
    centred on a peak only averages held values, so the gain there never exceeds what the peak
    needs. Only stretches around overs are computed; elsewhere the gain is exactly 1.
    """
    gain = np.ones(len(envelope), dtype=np.float32)
    hold += (hold - ahead) % 2  # window [n - hold, n + ahead] needs a whole-sample centre
    margin = hold + 2 * ahead + 1  # how far an over can move the gain
    for start, stop in _runs(envelope > ceiling, merge_gap=2 * margin):
        lo, hi = max(start - margin, 0), min(stop + margin, len(envelope))
        with np.errstate(divide="ignore"):  # silent samples need no reduction: inf -> 1
            need = np.minimum(1.0, ceiling / envelope[lo:hi]).astype(np.float32)
        held = running_minimum(need, hold + ahead + 1, origin=(hold - ahead) // 2)
        gain[lo:hi] = running_mean(held, 2 * ahead + 1)
    return gain


def running_minimum(x: np.ndarray, size: int, origin: int = 0) -> np.ndarray:
    """``scipy.ndimage.minimum_filter1d(x, size, origin=origin, mode="nearest")`` of float32
    ``x``, through ndimage's loop alone (:mod:`arranger.audio.kernels`)."""
    out = np.empty_like(x)
    kernel(ND_IMAGE).min_or_max_filter1d(np.ascontiguousarray(x), size, 0, out, ND_NEAREST, 0.0,
                                         origin, 1)  # 1: the minimum
    return out


def running_mean(x: np.ndarray, size: int) -> np.ndarray:
    """``scipy.ndimage.uniform_filter1d(x, size, mode="nearest")`` of float32 ``x``, likewise."""
    out = np.empty_like(x)
    kernel(ND_IMAGE).uniform_filter1d(np.ascontiguousarray(x), size, 0, out, ND_NEAREST, 0.0, 0)
    return out


def true_peak_limit(audio: np.ndarray, sample_rate: float, ceiling_db: float,
                    lookahead_ms: float = LOOKAHEAD_MS, hold_ms: float = HOLD_MS,
                    envelope: np.ndarray | None = None, gain: float = 1.0) -> np.ndarray:
    """Lookahead limiter on the 4x-oversampled peak envelope (channels linked) of
    ``audio * gain``.

    Gain changes take ``2 * lookahead_ms``; a reduction is held ``hold_ms``. ``envelope`` may
    pass a precomputed ``peak_envelope(audio, ceiling / gain)`` (of ``audio`` before the gain).
    Returns float32 like ``audio``.
    """
    ceiling = db_to_gain(ceiling_db)
    if envelope is None:
        envelope = peak_envelope(audio, ceiling / gain)
    ahead = max(1, round(lookahead_ms * sample_rate / 1000))
    hold = max(ahead, round(hold_ms * sample_rate / 1000))
    curve = limiter_gain(envelope * np.float32(gain), ceiling, ahead, hold)
    curve *= np.float32(gain)  # the gain rides on the curve: one pass over the audio
    return np.asarray(audio, dtype=np.float32) * curve


class Limited(NamedTuple):
    """What a master's limiter started from, so a copy limited lower (the MP3's source) costs
    one gain curve instead of a new 4x-oversampled envelope (~0.7 s for 3 minutes)."""

    audio: np.ndarray  # (channels, n) float32, before the gain and the limiter
    sample_rate: float
    gain: float  # linear, the master's (its trim included)
    envelope: np.ndarray  # peak_envelope(audio, exact_from)
    exact_from: float  # ... exact wherever ``audio`` (before the gain) could peak above this

    def limited(self, ceiling_db: float) -> np.ndarray:
        """``audio * gain`` limited to ``ceiling_db`` true peak (``true_peak_limit``)."""
        envelope = self.envelope
        if db_to_gain(ceiling_db) / self.gain < self.exact_from:  # lower than measured for
            envelope = None
        return true_peak_limit(self.audio, self.sample_rate, ceiling_db, envelope=envelope,
                               gain=self.gain)


class Normalised(NamedTuple):
    """A normalised master and what it measures."""

    audio: np.ndarray  # (2, n) float32
    loudness_lufs: float  # integrated, BS.1770-4; -inf for silence
    true_peak_dbtp: float  # 4x oversampled; -inf for silence
    source: Limited | None = None  # what its limiter started from (its gain before any trim)


def normalise(audio: np.ndarray, sample_rate: float, target_lufs: float,
              ceiling_dbtp: float, on_limited: Callable[[Limited], None] | None = None
              ) -> Normalised:
    """Gain to ``target_lufs`` integrated loudness, limited to ``ceiling_dbtp`` true peak.

    Limiting lowers loudness, so the gain is corrected and the limiter re-run until within
    ``LOUDNESS_TOLERANCE_LU``. The peak envelope is computed once for the largest gain tried.
    ``on_limited`` gets the limiter's input as soon as the gain is known, before the master's
    own true peak is checked: the MP3 (limited lower, checked on its own) starts there.
    Silence, audio too short to gate, or a target of -inf only get the ceiling.
    """
    limit = ceiling_dbtp - LIMITER_MARGIN_DB
    loudness = integrated_loudness(audio, sample_rate)
    if not (math.isfinite(loudness) and math.isfinite(target_lufs)):
        out = true_peak_limit(audio, sample_rate, limit)
        reached = integrated_loudness(out, sample_rate)
        return Normalised(out, reached, true_peak_db(out, sample_rate))
    gain_db, envelope_gain_db, envelope = target_lufs - loudness, -math.inf, None
    for _ in range(MAX_PASSES):
        if gain_db > envelope_gain_db:  # exact wherever this gain or 1.5 dB more could clip
            envelope_gain_db = gain_db + ENVELOPE_HEADROOM_DB
            exact_from = db_to_gain(limit - envelope_gain_db)
            envelope = peak_envelope(audio, exact_from)
        used_db = gain_db
        out = true_peak_limit(audio, sample_rate, limit, envelope=envelope,
                              gain=db_to_gain(used_db))
        reached = integrated_loudness(out, sample_rate)
        if abs(reached - target_lufs) <= LOUDNESS_TOLERANCE_LU:
            break
        gain_db += target_lufs - reached
    source = Limited(audio, sample_rate, db_to_gain(used_db), envelope, exact_from)
    if on_limited is not None:
        on_limited(source)
    peak = true_peak_db(out, sample_rate)
    if peak > ceiling_dbtp:  # gain modulation can nudge a peak past the margin: trim it
        trim = ceiling_dbtp - peak
        out, reached, peak = out * np.float32(db_to_gain(trim)), reached + trim, ceiling_dbtp
    return Normalised(out, reached, peak, source)


def master_chains(master: MasterSound, seed: int, shape: tuple[int, int],
                  sample_rate: float) -> list[list[Effect]]:
    """The master bus's effects but its noise (``master_noise``), seeded for this song and
    prepared for audio of ``shape``: one chain per channel where they allow it
    (``fx.channel_chains``)."""
    bus = tuple(spec for spec in master.effects if not EFFECTS[spec.type].noise)
    return channel_chains(bus, derive_seed(seed, "master"), shape, sample_rate)


def master_noise(master: MasterSound, seed: int, shape: tuple[int, int],
                 sample_rate: float) -> np.ndarray | None:
    """What the master bus's noise effects (crackle, hiss, rumble) add, (2, n) float32: the
    ``fx`` stem, mixed in at the bus's input. None when the bus makes no noise.

    Each is seeded by its place in the whole chain, as ``fx.build_chain`` would seed it.
    """
    seed = derive_seed(seed, "master")
    noises = [build_effect(spec, derive_seed(seed, str(i)))
              for i, spec in enumerate(master.effects) if EFFECTS[spec.type].noise]
    if not noises:
        return None
    total = np.zeros((2, shape[-1]), dtype=np.float32)
    for effect in noises:
        total += as_stereo(effect.noise((2, shape[-1]), sample_rate))
    return total


def master_measured(total: np.ndarray, master: MasterSound, sample_rate: int, seed: int = 0,
                    chains: Sequence[Sequence[Effect]] | None = None,
                    pool: Executor | None = None, noise: np.ndarray | None = None,
                    on_limited: Callable[[Limited], None] | None = None) -> Normalised:
    """Add the bus's noise to the sum of the stems, run the master chain and normalise.

    Parameters
    ----------
    total : (channels, n) float32, the processed stems summed (``produce`` sums them in name
        order, as read back from disk).
    master : master chain and loudness targets.
    chains : ``master_chains(...)`` made ahead, or None to make them here.
    pool : runs the channels' chains side by side (else a pool of two threads is made here).
    noise : the ``fx`` stem as written (``master_noise``), or None to make it here.
    on_limited : see :func:`normalise` (not called for a silent sum).

    Returns
    -------
    The master, (2, n) float32 with no NaN/inf, at ``master.target_lufs`` within
    ``LOUDNESS_TOLERANCE_LU`` and true peak <= the ceiling, with both measures. A silent sum is
    not pushed to the target: the master chain's noise (crackle) stays as it is.
    """
    total = as_stereo(total)
    if chains is None:
        chains = master_chains(master, seed, total.shape, sample_rate)
    if noise is None:
        noise = master_noise(master, seed, total.shape, sample_rate)
    bus = total if noise is None else total + as_stereo(noise)
    with ThreadPoolExecutor(2) if pool is None else nullcontext(pool) as runner:
        out = as_stereo(apply_chains(chains, bus, sample_rate, runner))
    del bus
    if not np.isfinite(out).all():  # the check is ~8x cheaper than always cleaning
        out = np.nan_to_num(out, nan=0.0, posinf=0.0, neginf=0.0)
    if not total.any():
        return normalise(out, sample_rate, -math.inf, master.true_peak_dbtp)
    return normalise(out, sample_rate, master.target_lufs, master.true_peak_dbtp, on_limited)


def write_mp3_master(path: Path, master: np.ndarray | Limited, sample_rate: int,
                     ceiling_dbtp: float) -> float:
    """Write the master as MP3 whose decoded true peak is at most ``ceiling_dbtp``.

    The encoder's source is limited ``MP3_MARGIN_DB`` under the ceiling (loudness moves by
    < 0.1 LU): the master's own limiter input limited lower when ``master`` is a
    :class:`Limited` (one limiter, as the WAV's), else the master's audio limited again.
    Should the decoded file still peak over the ceiling, the source is turned down by the
    overshoot and encoded again. Returns the decoded file's true peak, dBTP (-inf if silent).
    """
    if isinstance(master, Limited):
        source = master.limited(ceiling_dbtp - MP3_MARGIN_DB)
    else:
        source = true_peak_limit(master, sample_rate, ceiling_dbtp - MP3_MARGIN_DB)
    for _ in range(2):
        write_mp3(path, source, sample_rate)
        peak = true_peak_db(read_audio(path)[0], sample_rate)
        if peak <= ceiling_dbtp:
            break
        source *= np.float32(db_to_gain(ceiling_dbtp - MP3_MARGIN_DB - peak))
    return peak
