"""Rendering MIDI layers to stems with FluidSynth: lengths, audibility, timing, determinism.

Stems are rendered the way production renders them: ``produce_audio`` with dry sounds, read
back from the WAV files it writes.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pretty_midi
import pytest
from scipy.signal import stft

from arranger.audio import produce
from arranger.audio.config import LayerSound, MasterSound, RenderSettings
from arranger.audio.files import read_audio
from arranger.audio.produce import produce_audio
from arranger.audio.render import (
    FLUID_BLOCK,
    layer_name,
    song_length_samples,
    swing_offsets_s,
    timed_notes,
)
from arranger.audio.soundfont import bundled_soundfont
from arranger.errors import InputError

SOUNDFONT = bundled_soundfont()  # TimGM6mb: small, loads in milliseconds, always installed
BPM = 90.0
STEP_S = 15.0 / BPM
pytestmark = pytest.mark.skipif(SOUNDFONT is None or not SOUNDFONT.exists(),
                                reason="pretty_midi's TimGM6mb.sf2 is missing")


def render_stems(midi: pretty_midi.PrettyMIDI, *, swing: float = 0.0, humanize_ms: float = 6.0,
                 seed: int = 0, sample_rate: int = 44100,
                 sounds: dict[str, LayerSound] | None = None) -> dict[str, np.ndarray]:
    """Layer -> (2, n) stem as ``produce_audio`` writes it (dry unless ``sounds`` says)."""
    render = RenderSettings(str(SOUNDFONT), sample_rate, humanize_ms)
    quiet = MasterSound(target_lufs=-40.0)  # stems do not depend on it: the least work
    with tempfile.TemporaryDirectory() as folder:
        report = produce_audio(midi, sounds or {}, quiet, render, Path(folder),
                               swing=swing, seed=seed, formats=("wav",), progress=False)
        return {name: read_audio(Path(folder) / "stems" / f"{name}.wav")[0]
                for name in report["layers"]}


def make_song(bars: int = 2, bpm: float = BPM) -> pretty_midi.PrettyMIDI:
    """Four layers on a straight 16th grid: a held chord, root quarters, eighths, a beat."""
    midi = pretty_midi.PrettyMIDI(initial_tempo=bpm)
    step = 15.0 / bpm
    layers = {name: pretty_midi.Instrument(program, is_drum=name == "drums", name=name)
              for name, program in (("chords", 4), ("melody", 11), ("bass", 33), ("drums", 0))}

    def add(name: str, pitch: int, at: int, steps: int, vel: int = 90) -> None:
        layers[name].notes.append(pretty_midi.Note(vel, pitch, at * step, (at + steps) * step))

    for bar in range(bars):
        at = 16 * bar
        for pitch in (57, 60, 64, 67):
            add("chords", pitch, at, 16, 70)
        for s in range(0, 16, 4):
            add("bass", 45, at + s, 3)
        for s in range(0, 16, 2):
            add("melody", 69 + (s // 2) % 5, at + s, 2)
        for s in range(16):
            add("drums", 42, at + s, 1, 70)
            if s % 8 == 0:
                add("drums", 36, at + s, 1, 110)
            if s % 8 == 4:
                add("drums", 38, at + s, 1, 100)
    midi.instruments.extend(layers.values())
    return midi


def rms_db(audio: np.ndarray) -> float:
    return 10 * np.log10(np.mean(np.square(audio, dtype=np.float64)) + 1e-30)


def spectral_flatness(audio: np.ndarray, sample_rate: int) -> float:
    """Median over loud frames of geometric/arithmetic mean power, 100 Hz - 8 kHz (0..1)."""
    freqs, _, z = stft(audio.mean(axis=0), fs=sample_rate, nperseg=2048)
    power = np.abs(z[(freqs > 100) & (freqs < 8000)]) ** 2 + 1e-12
    energy = power.sum(axis=0)
    loud = power[:, energy > energy.max() * 1e-3]
    return float(np.median(np.exp(np.log(loud).mean(axis=0)) / loud.mean(axis=0)))


@pytest.fixture(scope="module")
def stems() -> dict[str, np.ndarray]:
    return render_stems(make_song(), swing=0.2, seed=7)


def test_one_equal_length_stereo_stem_per_layer(stems):
    song = make_song()
    assert list(stems) == ["chords", "melody", "bass", "drums"]
    expected = song_length_samples(song, 44100, swing=0.2, humanize_ms=6.0, tail_seconds=2.0)
    for audio in stems.values():
        assert audio.dtype == np.float32 and audio.shape == (2, expected)
        assert np.isfinite(audio).all()
    assert expected % FLUID_BLOCK == 0
    assert expected >= (song.get_end_time() + 2.0) * 44100


def test_every_stem_is_audible(stems):
    for name, audio in stems.items():
        assert rms_db(audio) > -50.0, name


def test_drums_are_noise_like_and_the_rest_pitched(stems):
    assert spectral_flatness(stems["drums"], 44100) > 0.05
    for name in ("chords", "melody", "bass"):
        assert spectral_flatness(stems[name], 44100) < 0.01, name


def test_stems_keep_the_release_tail():
    song = make_song(bars=1)
    audio = render_stems(song, humanize_ms=0.0)["chords"]
    end = int(song.instruments[0].notes[-1].end * 44100)
    after = audio[:, end + 2205 : end + 4410]  # 50-100 ms after the last note-off
    assert rms_db(after) > rms_db(audio[:, :end]) - 40.0


def test_rendering_is_deterministic_and_thread_independent(stems, monkeypatch):
    monkeypatch.setattr(produce, "WORKERS", 1)
    again = render_stems(make_song(), swing=0.2, seed=7)
    for name in stems:
        assert np.array_equal(stems[name], again[name]), name


def test_the_seed_changes_the_performance(stems):
    other = render_stems(make_song(), swing=0.2, seed=8)
    assert not np.array_equal(other["melody"], stems["melody"])


def test_a_layer_does_not_depend_on_the_other_layers(stems):
    song = make_song()
    melody = song.instruments[1]
    melody.notes = [pretty_midi.Note(n.velocity, n.pitch + 5, n.start, n.end) for n in melody.notes]
    changed = render_stems(song, swing=0.2, seed=7)
    assert not np.array_equal(changed["melody"], stems["melody"])
    for name in ("chords", "bass", "drums"):
        assert np.array_equal(changed[name], stems[name]), name


@pytest.mark.parametrize("swing", [0.0, 0.25, 0.6])
def test_swing_delays_odd_sixteenths_only(swing):
    song = make_song(bars=1)
    times = np.arange(16) * STEP_S
    offsets = swing_offsets_s(song, times, swing)
    assert np.allclose(offsets[1::2], swing * STEP_S)
    assert np.allclose(offsets[0::2], 0.0)


def test_swing_moves_the_sound():
    song = pretty_midi.PrettyMIDI(initial_tempo=BPM)
    hat = pretty_midi.Instrument(0, is_drum=True, name="drums")
    hat.notes.append(pretty_midi.Note(110, 37, 3 * STEP_S, 3 * STEP_S + 0.05))  # odd step
    song.instruments.append(hat)

    def onset_s(swing: float) -> float:
        audio = render_stems(song, swing=swing, humanize_ms=0.0)["drums"]
        return np.flatnonzero(np.abs(audio).max(axis=0) > 1e-3)[0] / 44100

    assert onset_s(0.5) - onset_s(0.0) == pytest.approx(0.5 * STEP_S, abs=0.002)


def test_humanisation_has_the_set_spread_and_keeps_chords_together():
    song = make_song(bars=16)
    drums, chords = song.instruments[3], song.instruments[0]
    straight = np.array([n.start for n in drums.notes])
    notes = timed_notes(song, drums, swing=0.0, humanize_ms=8.0, humanize_velocity=10, seed=1)
    jitter_ms = (notes.start_s - straight) * 1000
    assert np.std(jitter_ms) == pytest.approx(8.0, rel=0.25)
    assert np.abs(jitter_ms).max() <= 3 * 8.0 + 1e-6
    assert np.std(notes.velocity - [n.velocity for n in drums.notes]) == pytest.approx(10, rel=0.3)
    held = timed_notes(song, chords, swing=0.0, humanize_ms=8.0, humanize_velocity=0, seed=1)
    assert np.ptp(held.start_s.reshape(-1, 4), axis=1).max() == 0.0  # one offset per chord


def test_no_humanisation_keeps_the_grid():
    song = make_song(bars=1)
    notes = timed_notes(song, song.instruments[2], swing=0.0, humanize_ms=0.0,
                        humanize_velocity=0, seed=3)
    assert np.allclose(notes.start_s, [n.start for n in song.instruments[2].notes])
    assert list(notes.velocity) == [n.velocity for n in song.instruments[2].notes]


def test_silent_layers_render_silent_stems_of_equal_length():
    song = make_song(bars=1)
    for instrument in song.instruments:
        instrument.notes = []
    stems = render_stems(song)
    assert list(stems) == ["chords", "melody", "bass", "drums"]
    assert {a.shape for a in stems.values()} == {(2, song_length_samples(
        song, 44100, swing=0.0, humanize_ms=6.0, tail_seconds=2.0))}
    assert all(not a.any() for a in stems.values())
    assert render_stems(pretty_midi.PrettyMIDI()) == {}


def test_program_override_changes_the_instrument(stems):
    other = render_stems(make_song(), swing=0.2, seed=7, sounds={"melody": LayerSound(40)})
    assert not np.array_equal(other["melody"], stems["melody"])
    assert np.array_equal(other["bass"], stems["bass"])


@pytest.mark.parametrize("sample_rate", [22050, 48000])
def test_other_sample_rates(sample_rate):
    song = make_song(bars=1)
    stems = render_stems(song, sample_rate=sample_rate)
    expected = song_length_samples(song, sample_rate, swing=0.0, humanize_ms=6.0,
                                   tail_seconds=2.0)
    assert stems["bass"].shape == (2, expected)
    assert rms_db(stems["bass"]) > -50.0


def test_layer_names_are_file_safe():
    assert layer_name(pretty_midi.Instrument(0, name="chords"), 0) == "chords"
    assert layer_name(pretty_midi.Instrument(0, name="Lead / Synth"), 1) == "Lead_Synth"
    assert layer_name(pretty_midi.Instrument(0, name="  "), 2) == "track2"


def test_bad_swing_is_refused():
    with pytest.raises(InputError, match="swing = 0.9"):
        render_stems(make_song(bars=1), swing=0.9)


def test_importing_the_renderer_loads_no_fluidsynth_library():
    """libfluidsynth (and the log hook on it) load on first use, not at import, so a machine
    without it can import everything; rendering then says what to install."""
    code = ("import sys; sys.modules['fluidsynth'] = None\n"  # as if libfluidsynth were missing
            "import arranger.audio.render as r, arranger.audio.produce, arranger.cli.main\n"
            "print(r.fluid.cache_info().currsize)\n"
            "try:\n    r.fluid()\nexcept FileNotFoundError as e:\n    print(e)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            check=True)
    loaded, message = result.stdout.splitlines()
    assert loaded == "0"
    assert "FluidSynth is not installed" in message and "libfluidsynth3" in message


def test_fluidsynth_warnings_are_shown_once_each_and_few(capsys):
    """An overloaded synth repeats one warning hundreds of thousands of times: at most
    ``LOG_LINES`` distinct lines reach the terminal."""
    from arranger.audio import render

    song = pretty_midi.PrettyMIDI(initial_tempo=120)
    pad = pretty_midi.Instrument(48, name="chords")  # strings: several voices a note
    pad.notes = [pretty_midi.Note(100, 30 + i % 70, 0.0, 0.05) for i in range(600)]
    song.instruments.append(pad)
    notes = timed_notes(song, pad, swing=0.0, humanize_ms=0.0, humanize_velocity=0, seed=0)
    dropped = render._LogFilter.dropped
    with render.LoadedSoundfont(SOUNDFONT, 44100) as loaded:
        render.render_instrument(loaded, pad, notes, 4410)
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == len(set(lines)) <= render.LOG_LINES
    assert render._LogFilter.dropped - dropped > 100  # it did overflow: the filter kept it quiet


def test_a_soundfont_loaded_ahead_is_the_one_opened_and_closed_if_never_opened(tmp_path):
    from arranger.audio import ahead
    from arranger.audio.ahead import drop_ahead, load_ahead, open_soundfont

    font = bundled_soundfont()
    load_ahead(font, 22050)
    load_ahead(font, 22050)  # asked twice: loaded once
    assert len(ahead._AHEAD) == 1
    with open_soundfont(font, 22050) as loaded:  # taken from the side thread
        assert loaded.sample_rate == 22050 and not ahead._AHEAD
    load_ahead(font, 22050)
    drop_ahead()  # nobody rendered: closed, not kept
    assert not ahead._AHEAD
    broken = tmp_path / "broken.sf2"
    broken.write_bytes(b"not a soundfont")
    load_ahead(broken, 22050)
    with pytest.raises(ValueError, match="could not load the SoundFont"):
        open_soundfont(broken, 22050)  # the side thread's error, where the font is wanted
