"""The audio stage sounds as it did before its speed-ups (issue #15): measures of a short song,
produced with the bench's kind of preset, against figures recorded from the code before them.

The figures (``BEFORE``) were printed by ``measure()`` on the tree of commit c7231ee, with
pretty_midi's TimGM6mb.sf2 (the same file everywhere). A speed-up may move float rounding, not
the sound: loudness within 0.1 LU, true peak within 0.1 dB, octave bands within 0.5 dB.
"""

from __future__ import annotations

import numpy as np
import pytest

from arranger.audio.config import EffectSpec, LayerSound, MasterSound, RenderSettings
from arranger.audio.files import read_audio
from arranger.audio.loudness import integrated_loudness, true_peak_db
from arranger.audio.produce import produce_audio
from arranger.audio.soundfont import bundled_soundfont
from tests.test_render import make_song

SOUNDFONT = bundled_soundfont()
pytestmark = pytest.mark.skipif(SOUNDFONT is None or not SOUNDFONT.exists(),
                                reason="pretty_midi's TimGM6mb.sf2 is missing")
OCTAVES_HZ = (63, 125, 250, 500, 1000, 2000, 4000, 8000, 16000)  # band centres


def fx(kind: str, **params: object) -> EffectSpec:
    return EffectSpec(kind, dict(params))


ROOM = fx("Reverb", room_size=0.5, wet_level=0.25, dry_level=0.8)
SOUNDS = {  # layer levels in LU (measured on the stem), as the shipped presets set them
    "chords": LayerSound(4, 0.0, -0.25, (fx("LowPass", cutoff_frequency_hz=3500.0),
                                         fx("Compressor", threshold_db=-20.0, ratio=3.0), ROOM),
                         level_lu=-6.0),
    "melody": LayerSound(11, 0.0, 0.3, (fx("LowPass", cutoff_frequency_hz=5000.0), ROOM),
                         level_lu=-7.0),
    "bass": LayerSound(33, -2.0, 0.0, (fx("LowPass", cutoff_frequency_hz=1200.0),
                                       fx("Compressor", threshold_db=-22.0, ratio=4.0))),
    "drums": LayerSound(0, -3.0, 0.0, (fx("HighPass", cutoff_frequency_hz=60.0),
                                       fx("Reverb", room_size=0.2, wet_level=0.1))),
}
MASTER = MasterSound((
    fx("TapeWobble", depth_percent=0.3, flutter_depth_percent=0.05),
    fx("VinylCrackle", density_per_s=3.0, level_db=-32.0, hiss_db=-52.0, rumble_db=-55.0),
    fx("Bitcrush", bit_depth=12.0),
    fx("Resample", target_sample_rate=22050.0, quality="Linear"),
    fx("HighShelf", cutoff_frequency_hz=6000.0, gain_db=-5.0),
    fx("Compressor", threshold_db=-18.0, ratio=2.5, attack_ms=10.0, release_ms=150.0),
    fx("Limiter", threshold_db=-3.0, release_ms=100.0),
))
# Printed by measure() before the speed-ups: file -> (LUFS, dBTP, octave band levels in dB).
BEFORE: dict[str, tuple[float, float, tuple[float, ...]]] = {
    "mix.mp3": (-14.02, -1.38, (93.4, 98.55, 101.43, 104.09, 89.02, 85.63, 83.54, 79.01, 69.89)),
    "mix.wav": (-14.01, -1.05, (93.48, 98.59, 101.44, 104.1, 89.02, 85.65, 83.57, 79.01, 69.9)),
    "stems/bass.wav": (-29.88, -20.28, (65.81, 84.74, 87.12, 86.93, 77.57, 57.56, 42.66, 29.43,
                                        19.54)),
    "stems/chords.wav": (-28.98, -16.92, (48.39, 58.37, 87.71, 87.51, 67.46, 56.59, 39.69,
                                          22.18, 9.84)),
    "stems/drums.wav": (-31.46, -12.39, (83.0, 85.08, 74.68, 68.31, 67.82, 72.04, 74.19, 74.69,
                                         65.76)),
    "stems/fx.wav": (-45.94, -29.49, (57.87, 52.33, 52.62, 54.64, 57.2, 59.84, 62.43, 64.13,
                                      61.04)),
    "stems/melody.wav": (-30.0, -20.32, (52.77, 45.39, 46.45, 90.55, 52.13, 72.02, 64.21, 38.85,
                                         -13.19)),
}
AUDIBLE_DB = 50.0  # bands further than this under a file's loudest are rounding noise: skipped


def octave_levels(audio: np.ndarray, rate: int) -> tuple[float, ...]:
    """Energy (dB) of the channels' sum in each octave band centred on ``OCTAVES_HZ``."""
    spectrum = np.abs(np.fft.rfft(audio.astype(np.float64).sum(axis=0))) ** 2
    freqs = np.fft.rfftfreq(audio.shape[-1], 1.0 / rate)
    bands = [(freqs >= f / 2**0.5) & (freqs < f * 2**0.5) for f in OCTAVES_HZ]
    return tuple(round(float(10 * np.log10(spectrum[b].sum() + 1e-30)), 2) for b in bands)


def measure(out_dir) -> dict[str, tuple[float, float, tuple[float, ...]]]:
    """Produce the song into ``out_dir``; per file, its loudness, true peak and octave bands."""
    produce_audio(make_song(bars=8, bpm=85), SOUNDS, MASTER,
                  RenderSettings(soundfont=str(SOUNDFONT)), out_dir, swing=0.15, seed=3,
                  formats=("wav", "mp3"), progress=False)
    names = [f"stems/{n}.wav" for n in (*SOUNDS, "fx")] + ["mix.wav", "mix.mp3"]
    figures = {}
    for name in names:
        audio, rate = read_audio(out_dir / name)
        figures[name] = (round(integrated_loudness(audio, rate), 2),
                         round(true_peak_db(audio, rate), 2), octave_levels(audio, rate))
    return figures


@pytest.fixture(scope="module")
def figures(tmp_path_factory):
    return measure(tmp_path_factory.mktemp("regression"))


@pytest.mark.parametrize("name", ["stems/chords.wav", "stems/melody.wav", "stems/bass.wav",
                                  "stems/drums.wav", "stems/fx.wav", "mix.wav", "mix.mp3"])
def test_sounds_as_before_the_speed_ups(figures, name):
    lufs, peak, bands = figures[name]
    lufs_before, peak_before, bands_before = BEFORE[name]
    assert abs(lufs - lufs_before) <= 0.1, (name, lufs, lufs_before)
    assert abs(peak - peak_before) <= 0.1, (name, peak, peak_before)
    audible = np.array(bands_before) > max(bands_before) - AUDIBLE_DB
    assert np.allclose(np.array(bands)[audible], np.array(bands_before)[audible], atol=0.5), (
        name, bands, bands_before)


if __name__ == "__main__":  # print the figures for BEFORE
    import pprint
    import tempfile
    from pathlib import Path

    with tempfile.TemporaryDirectory() as out:
        pprint.pprint(measure(Path(out)), width=100)
