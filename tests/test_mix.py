"""Mixing and mastering: gain/pan, stem ceilings, loudness target, true-peak ceiling."""

from __future__ import annotations

import math

import numpy as np
import pytest

from arranger.audio.config import EffectSpec, LayerSound, MasterSound, RenderSettings, derive_seed
from arranger.audio.files import read_audio, write_mp3
from arranger.audio.loudness import integrated_loudness, true_peak_db
from arranger.audio.mix import (
    MP3_MARGIN_DB,
    STEM_CEILING_DBFS,
    master_measured,
    normalise,
    pan_gains,
    process_stem,
    true_peak_limit,
    write_mp3_master,
)

LOFI_MASTER = MasterSound((EffectSpec("TapeWobble"), EffectSpec("VinylCrackle"),
                           EffectSpec("Compressor", {"threshold_db": -20.0, "ratio": 3.0})))


def synthetic_stems(seconds: float = 4.0, sample_rate: int = 44100,
                    seed: int = 0) -> dict[str, np.ndarray]:
    """Stereo stems with music-like crest factors: chords, bass, decaying noise hits."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * sample_rate)) / sample_rate
    chords = sum(np.sin(2 * np.pi * f * t) for f in (220.0, 277.2, 329.6)) * 0.1
    bass = np.sin(2 * np.pi * 55.0 * t) * 0.3 * (1 + np.sign(np.sin(2 * np.pi * 1.5 * t))) / 2
    hits = np.zeros_like(t)
    for start in np.arange(0, seconds, 0.25):
        n = int(start * sample_rate)
        decay = np.exp(-np.arange(len(t) - n) / (0.03 * sample_rate))
        hits[n:] += rng.standard_normal(len(t) - n) * decay * 0.5
    return {name: np.stack([x, x]).astype(np.float32)
            for name, x in (("chords", chords), ("bass", bass), ("drums", hits))}


def mix(stems: dict[str, np.ndarray], sounds: dict[str, LayerSound], master: MasterSound,
        sample_rate: int, seed: int = 0) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """What ``produce_audio`` does between FluidSynth and the files: ``process_stem`` per
    layer, the sum in name order, ``master_measured``."""
    processed = {name: process_stem(stems[name], sounds.get(name, LayerSound(0)), sample_rate,
                                    seed, name) for name in stems}
    total = np.zeros_like(next(iter(processed.values())))
    for name in sorted(processed):
        total += processed[name]
    return master_measured(total, master, sample_rate, seed).audio, processed


def peak_dbfs(audio: np.ndarray) -> float:
    return 20 * math.log10(float(np.abs(audio).max()))


def rms_db(audio: np.ndarray) -> float:
    return 10 * math.log10(float(np.mean(np.square(audio, dtype=np.float64))))


@pytest.mark.parametrize("pan", np.linspace(-1, 1, 9))
def test_pan_is_constant_power(pan):
    left, right = pan_gains(pan)
    assert left**2 + right**2 == pytest.approx(2.0)
    assert (left >= right) == (pan <= 0)


def test_pan_extremes_and_centre():
    assert pan_gains(0.0) == pytest.approx((1.0, 1.0))
    assert pan_gains(-1.0) == pytest.approx((math.sqrt(2), 0.0), abs=1e-12)
    assert pan_gains(1.0) == pytest.approx((0.0, math.sqrt(2)), abs=1e-12)


def test_gain_and_pan_are_applied():
    stem = synthetic_stems()["chords"]
    out = process_stem(stem, LayerSound(0, gain_db=-6.0, pan=-1.0), 44100, 0, "chords")
    assert rms_db(out[0]) == pytest.approx(rms_db(stem[0]) - 6.0 + 3.01, abs=0.01)
    assert not out[1].any()


@pytest.mark.parametrize("channels", [1, 2])
def test_hot_stems_are_scaled_under_minus_1_dbfs_and_quiet_ones_left_alone(channels):
    hot = np.ones((channels, 1000), np.float32) * 2.0
    out = process_stem(hot, LayerSound(0), 44100, 0, "x")
    assert out.shape == (2, 1000)
    assert peak_dbfs(out) == pytest.approx(STEM_CEILING_DBFS, abs=1e-3)
    quiet = synthetic_stems()["chords"] * 0.1
    assert np.array_equal(process_stem(quiet, LayerSound(0), 44100, 0, "x"), quiet)


def test_a_processed_stems_noise_is_seeded_by_song_and_layer():
    stem = synthetic_stems()["bass"]
    sound = LayerSound(0, effects=(EffectSpec("VinylCrackle"),))
    bass = process_stem(stem, sound, 44100, 3, "bass")
    assert np.array_equal(bass, process_stem(stem, sound, 44100, 3, "bass"))
    assert not np.array_equal(bass, process_stem(stem, sound, 44100, 4, "bass"))
    assert not np.array_equal(bass, process_stem(stem, sound, 44100, 3, "drums"))


@pytest.mark.parametrize("sample_rate", [44100, 48000])
@pytest.mark.parametrize("target", [-14.0, -18.0, -9.0])
def test_master_lands_on_the_target_under_the_ceiling(sample_rate, target):
    stems = synthetic_stems(sample_rate=sample_rate)
    sounds = {name: LayerSound(0, gain_db=-3.0) for name in stems}
    master, processed = mix(stems, sounds, MasterSound(LOFI_MASTER.effects, target_lufs=target),
                            sample_rate, seed=1)
    assert np.isfinite(master).all() and master.dtype == np.float32
    assert integrated_loudness(master, sample_rate) == pytest.approx(target, abs=0.5)
    assert true_peak_db(master, sample_rate) <= -1.0
    assert {a.shape for a in processed.values()} == {master.shape}
    assert all(peak_dbfs(a) <= -1.0 for a in processed.values())


def test_spiky_audio_needing_heavy_limiting_still_meets_both_targets():
    rng = np.random.default_rng(2)
    x = (rng.standard_normal((2, 5 * 44100)) * 0.01).astype(np.float32)
    x[:, ::11025] = 0.9  # isolated full-scale clicks on a quiet bed
    result = normalise(x, 44100, -14.0, -1.0)
    assert result.loudness_lufs == pytest.approx(-14.0, abs=0.5)
    assert integrated_loudness(result.audio, 44100) == pytest.approx(result.loudness_lufs)
    assert true_peak_db(result.audio, 44100) <= -1.0
    assert result.true_peak_dbtp == pytest.approx(true_peak_db(result.audio, 44100))


def test_limiter_only_turns_down_and_respects_the_ceiling():
    stems = synthetic_stems()
    loud = sum(stems.values()) * 4.0
    out = true_peak_limit(loud, 44100, -3.0)
    assert true_peak_db(out, 44100) <= -3.0 + 0.1
    assert np.all(np.abs(out) <= np.abs(loud) + 1e-6)
    quiet = loud * 0.01
    assert np.array_equal(true_peak_limit(quiet, 44100, -3.0), quiet)


def test_silent_stems_give_a_silent_master_without_nan():
    silent = {"a": np.zeros((2, 44100), np.float32), "b": np.zeros((2, 44100), np.float32)}
    master, processed = mix(silent, {}, MasterSound(), 44100)
    assert np.isfinite(master).all() and not master.any()
    assert master.shape == (2, 44100)


def test_mixing_is_deterministic_and_seeded():
    stems = synthetic_stems(seconds=2.0)
    first, _ = mix(stems, {}, LOFI_MASTER, 44100, seed=5)
    assert np.array_equal(first, mix(stems, {}, LOFI_MASTER, 44100, seed=5)[0])
    assert not np.array_equal(first, mix(stems, {}, LOFI_MASTER, 44100, seed=6)[0])


def test_sound_settings_round_trip():
    layer = LayerSound(33, gain_db=-2.5, pan=0.25, effects=(EffectSpec(
        "LowPass", {"cutoff_frequency_hz": 900.0}),), enabled=False)
    assert LayerSound.from_dict(layer.to_dict(), "p.toml: layers.bass") == layer
    master = MasterSound(LOFI_MASTER.effects, target_lufs=-16.0, true_peak_dbtp=-2.0)
    assert MasterSound.from_dict(master.to_dict(), "p.toml: master") == master
    render = RenderSettings("x.sf2", 48000, 3.0, 4, 1.5)
    assert RenderSettings.from_dict(render.to_dict(), "p.toml: render") == render
    assert LayerSound.from_dict({}, "w") == LayerSound(0)


@pytest.mark.parametrize("cls,data,message", [
    (LayerSound, {"gain_db": "loud"},
     "presets/x.toml: layers.drums.gain_db = 'loud': expected a number in -60..12"),
    (LayerSound, {"pan": 2.0}, "layers.drums.pan = 2.0: expected a number in -1..1"),
    (LayerSound, {"program": 128}, "layers.drums.program = 128: expected an integer in 0..127"),
    (LayerSound, {"enabled": "yes"}, "layers.drums.enabled = 'yes': expected true or false"),
    (LayerSound, {"volume": 1}, "unknown field 'volume'"),
    (LayerSound, {"effects": [{"type": "Fuzz"}]}, "layers.drums.effects[0].type = 'Fuzz'"),
    (MasterSound, {"target_lufs": 3.0}, "target_lufs = 3.0: expected a number in -40..-5"),
    (RenderSettings, {"sample_rate": 44100.5}, "sample_rate = 44100.5: expected an integer"),
])
def test_invalid_settings_give_one_clear_line(cls, data, message):
    with pytest.raises(ValueError) as error:
        cls.from_dict(data, "presets/x.toml: layers.drums")
    assert message in str(error.value) and "\n" not in str(error.value)


def test_an_mp3_master_stays_under_the_ceiling_once_decoded(tmp_path):
    """A square wave at the ceiling overshoots by ~1 dB once LAME low-passes it (Gibbs): the
    MP3's source is limited and the decoded file measured."""
    t = np.arange(3 * 44100) / 44100
    square = np.sign(np.sin(2 * np.pi * 441.0 * t)).astype(np.float32)
    audio = np.stack([square, square])
    audio *= np.float32(10 ** ((-1.05 - true_peak_db(audio, 44100)) / 20))  # as a master is
    write_mp3(tmp_path / "plain.mp3", audio, 44100)
    overshoot = true_peak_db(read_audio(tmp_path / "plain.mp3")[0], 44100) + 1.05
    assert overshoot > 0.05  # the problem
    peak = write_mp3_master(tmp_path / "mix.mp3", audio, 44100, -1.0)
    decoded, _ = read_audio(tmp_path / "mix.mp3")
    assert decoded.shape == audio.shape
    assert true_peak_db(decoded, 44100) == pytest.approx(peak, abs=1e-6) and peak <= -1.0
    # Turned down by about the overshoot and margin, not more (music loses < 0.1 LU).
    lost = integrated_loudness(audio, 44100) - integrated_loudness(decoded, 44100)
    assert 0.0 < lost < overshoot + MP3_MARGIN_DB + 0.3


