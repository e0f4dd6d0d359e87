"""The whole audio stage on disk: files, formats, loudness, partial re-renders, atomic writes."""

from __future__ import annotations

import math

import numpy as np
import pytest
import soundfile

from arranger.audio.config import EffectSpec, LayerSound, MasterSound, RenderSettings
from arranger.audio.files import read_audio, write_flac, write_mp3, write_wav
from arranger.audio.loudness import integrated_loudness, true_peak_db
from arranger.audio.produce import produce_audio
from arranger.audio.render import song_length_samples
from arranger.audio.soundfont import bundled_soundfont
from tests.test_render import make_song, rms_db

SOUNDFONT = bundled_soundfont()
RENDER = RenderSettings(soundfont=str(SOUNDFONT))
LAYERS = ("chords", "melody", "bass", "drums")
SOUNDS = {
    "chords": LayerSound(4, -3.0, -0.3, (EffectSpec("LowPass", {"cutoff_frequency_hz": 3000.0}),
                                         EffectSpec("Reverb", {"wet_level": 0.3}))),
    "melody": LayerSound(11, -5.0, 0.3, (EffectSpec("Chorus"),)),
    "bass": LayerSound(33, 0.0, 0.0, (EffectSpec("Compressor", {"threshold_db": -20.0}),)),
    "drums": LayerSound(0, -2.0, 0.0, (EffectSpec("Bitcrush", {"bit_depth": 10.0}),)),
}
MASTER = MasterSound((EffectSpec("TapeWobble"), EffectSpec("VinylCrackle"),
                      EffectSpec("HighShelf", {"cutoff_frequency_hz": 6000.0, "gain_db": -4.0})))
pytestmark = pytest.mark.skipif(SOUNDFONT is None or not SOUNDFONT.exists(),
                                reason="pretty_midi's TimGM6mb.sf2 is missing")


def produce(out_dir, sounds=SOUNDS, midi=None, **options):
    options = {"swing": 0.2, "seed": 1, "progress": False} | options
    return produce_audio(midi or make_song(), sounds, MASTER, RENDER, out_dir, **options)


@pytest.fixture(scope="module")
def record(tmp_path_factory):
    out = tmp_path_factory.mktemp("record")
    return out, produce(out, formats=("wav", "mp3", "flac"))


def test_files_formats_and_report(record):
    out, report = record
    stems = sorted(p.name for p in (out / "stems").iterdir())
    assert stems == sorted([f"{n}.{kind}" for n in LAYERS for kind in ("wav", "mid")] + ["fx.wav"])
    assert {p.name for p in out.iterdir()} == {"stems", "mix.wav", "mix.mp3", "mix.flac"}
    for path in [*(out / "stems").glob("*.wav"), out / "mix.wav"]:
        info = soundfile.info(path)
        assert (info.subtype, info.samplerate, info.channels) == ("PCM_24", 44100, 2)
    assert soundfile.info(out / "mix.flac").subtype == "PCM_24"
    assert report["layers"] == list(LAYERS) and report["rendered"] == list(LAYERS)
    assert set(report["stage_seconds"]) == {"render", "effects", "export stems", "master",
                                            "export mix"}
    assert not list(out.rglob(".*"))  # no temporary files left behind


def test_stems_are_equal_length_audible_and_under_minus_1_dbfs(record):
    out, report = record
    expected = song_length_samples(make_song(), 44100, swing=0.2, humanize_ms=6.0,
                                   tail_seconds=2.0)
    for name in LAYERS:
        audio, rate = read_audio(out / "stems" / f"{name}.wav")
        assert audio.shape == (2, expected) and rate == 44100
        assert np.isfinite(audio).all()
        assert rms_db(audio) > -50.0, name
        assert 20 * np.log10(np.abs(audio).max()) <= -1.0 + 1e-4, name
    assert report["length_seconds"] == pytest.approx(expected / 44100, abs=1e-3)


def test_mix_is_at_the_target_loudness_under_the_true_peak_ceiling(record):
    out, report = record
    mix, rate = read_audio(out / "mix.wav")
    assert np.isfinite(mix).all()
    assert integrated_loudness(mix, rate) == pytest.approx(-14.0, abs=0.5)
    assert true_peak_db(mix, rate) <= -1.0 + 1e-3  # 24-bit rounding
    assert report["loudness_lufs"] == pytest.approx(integrated_loudness(mix, rate), abs=0.05)
    flac, _ = read_audio(out / "mix.flac")
    assert np.array_equal(flac, mix)
    assert not list(out.glob("*.mp3.*"))


def test_the_decoded_mp3_is_under_the_true_peak_ceiling(record):
    """LAME overshoots the WAV's true peak by ~0.1-0.25 dB: the decoded file is what counts."""
    out, report = record
    mix, rate = read_audio(out / "mix.wav")
    mp3, mp3_rate = read_audio(out / "mix.mp3")  # libsndfile: the exact length written
    assert mp3.shape == mix.shape and mp3_rate == rate
    assert true_peak_db(mp3, rate) <= -1.0
    assert report["mp3_true_peak_dbtp"] == pytest.approx(true_peak_db(mp3, rate), abs=0.01)
    assert integrated_loudness(mp3, rate) == pytest.approx(-14.0, abs=0.5)


