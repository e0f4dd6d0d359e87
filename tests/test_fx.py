"""Effects measured on test signals: wobble by instantaneous frequency, crackle by click count."""

from __future__ import annotations

import math

import numpy as np
import pedalboard as pb
import pytest
from scipy.signal import hilbert

from arranger.audio.config import EFFECT_PARAMETERS, EffectSpec
from arranger.audio.fx import (
    CHANNEL_WISE,
    EFFECT_FACTORIES,
    HighPass,
    LowPass,
    TapeWobble,
    VinylCrackle,
    apply_chain,
    apply_chains,
    build_chain,
    build_effect,
    channel_chains,
)

RATES = [22050, 44100, 48000]


def sine(freq_hz: float, seconds: float, sample_rate: int, channels: int = 1) -> np.ndarray:
    t = np.arange(int(seconds * sample_rate)) / sample_rate
    return np.tile(np.sin(2 * np.pi * freq_hz * t).astype(np.float32), (channels, 1))


def speed_deviation(audio: np.ndarray, sample_rate: int, freq_hz: float) -> np.ndarray:
    """Relative pitch deviation over time from the Hilbert instantaneous frequency.

    The phase derivative is smoothed over ~5 ms; 0.25 s at each end is dropped (edge effects).
    """
    phase = np.unwrap(np.angle(hilbert(audio[0].astype(np.float64))))
    inst_hz = np.diff(phase) * sample_rate / (2 * np.pi)
    width = int(0.005 * sample_rate)
    smooth = np.convolve(inst_hz, np.ones(width) / width, mode="valid")
    edge = sample_rate // 4
    return smooth[edge:-edge] / freq_hz - 1.0


def rms_db(audio: np.ndarray) -> float:
    return 10 * math.log10(float(np.mean(np.square(audio, dtype=np.float64))) + 1e-30)


@pytest.mark.parametrize("sample_rate", RATES)
@pytest.mark.parametrize("channels", [1, 2])
@pytest.mark.parametrize("interpolation", ["linear", "cubic"])
def test_wobble_peak_pitch_deviation_matches_the_depth(sample_rate, channels, interpolation):
    wobble = TapeWobble(depth_percent=0.5, wow_rate_hz=1.0, flutter_depth_percent=0.0,
                        drift_percent=0.0, seed=3, interpolation=interpolation)
    audio = sine(440.0, 4.0, sample_rate, channels)
    out = wobble(audio, sample_rate)
    assert out.shape == audio.shape and out.dtype == np.float32
    deviation = speed_deviation(out, sample_rate, 440.0)
    assert np.abs(deviation).max() == pytest.approx(0.005, rel=0.10)
    if channels == 2:
        assert np.array_equal(out[0], out[1])


def test_wobble_rates_are_recovered():
    sample_rate = 22050
    wobble = TapeWobble(depth_percent=0.4, wow_rate_hz=0.8, flutter_rate_hz=9.0,
                        flutter_depth_percent=0.1, drift_percent=0.0, seed=1)
    deviation = speed_deviation(wobble(sine(440.0, 10.5, sample_rate), sample_rate),
                                sample_rate, 440.0)
    spectrum = np.abs(np.fft.rfft(deviation * np.hanning(len(deviation))))
    freqs = np.fft.rfftfreq(len(deviation), 1 / sample_rate)
    assert freqs[np.argmax(spectrum)] == pytest.approx(0.8, abs=0.15)
    fast = freqs > 3.0
    assert freqs[fast][np.argmax(spectrum[fast])] == pytest.approx(9.0, abs=0.3)
    assert np.abs(deviation).max() == pytest.approx(0.005, rel=0.10)  # wow + flutter peaks


def test_drift_stays_within_its_depth_and_is_slow():
    wobble = TapeWobble(depth_percent=0.0, flutter_depth_percent=0.0, drift_percent=0.3, seed=5)
    deviation = speed_deviation(wobble(sine(440.0, 8.0, 22050), 22050), 22050, 440.0)
    assert 0.0005 < np.abs(deviation).max() <= 0.003 * 1.05
    assert all(0.05 <= rate <= 0.25 for rate, _, _ in wobble.components())


def test_wobble_without_depth_is_the_identity():
    audio = sine(440.0, 0.5, 44100, 2)
    flat = TapeWobble(depth_percent=0.0, flutter_depth_percent=0.0, drift_percent=0.0)
    assert np.array_equal(flat(audio, 44100), audio)