def test_the_mp3_source_is_the_masters_limiter_input_limited_lower(tmp_path):
    """normalise keeps what its limiter started from: the MP3's source limited from it equals
    a limiter on a freshly measured envelope, bit for bit, and stays under its ceiling."""
    rng = np.random.default_rng(4)
    x = (rng.standard_normal((2, 4 * 44100)) * 0.05).astype(np.float32)
    x[:, ::7001] = 0.8  # peaks the limiter has to catch
    result = normalise(x, 44100, -14.0, -1.0)
    source = result.source
    ceiling = -1.0 - MP3_MARGIN_DB
    fresh = true_peak_limit(source.audio, 44100, ceiling, gain=source.gain)
    lowered = source.limited(ceiling)
    assert np.array_equal(lowered, fresh)
    assert true_peak_db(lowered, 44100) <= ceiling + 0.01
    # The master is the same input at the same gain, limited at the WAV's ceiling.
    assert np.allclose(source.limited(-1.05), result.audio, atol=1e-6)
    peak = write_mp3_master(tmp_path / "mix.mp3", source, 44100, -1.0)
    assert peak <= -1.0


MONO_SAFE = [EffectSpec(kind) for kind in ("LowPass", "HighPass", "Compressor", "TapeWobble",
                                           "Bitcrush", "Chorus", "Distortion", "Delay")]


@pytest.mark.parametrize("extra", [None, "Reverb", "VinylCrackle"])
def test_a_centred_stem_is_processed_once_for_both_channels_with_the_same_result(extra):
    from arranger.audio.fx import apply_chain, build_chain
    from arranger.audio.mix import chain_and_pan, mono_through

    centred = np.repeat(synthetic_stems(2.0)["bass"][:1], 2, axis=0)
    sound = LayerSound(33, 0.0, 0.4, (*MONO_SAFE, *([EffectSpec(extra)] if extra else [])))
    assert mono_through(centred, sound) is (extra is None)  # mixes or adds per channel: not
    out = chain_and_pan(centred, sound, 44100, 7, "bass")
    both = apply_chain(build_chain(sound.effects, derive_seed(7, "bass")), centred, 44100)
    left, right = pan_gains(0.4)
    assert np.array_equal(out, both * np.array([[left], [right]], np.float32))
    wide = centred.copy()
    wide[1, 100] += 0.01
    assert not mono_through(wide, LayerSound(33, effects=MONO_SAFE))
