"""Mix stems into a master: per-layer chain, gain and pan; master chain; loudness + true peak.

A processed stem depends only on its raw stem, its ``LayerSound``, the sample rate and the seed
(effect seeds come from ``derive_seed(seed, layer)``), never on the other layers, so re-rendering
one layer leaves every other stem byte-identical.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from concurrent.futures import Executor, ThreadPoolExecutor
from contextlib import nullcontext
from typing import NamedTuple

import numpy as np

from arranger.audio.config import LayerSound, MasterSound, derive_seed
from arranger.audio.fx import Effect, apply_chain, apply_chains, build_chain, channel_chains
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
    chain = build_chain(sound.effects, derive_seed(seed, name))
    out = as_stereo(apply_chain(chain, stem, sample_rate))
    if np.shares_memory(out, stem):
        out = out.copy()
    left, right = pan_gains(sound.pan)
    gain = db_to_gain(sound.gain_db)
    out *= np.array([[gain * left], [gain * right]], dtype=np.float32)  # in place: memory
    peak = max(float(out.max(initial=0.0)), -float(out.min(initial=0.0)))  # no |out| copy
    ceiling = db_to_gain(STEM_CEILING_DBFS)
    if peak > ceiling:
        out *= np.float32(ceiling / peak)
    return out


def process_stems(stems: Mapping[str, np.ndarray], sounds: Mapping[str, LayerSound],
                  sample_rate: int, seed: int = 0, workers: int = 2) -> dict[str, np.ndarray]:
    """``process_stem`` for every layer (in threads); layers without a sound stay dry."""
    def one(name: str) -> np.ndarray:
        sound = sounds.get(name, LayerSound(program=0))
        return process_stem(stems[name], sound, sample_rate, seed, name)

    with ThreadPoolExecutor(max(1, workers)) as pool:
        return dict(zip(stems, pool.map(one, stems), strict=True))


def sum_stems(stems: Mapping[str, np.ndarray]) -> np.ndarray:
    """Sum of (2, n) stems in name order (float addition is order-sensitive); (2, n) float32."""
    lengths = {name: s.shape[-1] for name, s in stems.items()}
    if len(set(lengths.values())) > 1:
        raise ValueError(f"stems differ in length (samples): {lengths}")
    total = np.zeros((2, next(iter(lengths.values()), 0)), dtype=np.float32)
    for name in sorted(stems):
        total += as_stereo(stems[name])
    return total


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
    from scipy.ndimage import minimum_filter1d, uniform_filter1d  # ~0.2 s import: when needed

    gain = np.ones(len(envelope), dtype=np.float32)
    hold += (hold - ahead) % 2  # window [n - hold, n + ahead] needs a whole-sample centre
    margin = hold + 2 * ahead + 1  # how far an over can move the gain
    for start, stop in _runs(envelope > ceiling, merge_gap=2 * margin):
        lo, hi = max(start - margin, 0), min(stop + margin, len(envelope))
        need = np.minimum(1.0, ceiling / envelope[lo:hi]).astype(np.float32)
        held = minimum_filter1d(need, hold + ahead + 1, origin=(hold - ahead) // 2,
                                mode="nearest")
        gain[lo:hi] = uniform_filter1d(held, 2 * ahead + 1, mode="nearest")
    return gain


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


class Normalised(NamedTuple):
    """A normalised master and what it measures."""

    audio: np.ndarray  # (2, n) float32
    loudness_lufs: float  # integrated, BS.1770-4; -inf for silence
    true_peak_dbtp: float  # 4x oversampled; -inf for silence


def normalise(audio: np.ndarray, sample_rate: float, target_lufs: float,
              ceiling_dbtp: float) -> Normalised:
    """Gain to ``target_lufs`` integrated loudness, limited to ``ceiling_dbtp`` true peak.

    Limiting lowers loudness, so the gain is corrected and the limiter re-run until within
    ``LOUDNESS_TOLERANCE_LU``. The peak envelope is computed once for the largest gain tried.
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
            envelope = peak_envelope(audio, db_to_gain(limit - envelope_gain_db))
        out = true_peak_limit(audio, sample_rate, limit, envelope=envelope,
                              gain=db_to_gain(gain_db))
        reached = integrated_loudness(out, sample_rate)
        if abs(reached - target_lufs) <= LOUDNESS_TOLERANCE_LU:
            break
        gain_db += target_lufs - reached
    peak = true_peak_db(out, sample_rate)
    if peak > ceiling_dbtp:  # gain modulation can nudge a peak past the margin: trim it
        trim = ceiling_dbtp - peak
        out, reached, peak = out * np.float32(db_to_gain(trim)), reached + trim, ceiling_dbtp
    return Normalised(out, reached, peak)


def master_chains(master: MasterSound, seed: int, shape: tuple[int, int],
                  sample_rate: float) -> list[list[Effect]]:
    """The master bus's effects, seeded for this song and prepared for audio of ``shape``: one
    chain per channel where they allow it (``fx.channel_chains``)."""
    return channel_chains(master.effects, derive_seed(seed, "master"), shape, sample_rate)


def master_measured(stems: Mapping[str, np.ndarray], master: MasterSound, sample_rate: int,
                    seed: int = 0, chains: Sequence[Sequence[Effect]] | None = None,
                    pool: Executor | None = None) -> Normalised:
    """``master_bus``, also returning the master's loudness and true peak.

    ``chains`` may pass ``master_chains(...)`` made ahead; ``pool`` runs the channels' chains
    side by side (else a pool of two threads is made here).
    """
    total = sum_stems(stems)
    if chains is None:
        chains = master_chains(master, seed, total.shape, sample_rate)
    with ThreadPoolExecutor(2) if pool is None else nullcontext(pool) as runner:
        out = as_stereo(apply_chains(chains, total, sample_rate, runner))
    if not np.isfinite(out).all():  # the check is ~8x cheaper than always cleaning
        out = np.nan_to_num(out, nan=0.0, posinf=0.0, neginf=0.0)
    if not total.any():  # no music: keep the master chain's noise (crackle) as it is, not at -14
        return normalise(out, sample_rate, -math.inf, master.true_peak_dbtp)
    return normalise(out, sample_rate, master.target_lufs, master.true_peak_dbtp)


def master_bus(stems: Mapping[str, np.ndarray], master: MasterSound, sample_rate: int,
               seed: int = 0) -> np.ndarray:
    """Sum processed stems, run the master chain, normalise; (2, n) float32, no NaN/inf."""
    return master_measured(stems, master, sample_rate, seed).audio


def mix(stems: dict[str, np.ndarray], sounds: dict[str, LayerSound], master: MasterSound,
        sample_rate: int, seed: int = 0) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Process every stem and master them.

    Parameters
    ----------
    stems : layer -> raw (channels, n) float32 stem, all the same length.
    sounds : layer -> its sound; missing layers are mixed dry at unity, centred.
    master : master chain and loudness targets.

    Returns
    -------
    master : (2, n) float32 at ``master.target_lufs`` +-0.5 LU, true peak <= the ceiling.
    processed : layer -> (2, n) float32 stem as mixed, peaks <= -1 dBFS.
    """
    processed = process_stems(stems, sounds, sample_rate, seed)
    return master_bus(processed, master, sample_rate, seed), processed