def count_clicks(audio: np.ndarray, sample_rate: int, threshold_db: float) -> int:
    """Rising crossings of the threshold at least 5 ms after the previous one."""
    above = np.flatnonzero(np.abs(audio).max(axis=0) > 10 ** (threshold_db / 20))
    if len(above) == 0:
        return 0
    return 1 + int(np.sum(np.diff(above) > int(0.005 * sample_rate)))


@pytest.mark.parametrize("sample_rate", RATES)
@pytest.mark.parametrize("density", [2.0, 8.0, 20.0])
def test_crackle_density_is_the_set_clicks_per_second(sample_rate, density):
    crackle = VinylCrackle(density_per_s=density, level_db=-20.0, hiss_db=-70.0, seed=4)
    seconds = 10.0
    out = crackle(np.zeros((2, int(seconds * sample_rate)), np.float32), sample_rate)
    rate = count_clicks(out, sample_rate, threshold_db=-32.0) / seconds
    assert rate == pytest.approx(density, rel=0.20)
    level = 10 ** (-20 / 20)  # single clicks peak at 0.5..1x the level; overlaps may add
    assert level * 0.5 < np.abs(out).max() <= level * 2


def test_crackle_is_deterministic_for_a_seed():
    silence = np.zeros((2, 44100), np.float32)
    first = VinylCrackle(seed=9)(silence, 44100)
    assert np.array_equal(first, VinylCrackle(seed=9)(silence, 44100))
    assert not np.array_equal(first, VinylCrackle(seed=10)(silence, 44100))


def test_hiss_level_and_rumble_band():
    silence = np.zeros((2, 4 * 44100), np.float32)
    hiss = VinylCrackle(density_per_s=0.0, hiss_db=-40.0, seed=1)(silence, 44100)
    assert rms_db(hiss) == pytest.approx(-40.0, abs=0.5)
    rumble = VinylCrackle(density_per_s=0.0, hiss_db=None, rumble_db=-40.0, seed=1)(silence, 44100)
    assert rms_db(rumble) == pytest.approx(-40.0, abs=1.0)
    power = np.abs(np.fft.rfft(rumble[0])) ** 2
    freqs = np.fft.rfftfreq(rumble.shape[1], 1 / 44100)
    assert power[freqs < 60].sum() > 0.95 * power.sum()


def test_crackle_adds_to_the_input():
    audio = sine(440.0, 1.0, 44100, 2)
    off = VinylCrackle(density_per_s=0.0, hiss_db=None, rumble_db=None)
    assert np.array_equal(off(audio, 44100), audio)


