"""A section's effects are played over the section only (arranger.audio.sections), and give
what playing them over the whole song gives wherever the crossfade lets them be heard."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from arranger.audio.config import EffectSpec, LayerSound
from arranger.audio.loudness import integrated_loudness
from arranger.audio.mix import process_stem
from arranger.audio.sections import section_window, with_section_effects

RATE = 8000
ROOM = EffectSpec("Reverb", {"room_size": 0.5, "wet_level": 0.3})
LOW = EffectSpec("LowPass", {"cutoff_frequency_hz": 500.0})


def raw_layer(seconds: float = 24.0) -> np.ndarray:
    """Decaying noise bursts twice a second: something for filters and a room to work on."""
    n = int(seconds * RATE)
    rng = np.random.default_rng(4)
    envelope = np.exp(-(np.arange(n) % (RATE // 2)) / (0.05 * RATE))
    return (rng.standard_normal((2, n)) * 0.2 * envelope).astype(np.float32)


def whole_song_take(raw, stem, sound, span):
    """The take as it was made before: the whole song through the section's chain."""
    start_s, end_s, _, effects = span
    take = process_stem(raw, replace(sound, effects=sound.effects + effects), RATE, 0, "chords")
    w = section_window(stem.shape[-1], start_s, end_s, RATE)
    return stem * (1 - w) + take * w


@pytest.mark.parametrize("chain", [(ROOM,), (EffectSpec("Chorus"), ROOM)],
                         ids=["causal", "with an LFO"])
def test_a_take_over_the_section_only_is_the_whole_song_take(chain):
    raw = raw_layer()
    sound = LayerSound(4, gain_db=-3.0, pan=0.3, effects=chain)
    stem = process_stem(raw, sound, RATE, 0, "chords")
    span = (12.0, 16.0, "chords", (LOW,))
    kept = stem.copy()
    out = with_section_effects(raw, stem, sound, RATE, 0, "chords", [span])
    assert np.array_equal(stem, kept)  # the stem given is left alone
    assert np.abs(out - whole_song_take(raw, stem, sound, span)).max() < 1e-6
    assert np.array_equal(out[:, : int(6 * RATE)], stem[:, : int(6 * RATE)])


def test_a_take_is_as_loud_as_the_stem_over_its_section():
    raw = raw_layer()
    sound = LayerSound(4, pan=-0.2, effects=(ROOM,), level_lu=-6.0)
    stem = process_stem(raw, sound, RATE, 0, "chords")
    spans = [(2.0, 6.0, "bass", (LOW,)), (8.0, 14.0, "chords", (LOW,))]  # the bass's: not ours
    out = with_section_effects(raw, stem, sound, RATE, 0, "chords", spans)
    core = slice(int(8.1 * RATE), int(13.9 * RATE))
    assert integrated_loudness(out[:, core], RATE) == pytest.approx(
        integrated_loudness(stem[:, core], RATE), abs=0.05)
    spectrum = np.abs(np.fft.rfft(out[0, core])) ** 2
    above = np.fft.rfftfreq(core.stop - core.start, 1 / RATE) > 1500.0
    assert spectrum[above].sum() < 0.01 * spectrum.sum()  # low-passed at 500 Hz
    assert np.array_equal(out[:, : int(7 * RATE)], stem[:, : int(7 * RATE)])
    assert np.array_equal(out[:, int(15 * RATE):], stem[:, int(15 * RATE):])
