"""Mix balance by loudness: per-layer levels in LU, measured on the rendered stems."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from arranger.audio.config import BUS_REFERENCE_LUFS, LayerSound
from arranger.audio.files import read_audio
from arranger.audio.loudness import integrated_loudness, true_peak_db
from arranger.audio.mix import process_stem
from arranger.audio.produce import produce_audio
from arranger.preset import load_preset, preset_names
from tests.test_mix import synthetic_stems
from tests.test_produce import SOUNDFONT
from tests.test_render import make_song

pytestmark = pytest.mark.skipif(SOUNDFONT is None or not SOUNDFONT.exists(),
                                reason="pretty_midi's TimGM6mb.sf2 is missing")
LEAD_WITHIN_LU, BEAT_WITHIN_LU = 4.0, 6.0  # melody to chords, drums to bass


def render_preset(name: str, out, midi=None, only=None) -> dict[str, float]:
    """The test song through preset ``name``'s sounds and master: stem -> LUFS, + "mix"."""
    preset = load_preset(name)
    render = replace(preset.render, soundfont=str(SOUNDFONT))
    produce_audio(midi or make_song(bars=4), preset.layers, preset.master, render, out,
                  swing=preset.song.swing, seed=2, formats=("wav",), progress=False, only=only)
    levels = {}
    for path in sorted((out / "stems").glob("*.wav")):
        audio, rate = read_audio(path)
        levels[path.stem] = integrated_loudness(audio, rate)
    mix, rate = read_audio(out / "mix.wav")
    levels["mix"], levels["true_peak"] = integrated_loudness(mix, rate), true_peak_db(mix, rate)
    return levels


@pytest.mark.parametrize("name", preset_names())
def test_each_preset_puts_the_tune_and_the_beat_forward(name, tmp_path):
    preset = load_preset(name)
    levels = render_preset(name, tmp_path)
    for layer in ("chords", "melody", "bass", "drums"):
        wanted = BUS_REFERENCE_LUFS + preset.layers[layer].level_lu
        assert levels[layer] == pytest.approx(wanted, abs=0.3), layer
    assert levels["chords"] - levels["melody"] <= LEAD_WITHIN_LU
    assert abs(levels["bass"] - levels["drums"]) <= BEAT_WITHIN_LU
    assert levels["true_peak"] <= preset.master.true_peak_dbtp + 1e-3
    assert levels["mix"] == pytest.approx(preset.master.target_lufs, abs=0.5)


def test_a_level_is_measured_on_the_processed_stem_whatever_its_input_level():
    stem = synthetic_stems()["chords"]
    sound = LayerSound(4, level_lu=-7.0)
    for scale in (0.01, 0.3):
        out = process_stem(stem * scale, sound, 44100, 0, "chords")
        assert integrated_loudness(out, 44100) == pytest.approx(BUS_REFERENCE_LUFS - 7.0,
                                                                abs=0.05)
    silent = np.zeros_like(stem)
    assert not process_stem(silent, sound, 44100, 0, "chords").any()


def test_a_new_take_of_one_layer_leaves_the_other_leveled_stems_byte_identical(tmp_path):
    render_preset("rainy-night", tmp_path)
    before = {p.name: p.read_bytes() for p in (tmp_path / "stems").iterdir()}
    midi = make_song(bars=4)
    midi.instruments[1].notes = midi.instruments[1].notes[::2]  # a sparser melody
    render_preset("rainy-night", tmp_path, midi=midi, only={"melody"})
    for path in (tmp_path / "stems").iterdir():
        assert (path.read_bytes() == before[path.name]) == (path.stem != "melody"), path.name


def test_a_level_and_a_fader_together_are_refused_in_one_line():
    with pytest.raises(ValueError) as error:
        LayerSound.from_dict({"level_lu": -6.0, "gain_db": -3.0}, "p.toml: layers.bass")
    assert str(error.value) == ("p.toml: layers.bass.gain_db = -3.0: expected 0 (or no gain_db)"
                                " when level_lu is set: level_lu sets the stem's loudness")
    with pytest.raises(ValueError, match="level_lu = 3.0: expected a number in -40..0"):
        LayerSound.from_dict({"level_lu": 3.0}, "p.toml: layers.bass")
    sound = LayerSound.from_dict({"level_lu": -6.0}, "p.toml: layers.bass")
    assert LayerSound.from_dict(sound.to_dict(), "p.toml: layers.bass") == sound