@pytest.mark.parametrize("sample_rate", RATES)
@pytest.mark.parametrize("cutoff_hz", [500.0, 2000.0])
def test_low_pass_cuts_an_octave_above_by_20_db(sample_rate, cutoff_hz):
    low_pass = build_effect(EffectSpec("LowPass", {"cutoff_frequency_hz": cutoff_hz}))
    below = low_pass(sine(cutoff_hz / 4, 1.0, sample_rate), sample_rate)
    above = low_pass(sine(cutoff_hz * 2, 1.0, sample_rate), sample_rate)
    passed = rms_db(sine(cutoff_hz * 2, 1.0, sample_rate))
    assert passed - rms_db(above[:, sample_rate // 10 :]) >= 20.0
    assert abs(rms_db(below[:, sample_rate // 10 :]) - passed) < 0.5


def test_high_pass_and_filter_order():
    assert rms_db(sine(50.0, 1.0, 44100)) - rms_db(HighPass(200.0, order=4)(
        sine(50.0, 1.0, 44100), 44100)[:, 4410:]) >= 40.0
    gentle, steep = LowPass(1000.0, order=2), LowPass(1000.0, order=8)
    tone = sine(2000.0, 1.0, 44100)
    assert rms_db(steep(tone, 44100)[:, 4410:]) < rms_db(gentle(tone, 44100)[:, 4410:]) - 20


def test_every_effect_builds_and_keeps_length_and_shape():
    assert set(EFFECT_FACTORIES) == set(EFFECT_PARAMETERS)
    audio = sine(330.0, 0.5, 44100, 2) * 0.5
    for name in EFFECT_PARAMETERS:
        chain = build_chain([EffectSpec(name)], seed=1)
        out = apply_chain(chain, audio, 44100)
        assert out.shape == audio.shape and out.dtype == np.float32, name
        assert np.isfinite(out).all(), name


def test_reverb_tail_is_cut_to_the_input_length():
    audio = np.zeros((2, 22050), np.float32)
    audio[:, 100] = 1.0
    out = apply_chain([pb.Reverb(room_size=0.9), pb.Delay(0.3)], audio, 44100)
    assert out.shape == audio.shape


def test_chain_seeds_are_derived_per_position():
    specs = [EffectSpec("VinylCrackle"), EffectSpec("VinylCrackle")]
    first, second = build_chain(specs, seed=5)
    assert first.seed != second.seed
    assert build_chain(specs, seed=5)[0].seed == first.seed


def test_resample_defaults_to_a_fast_quality():
    resample = build_effect(EffectSpec("Resample", {"target_sample_rate": 8000.0}))
    assert resample.quality == pb.Resample.Quality.Linear
    cubic = build_effect(EffectSpec("Resample", {"quality": "CatmullRom"}))
    assert cubic.quality == pb.Resample.Quality.CatmullRom


def test_effect_specs_round_trip_and_validate():
    spec = EffectSpec.from_dict({"type": "LowPass", "cutoff_frequency_hz": 5000}, "x.toml: m")
    assert spec == EffectSpec("LowPass", {"cutoff_frequency_hz": 5000.0})
    assert EffectSpec.from_dict(spec.to_dict(), "x") == spec
    for bad, words in [({"type": "Flanger"}, "type = 'Flanger'"),
                       ({"type": "LowPass", "cutoff_hz": 1.0}, "unknown parameter 'cutoff_hz'"),
                       ({"type": "LowPass", "cutoff_frequency_hz": -5.0}, "10..24000"),
                       ({"type": "LowPass", "order": 2.5}, "an integer"),
                       ({"type": "Resample", "quality": "Best"}, "Linear")]:
        with pytest.raises(ValueError, match="x.toml") as error:
            EffectSpec.from_dict(bad, "x.toml: m.effects[0]")
        assert words in str(error.value) and "\n" not in str(error.value)


@pytest.mark.parametrize("kind", sorted(EFFECT_PARAMETERS))
def test_channel_wise_chains_give_the_stereo_result_bit_for_bit(kind):
    """The master runs one chain per channel in parallel only where that changes nothing."""
    from concurrent.futures import ThreadPoolExecutor

    rng = np.random.default_rng(0)
    n = 3 * 44100
    swell = np.sin(np.linspace(0, 9, n, dtype=np.float32)) ** 2  # drives dynamics both ways
    audio = (rng.standard_normal((2, n)).astype(np.float32) * 0.4 * swell)
    audio[1] *= 0.5  # the channels differ
    specs = [EffectSpec(kind), EffectSpec("Compressor", {"threshold_db": -20.0, "ratio": 4.0})]
    chains = channel_chains(specs, 3, audio.shape, 44100)
    assert len(chains) == (2 if kind in CHANNEL_WISE else 1), kind
    stereo = apply_chain(build_chain(specs, 3), audio, 44100)
    with ThreadPoolExecutor(2) as pool:
        split = apply_chains(chains, audio, 44100, pool)
    assert np.array_equal(split, stereo), kind
    assert set(EFFECT_PARAMETERS) - CHANNEL_WISE == {"Reverb"}  # new effects must be classified


@pytest.mark.parametrize("kind", ["lowpass", "highpass"])
def test_butterworth_in_blocks_with_its_guard_tone_matches_one_plain_sosfilt(kind):
    """Block-wise filtering and the -400 dBFS anti-denormal tone change nothing audible."""
    from scipy.signal import butter, sosfilt

    from arranger.audio.iir import BLOCK

    rng = np.random.default_rng(1)
    n = 2 * BLOCK + 12345  # odd length, several blocks
    audio = rng.standard_normal((2, n)).astype(np.float32) * 0.3
    audio[:, n // 3 : n // 2] = 0.0  # a long silence, where the state would go subnormal
    effect = (LowPass if kind == "lowpass" else HighPass)(3000.0, order=4)
    out = effect(audio, 44100)
    sos = butter(4, 3000.0, btype=kind, fs=44100, output="sos")
    reference = np.stack([sosfilt(sos, channel) for channel in audio])
    np.testing.assert_allclose(out, reference, rtol=0, atol=1e-7)
    assert np.abs(out[:, n // 3 + 4410 : n // 2]).max() < 1e-20  # the silence stays silent
