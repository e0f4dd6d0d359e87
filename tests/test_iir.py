"""The IIR filters' design and scipy's loops, loaded alone, equal scipy.signal's and
scipy.ndimage's, without importing either package."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from scipy.signal import butter, sosfreqz
from scipy.signal import sosfilt as scipy_sosfilt

from arranger.audio.iir import butterworth_sos, sosfilt

ROOT = Path(__file__).resolve().parents[1]
CASES = [(order, hz, rate, kind) for order in range(1, 9) for rate in (22050, 44100, 48000)
         for hz in (20.0, 45.0, 1200.0, 9000.0, 10000.0) for kind in ("lowpass", "highpass")]
BANDS = [(order, band, rate) for order in (1, 2, 3, 4)
         for band, rate in (((8.0, 35.0), 44100 / 32), ((300.0, 3000.0), 44100),
                            ((20.0, 20000.0), 48000), ((1000.0, 1100.0), 44100))]


def _response_error(ours: np.ndarray, theirs: np.ndarray, rate: float) -> float:
    _, h = sosfreqz(ours, 4096, fs=rate)
    _, expected = sosfreqz(theirs, 4096, fs=rate)
    return float(np.max(np.abs(h - expected) / np.maximum(np.abs(expected), 1e-3)))


@pytest.mark.parametrize("order,hz,rate,kind", CASES)
def test_butterworth_is_butters_response(order, hz, rate, kind):
    sos = butterworth_sos(order, hz, rate, kind)
    assert sos.shape == ((order + 1) // 2, 6)
    assert _response_error(sos, butter(order, hz, kind, fs=rate, output="sos"), rate) < 1e-9
    poles = np.concatenate([np.roots(s[3:]) for s in sos])
    assert np.all(np.abs(poles) < 1)  # stable
    radii = [np.abs(np.roots(s[3:])).max() for s in sos]
    assert radii == sorted(radii)  # the poles nearest the unit circle last, as scipy's


@pytest.mark.parametrize("order,band,rate", BANDS)
def test_band_pass_is_butters_response(order, band, rate):
    sos = butterworth_sos(order, band, rate, "bandpass")
    expected = butter(order, band, "bandpass", fs=rate, output="sos")
    assert _response_error(sos, expected, rate) < 1e-8


def test_sosfilt_is_scipys_loop_bit_for_bit_with_its_state():
    x = np.random.default_rng(0).standard_normal(30_000)
    sos = butterworth_sos(4, 3500.0, 44100, "lowpass")
    state = np.random.default_rng(1).standard_normal((2, 2)) * 0.01
    y, final = sosfilt(sos, x, state)
    y_ref, final_ref = scipy_sosfilt(sos, x, zi=state)
    assert np.array_equal(y, y_ref) and np.array_equal(final, final_ref)
    assert state[0, 0] != final[0, 0]  # the state given is left alone


def test_unknown_kinds_are_refused():
    with pytest.raises(ValueError, match="kind = 'notch'"):
        butterworth_sos(2, 100.0, 44100, "notch")


@pytest.mark.parametrize("size,origin", [(1765, -3), (1765, 0), (265, 0), (11, 2)])
def test_the_limiters_running_minimum_and_mean_are_ndimages(size, origin):
    from scipy.ndimage import minimum_filter1d, uniform_filter1d

    from arranger.audio.mix import running_mean, running_minimum

    x = np.random.default_rng(size).random(20_000).astype(np.float32)
    assert np.array_equal(running_minimum(x, size, origin),
                          minimum_filter1d(x, size, origin=origin, mode="nearest"))
    assert np.array_equal(running_mean(x, size), uniform_filter1d(x, size, mode="nearest"))


def test_the_audio_stage_never_imports_scipy_signal_or_ndimage():
    """Their imports take ~0.8 and ~0.4 s holding the GIL: the audio stage does without."""
    code = ("import sys, numpy as np\n"
            "from arranger.audio.fx import LowPass, HighPass, VinylCrackle\n"
            "from arranger.audio.loudness import integrated_loudness\n"
            "from arranger.audio.mix import true_peak_limit\n"
            "x = np.random.default_rng(0).standard_normal((2, 44100)).astype(np.float32)\n"
            "for fx in (LowPass(cutoff_frequency_hz=900.0), HighPass(cutoff_frequency_hz=45.0),"
            " VinylCrackle(rumble_db=-50.0)):\n"
            "    x = fx(x, 44100)\n"
            "integrated_loudness(x, 44100)\n"
            "true_peak_limit(x * 8, 44100, -1.0)\n"
            "print([m for m in ('scipy.signal', 'scipy.ndimage') if m in sys.modules])\n")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                         check=True).stdout
    assert out.strip() == "[]"
