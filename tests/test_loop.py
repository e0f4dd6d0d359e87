"""Seamless loops: exact length, a wrap as smooth as the rest, tails folded onto the start."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from typer.testing import CliRunner

from arranger.audio.files import read_audio
from arranger.audio.loop import (
    check_loop,
    choose_window,
    loop_length_samples,
    produce_loop,
    wrap,
)
from arranger.audio.loudness import integrated_loudness, true_peak_db
from arranger.audio.soundfont import bundled_soundfont
from arranger.audio.tags import read_acid, riff_chunks
from arranger.cli.main import app
from arranger.errors import InputError
from arranger.preset import load_preset
from tests.test_render import BPM, make_song

SOUNDFONT = bundled_soundfont()
LOOP_BARS = 2
pytestmark = pytest.mark.skipif(SOUNDFONT is None or not SOUNDFONT.exists(),
                                reason="pretty_midi's TimGM6mb.sf2 is missing")


def song_preset():
    """rainy-night (reverb, chorus, tape wobble, crackle, compressors) at the test song's
    tempo, with a 2-bar chord loop; velocities not humanised, so that every bar is as loud."""
    preset = load_preset("rainy-night")
    song = replace(preset.song, tempo_bpm=BPM, loop_bars=LOOP_BARS, swing=0.0)
    render = replace(preset.render, soundfont=str(SOUNDFONT), humanize_velocity=0)
    return replace(preset, song=song, render=render)


def loop_song(bars: int = 6):
    """The test song with its chords let go a 16th before the next one: a held note whose
    humanised note-off lands after the next strike of its pitch would cut that strike."""
    midi = make_song(bars=bars)
    for note in midi.instruments[0].notes:
        note.end -= 15.0 / BPM
    return midi


@pytest.fixture(scope="module")
def loop(tmp_path_factory):
    out = tmp_path_factory.mktemp("loop")
    report = produce_loop(loop_song(), song_preset(), out, seed=3, bars=6, title="t")
    return out, report


def flux(audio: np.ndarray, n: int = 1024, hop: int = 256) -> tuple[np.ndarray, np.ndarray]:
    """Spectral flux of the channel mean (positive magnitude differences) and frame centres."""
    frames = np.lib.stride_tricks.sliding_window_view(audio.mean(0), n)[::hop] * np.hanning(n)
    magnitude = np.abs(np.fft.rfft(frames, axis=1))
    rise = np.sqrt((np.maximum(np.diff(magnitude, axis=0), 0.0) ** 2).sum(axis=1))
    return rise, np.arange(1, len(magnitude)) * hop + n // 2


def bar_line_flux(audio: np.ndarray, bars: int, rate: int) -> np.ndarray:
    """The largest flux within 50 ms of each bar line of ``audio`` played twice in a row:
    [the wrap, bar 2, ...]. Every bar line of the test song has onsets (chord, kick)."""
    period = audio.shape[-1]
    rise, centre = flux(np.tile(audio, (1, 2)))
    reach = 0.05 * rate + 512
    return np.array([rise[np.abs(centre - (period + b * period // bars)) < reach].max()
                     for b in range(bars)])


def wrap_step_percentile(audio: np.ndarray) -> float:
    """Where the step from the last sample to the first ranks among all sample steps, %."""
    steps = np.abs(np.diff(audio, axis=1)).max(axis=0)
    return float((steps < np.abs(audio[:, 0] - audio[:, -1]).max()).mean() * 100)


def test_loop_length_is_bars_times_beats_over_tempo_times_rate():
    assert loop_length_samples(4, 72.0, 44100) == 588_000
    assert loop_length_samples(2, 90.0, 44100) == 235_200
    assert loop_length_samples(3, 87.0, 48000) == round(3 * 4 * 60 / 87 * 48000)  # 397,241
    assert loop_length_samples(1, 96.0, 8000) == 20_000


def test_every_loop_file_has_the_exact_length(loop):
    out, report = loop
    expected = loop_length_samples(LOOP_BARS, BPM, 44100)
    names = sorted(p.name for p in out.iterdir())
    assert names == ["bass.wav", "chords.wav", "drums.wav", "fx.wav", "melody.wav", "mix.wav"]
    for path in out.iterdir():
        audio, rate = read_audio(path)
        assert audio.shape == (2, expected) and rate == 44100, path.name
    assert report["length_samples"] == expected


@pytest.mark.parametrize("name", ["mix", "chords", "drums", "bass"])
def test_the_wrap_is_as_smooth_as_the_rest(loop, name):
    """No click (the step across the wrap is an ordinary one) and no onset of its own (the
    flux at the wrap is no more than at the loop's other bar lines)."""
    out, _ = loop
    audio, rate = read_audio(out / f"{name}.wav")
    assert wrap_step_percentile(audio) < 99.0
    lines = bar_line_flux(audio, LOOP_BARS, rate)
    assert lines[0] <= 1.25 * lines[1:].max()


def test_a_plain_cut_of_the_song_would_click(loop, tmp_path):
    """What the tests above guard against: the same bars cut from a render of the song."""
    out, _ = loop
    from tests.test_produce import produce

    produce(tmp_path, midi=loop_song(), formats=("wav",))
    song, _ = read_audio(tmp_path / "mix.wav")
    cut = song[:, : read_audio(out / "mix.wav")[0].shape[-1]]
    assert wrap_step_percentile(cut) > 99.0


def test_tails_are_folded_onto_the_start(loop):
    """Every bar of the test song is the same, so a loop carrying its reverb and release tails
    into its start is as loud at the start as at the end."""
    out, _ = loop
    for name in ("mix", "chords"):
        audio, rate = read_audio(out / f"{name}.wav")
        half = audio.shape[-1] // LOOP_BARS
        first, last = audio[:, :half], audio[:, -half:]
        assert integrated_loudness(first, rate) == pytest.approx(
            integrated_loudness(last, rate), abs=0.5), name


def test_the_loop_is_mastered_like_the_mix(loop):
    out, report = loop
    audio, rate = read_audio(out / "mix.wav")
    looped = np.tile(audio, (1, 3))
    assert integrated_loudness(looped, rate) == pytest.approx(-14.0, abs=0.5)
    assert true_peak_db(looped, rate) <= -1.0 + 1e-3
    assert report["loudness_lufs"] == pytest.approx(integrated_loudness(looped, rate), abs=0.1)


def test_loop_files_say_they_loop(loop):
    out, _ = loop
    acid = read_acid(riff_chunks(out / "mix.wav")["acid"])
    assert acid["loop"] and acid["beats"] == 4 * LOOP_BARS
    assert acid["tempo_bpm"] == pytest.approx(BPM) and acid["meter"] == (4, 4)


def test_the_loop_is_the_earliest_full_chord_loop_before_the_ending():
    midi = make_song(bars=8)
    for note in midi.instruments[1].notes[:]:  # no melody in the first two bars
        if note.start < 2 * 4 * 60 / BPM:
            midi.instruments[1].notes.remove(note)
    assert choose_window(midi, 2, 8, ending=True) == 2
    assert choose_window(make_song(bars=8), 2, 8, ending=True) == 0
    assert choose_window(make_song(bars=2), 2, 2, ending=True) == 0


def test_a_song_without_a_chord_loop_is_refused_in_one_line(tmp_path):
    with pytest.raises(InputError, match="song.loop_bars = 0: expected 1 or more bars"):
        check_loop(0, 32)
    with pytest.raises(InputError, match="at most the song's 8 bars"):
        check_loop(16, 8)
    preset = tmp_path / "through.toml"
    preset.write_text('inherits = "rainy-night"\n[song]\nloop_bars = 0\nmelody_form = ""\n')
    out = tmp_path / "song"
    result = CliRunner().invoke(app, ["generate", "--preset", str(preset), "--loop", "--bars",
                                      "8", "--out", str(out)])
    assert result.exit_code == 2, result.output
    assert "loop_bars = 0" in result.output and "Traceback" not in result.output
    assert not out.exists()


def test_wrap_continues_the_copy_before():
    """A tone whose period does not divide the loop: cut plainly it jumps, wrapped it does
    not, and away from the fade the last copy is kept as it is."""
    rate, period = 1000, 1000
    t = np.arange(3 * period) / rate
    tone = np.stack([np.cos(2 * np.pi * 7.5 * t)] * 2).astype(np.float32)
    out = wrap(tone, period, 50)
    assert abs(tone[0, -1] - tone[0, -period]) > 1.5  # a plain cut
    assert abs(out[0, -1] - out[0, 0]) < 0.05
    assert np.array_equal(out[:, :-50], tone[:, -period:-50])
