"""BS.1770-4 loudness and true peak against known values (EBU Tech 3341 style signals)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.signal import resample_poly

from arranger.audio.loudness import (
    INTERPOLATION_HALF_TAPS,
    db_to_gain,
    integrated_loudness,
    interpolation_weights,
    k_weighting_sos,
    peak_envelope,
    sample_peak_db,
    true_peak,
    true_peak_db,
)


def tone(freq_hz: float, level_dbfs: float, seconds: float, sample_rate: int,
         phase: float = 0.0) -> np.ndarray:
    t = np.arange(int(seconds * sample_rate)) / sample_rate
    return (db_to_gain(level_dbfs) * np.sin(2 * np.pi * freq_hz * t + phase)).astype(np.float32)


def faded(x: np.ndarray, fade: int = 2048) -> np.ndarray:
    """Hann fades at both ends: a hard start has genuine (Gibbs) intersample overs."""
    ramp = np.sin(np.linspace(0, np.pi / 2, fade)) ** 2
    x = x.copy()
    x[..., :fade] *= ramp
    x[..., -fade:] *= ramp[::-1]
    return x


@pytest.mark.parametrize("sample_rate", [44100, 48000])
def test_full_scale_997_hz_reads_minus_3_01_in_one_channel_and_0_in_both(sample_rate):
    x = tone(997.0, 0.0, 3.0, sample_rate)
    assert integrated_loudness(x[None], sample_rate) == pytest.approx(-3.01, abs=0.02)
    assert integrated_loudness(np.stack([x, np.zeros_like(x)]), sample_rate) == pytest.approx(
        -3.01, abs=0.02)
    assert integrated_loudness(np.stack([x, x]), sample_rate) == pytest.approx(0.0, abs=0.02)


@pytest.mark.parametrize("level", [-23.0, -33.0])
def test_ebu_3341_stereo_1_khz(level):
    x = tone(1000.0, level, 3.0, 48000)
    assert integrated_loudness(np.stack([x, x]), 48000) == pytest.approx(level, abs=0.1)


@pytest.mark.parametrize("segments", [
    [(-36.0, 10), (-23.0, 60), (-36.0, 10)],  # EBU Tech 3341 case 3: the relative gate
    [(-72.0, 10), (-36.0, 10), (-23.0, 60), (-36.0, 10), (-72.0, 10)],  # case 4: both gates
])
def test_ebu_3341_gating_cases(segments):
    sr = 48000
    x = np.concatenate([tone(1000.0, level, seconds, sr) for level, seconds in segments])
    assert integrated_loudness(np.stack([x, x]), sr) == pytest.approx(-23.0, abs=0.1)


def test_silence_and_signals_below_the_absolute_gate():
    sr = 44100
    assert integrated_loudness(np.zeros((2, sr), np.float32), sr) == -math.inf
    assert integrated_loudness(np.stack([tone(1000.0, -80.0, 2.0, sr)] * 2), sr) == -math.inf
    assert integrated_loudness(np.ones((2, sr // 4), np.float32), sr) == -math.inf  # < 400 ms


def test_k_weighting_matches_the_standard_at_48_khz():
    sos = k_weighting_sos(48000)
    assert np.allclose(sos[0], [1.53512485958697, -2.69169618940638, 1.19839281085285,
                                1.0, -1.69065929318241, 0.73248077421585], atol=1e-8)
    assert np.allclose(sos[1, 3:], [1.0, -1.99004745483398, 0.99007225036621], atol=1e-8)


@pytest.mark.parametrize("sample_rate", [44100, 48000])
def test_true_peak_finds_the_intersample_peak_of_a_quarter_rate_sine(sample_rate):
    x = faded(tone(sample_rate / 4, 0.0, 1.0, sample_rate, phase=np.pi / 4))
    assert sample_peak_db(x) == pytest.approx(-3.01, abs=0.01)
    assert true_peak_db(x[None], sample_rate) == pytest.approx(0.0, abs=0.1)


def test_true_peak_matches_brute_force_oversampling():
    rng = np.random.default_rng(0)
    x = resample_poly(rng.standard_normal((2, 22050)), 2, 3, axis=1).astype(np.float32) * 0.3
    reference = np.abs(resample_poly(x, 16, 1, axis=1)).max()
    assert 20 * np.log10(true_peak(x)) == pytest.approx(20 * np.log10(reference), abs=0.1)
    assert true_peak(x) >= np.abs(x).max()


def test_peak_envelope_is_exact_above_its_threshold():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((2, 5000)).astype(np.float32) * 0.2
    dense = peak_envelope(x, threshold=0.0)  # everything interpolated
    sparse = peak_envelope(x, threshold=0.5)
    hot = dense > 0.5
    assert np.array_equal(sparse[hot], dense[hot])
    assert (sparse[~hot] <= 0.5).all()


def reference_envelope(x: np.ndarray) -> np.ndarray:
    """Every sample and its 3 interpolated points, one filter window at a time (silence
    outside the array): what ``peak_envelope`` computes, the slow way."""
    half, n = INTERPOLATION_HALF_TAPS, x.shape[-1]
    padded = np.pad(x.astype(np.float64), ((0, 0), (half - 1, half)))
    windows = np.lib.stride_tricks.sliding_window_view(padded, 2 * half, axis=1)[:, :n]
    inter = np.abs(windows @ interpolation_weights().T.astype(np.float64)).max(axis=(0, 2))
    return np.maximum(np.abs(x).max(axis=0), inter)


def test_peak_envelope_matches_the_slow_way_around_sparse_peaks_and_at_the_ends():
    rng = np.random.default_rng(2)
    x = rng.standard_normal((2, 20000)).astype(np.float32) * 0.05
    x[:, rng.integers(0, 20000, 60)] *= 12  # many separate loud spots, a few close together
    x[0, 3], x[1, -2] = 0.9, -0.95  # filter windows running off both ends
    reference = reference_envelope(x)
    for threshold in (0.0, 0.4, 0.8):
        envelope = peak_envelope(x, threshold)
        hot = reference > threshold
        assert np.allclose(envelope[hot], reference[hot], rtol=1e-6, atol=1e-7)
        assert (envelope[~hot] <= reference[~hot] + 1e-7).all()
    assert true_peak(x) == pytest.approx(reference.max(), rel=1e-6)


def test_silence_has_no_peak():
    assert true_peak_db(np.zeros((2, 100), np.float32)) == -math.inf
    assert sample_peak_db(np.zeros(0)) == -math.inf


def test_loudness_in_blocks_with_a_guard_tone_equals_one_filter_pass():
    """Bursts between long silences (a drum stem's intro and rests): the K-weighting runs in
    blocks on a -400 dBFS guard tone (no subnormal state), and reads what one plain pass does."""
    from scipy.signal import sosfilt

    rate = 44100
    rng = np.random.default_rng(3)
    x = np.zeros((2, 30 * rate), np.float32)
    for start in (0, 11 * rate, 24 * rate):  # 1 s bursts, seconds of exact silence between
        x[:, start : start + rate] = rng.standard_normal((2, rate)) * 0.2
    hop, block = rate // 10, 4 * rate // 10
    weighted = sosfilt(k_weighting_sos(rate), x.astype(np.float64), axis=-1)
    n_hops = x.shape[-1] // hop
    per_hop = (weighted[:, : n_hops * hop] ** 2).reshape(2, n_hops, hop).sum(axis=(0, 2))
    blocks = np.convolve(per_hop, np.ones(block // hop), mode="valid") / block
    lufs = -0.691 + 10 * np.log10(blocks[blocks > 10 ** ((-70 + 0.691) / 10)])
    loud = blocks[blocks > 10 ** ((-70 + 0.691) / 10)]
    gate = -0.691 + 10 * np.log10(loud.mean()) - 10
    expected = -0.691 + 10 * np.log10(loud[lufs > gate].mean())
    assert integrated_loudness(x, rate) == pytest.approx(expected, abs=1e-9)