def test_rendering_the_same_song_twice_gives_identical_files(record, tmp_path):
    out, _ = record
    produce(tmp_path)
    for name in [f"stems/{n}.wav" for n in LAYERS] + ["mix.wav"]:
        assert (tmp_path / name).read_bytes() == (out / name).read_bytes(), name


def test_rerendering_one_layer_leaves_the_others_untouched(tmp_path):
    produce(tmp_path)
    before = {p.name: (p.read_bytes(), p.stat().st_mtime_ns)
              for p in (tmp_path / "stems").iterdir()}
    mix_before = (tmp_path / "mix.wav").read_bytes()
    report = produce(tmp_path, only={"bass"})
    assert report["rendered"] == ["bass"]
    for path in (tmp_path / "stems").iterdir():
        data, mtime = before[path.name]
        assert path.read_bytes() == data, path.name  # the same seed reproduces the bass, too
        assert (path.stat().st_mtime_ns == mtime) == (path.stem != "bass"), path.name
    assert (tmp_path / "mix.wav").read_bytes() == mix_before


def test_a_new_take_of_one_layer_only_changes_that_stem(tmp_path):
    produce(tmp_path)
    before = {p.name: p.read_bytes() for p in (tmp_path / "stems").iterdir()}
    midi = make_song()
    midi.instruments[2].notes = [n for n in midi.instruments[2].notes if n.start > 1.0]
    produce(tmp_path, midi=midi, only={"bass"})
    for path in (tmp_path / "stems").iterdir():
        assert (path.read_bytes() == before[path.name]) == (path.stem != "bass"), path.name


def test_disabled_layers_are_neither_rendered_nor_mixed(tmp_path):
    sounds = SOUNDS | {"melody": LayerSound(11, enabled=False)}
    report = produce(tmp_path, sounds=sounds, formats=("wav",))
    assert "melody" not in report["layers"]
    assert not (tmp_path / "stems" / "melody.wav").exists()
    assert not (tmp_path / "mix.mp3").exists()


def test_an_empty_score_renders_silent_stems_and_a_quiet_mix(tmp_path):
    midi = make_song(bars=1)
    for instrument in midi.instruments:
        instrument.notes = []
    report = produce(tmp_path, midi=midi, formats=("wav",))
    assert report["loudness_lufs"] < -30.0
    lengths = set()
    for name in LAYERS:
        audio, _ = read_audio(tmp_path / "stems" / f"{name}.wav")
        assert not audio.any()
        lengths.add(audio.shape)
    mix, rate = read_audio(tmp_path / "mix.wav")
    assert len(lengths) == 1 and mix.shape in lengths and np.isfinite(mix).all()
    assert integrated_loudness(mix, rate) < -30.0  # just the crackle, not pushed to -14 LUFS
    silent = produce_audio(midi, SOUNDS, MasterSound(), RENDER, tmp_path / "plain", swing=0.0,
                           seed=0, formats=("wav",), progress=False)
    assert not read_audio(tmp_path / "plain" / "mix.wav")[0].any()
    assert silent["loudness_lufs"] is None and silent["true_peak_dbtp"] is None


def test_a_kept_stem_of_another_length_is_refused(tmp_path):
    produce(tmp_path, formats=("wav",))
    write_wav(tmp_path / "stems" / "drums.wav", np.zeros((2, 100), np.float32), 44100)
    with pytest.raises(ValueError, match="drums.wav is 100 samples.*render all layers again"):
        produce(tmp_path, only={"bass"}, formats=("wav",))


def test_partial_render_without_stems_and_bad_requests_are_refused(tmp_path):
    with pytest.raises(FileNotFoundError, match="render all layers first"):
        produce(tmp_path, only={"bass"})
    with pytest.raises(ValueError, match="not layers of this song"):
        produce(tmp_path, only={"vocals"})
    with pytest.raises(ValueError, match="'ogg'"):
        produce(tmp_path, formats=("wav", "ogg"))


@pytest.mark.parametrize("channels", [1, 2])
@pytest.mark.parametrize("sample_rate", [22050, 44100, 48000])
def test_audio_files_round_trip(tmp_path, channels, sample_rate):
    rng = np.random.default_rng(0)
    audio = (rng.uniform(-0.5, 0.5, (channels, 4000))).astype(np.float32)
    wav = write_wav(tmp_path / "a.wav", audio, sample_rate)
    back, rate = read_audio(wav)
    assert rate == sample_rate and back.shape == audio.shape
    assert np.abs(back - audio).max() < 2**-22  # 24-bit
    flac, _ = read_audio(write_flac(tmp_path / "a.flac", audio, sample_rate))
    assert np.abs(flac - audio).max() < 2**-22
    mp3, rate = read_audio(write_mp3(tmp_path / "a.mp3", audio, sample_rate))
    assert rate == sample_rate and mp3.shape[0] == channels


def test_writes_are_atomic(tmp_path):
    path = tmp_path / "mix.wav"
    write_wav(path, np.zeros((2, 100), np.float32), 44100)
    before = path.read_bytes()
    with pytest.raises(ValueError):
        write_wav(path, np.zeros((2, 100), np.float32), 44100, bit_depth=12)
    with pytest.raises(Exception):  # noqa: B017 - whatever the encoder raises
        write_mp3(path.with_suffix(".mp3"), np.zeros((2, 100), np.float32), 1234)
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mix.wav"]
    assert math.isclose(read_audio(path)[1], 44100)
