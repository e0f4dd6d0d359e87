"""One declaration per setting: the generic mechanism, the effect table, key spelling."""

from __future__ import annotations

import dataclasses
import math
import subprocess
import sys

import mido
import pytest

from arranger import midi_io
from arranger.audio import config, effects, fx
from arranger.audio.config import EffectSpec, LayerSound, MasterSound, RenderSettings
from arranger.errors import InputError
from arranger.manifest import HistoryEntry, Manifest
from arranger.preset import Preset
from arranger.score import Chord, Key, Score
from arranger.settings import dump, parse, spec_of
from arranger.song_settings import Sampling, SongSettings

CONFIGS = [SongSettings, Sampling, LayerSound, MasterSound, RenderSettings, Preset, Manifest,
           HistoryEntry, *(kind.params for kind in effects.EFFECTS.values())]


def _settings(cls):
    return [f for f in dataclasses.fields(cls) if f.metadata.get("setting", 0) is not None]


@pytest.mark.parametrize("cls", CONFIGS, ids=lambda c: c.__name__)
def test_every_setting_is_declared_with_its_metadata(cls):
    assert dataclasses.is_dataclass(cls)
    for f in _settings(cls):
        assert "setting" in f.metadata, f"{cls.__name__}.{f.name} is not declared by setting()"
        spec = f.metadata["setting"]
        if f.type in ("int", "float", "float | None", "int | None"):  # numbers have a range
            assert math.isfinite(spec.low) or math.isfinite(spec.high) or spec.choices, \
                (cls, f.name)


def test_configs_are_frozen():
    for cls in [SongSettings, Sampling, LayerSound, MasterSound, RenderSettings, EffectSpec,
                Preset, *(kind.params for kind in effects.EFFECTS.values())]:
        assert cls.__dataclass_params__.frozen, cls


def test_defaults_and_ranges_are_the_declared_ones():
    song = SongSettings()
    assert (song.tempo_bpm, song.bars, song.drum_loop_bars, song.melody_range) == (
        80.0, 32, 2, (60, 84))
    assert (spec_of(SongSettings, "bars").low, spec_of(SongSettings, "bars").high) == (2, 512)
    assert parse(SongSettings, {}) == song
    assert LayerSound.from_dict({}, "w") == LayerSound(0)


@pytest.mark.parametrize("cls", [SongSettings, Sampling, LayerSound, MasterSound,
                                 RenderSettings])
def test_dump_then_parse_round_trips(cls):
    value = cls()
    assert cls.from_dict(dump(value), "x.toml: t") == value
    assert cls.from_dict(value.to_dict(), "x.toml: t") == value


@pytest.mark.parametrize("cls,data,line", [
    (SongSettings, {"tempo_bpm": 10 ** 400}, "f.toml: song.tempo_bpm = 1000000000"),
    (SongSettings, {"tempo_bpm": math.nan}, "f.toml: song.tempo_bpm = nan: expected a number"),
    (SongSettings, {"bars": True}, "f.toml: song.bars = True: expected an integer in 2..512"),
    (SongSettings, {"melody_range": [60]}, "song.melody_range = [60]: expected [low, high]"),
    (SongSettings, {"melody_range": "60-84"}, "song.melody_range = '60-84': expected [low"),
    (SongSettings, {"key": ["C"]}, "song.key = ['C']: expected a key like"),
    (LayerSound, {"gain_db": -(10 ** 400)}, "f.toml: song.gain_db = -100000"),
    (LayerSound, {"effects": "Reverb"}, "song.effects = 'Reverb': expected a list of effect"),
    (LayerSound, {"effects": [{"type": "Gain", "gain_db": 10 ** 400}]},
     "f.toml: song.effects[0].gain_db = 10000"),
    (MasterSound, {"effects": [{"type": "VinylCrackle", "hiss_db": -(10 ** 400)}]},
     "song.effects[0].hiss_db = -1000"),
    (MasterSound, {"effects": [7]}, "song.effects[0] = 7: expected a table like"),
    (RenderSettings, [], "f.toml: song = []: expected a table"),
])
def test_bad_values_give_one_line_naming_file_field_value(cls, data, line):
    with pytest.raises(InputError) as e:
        cls.from_dict(data, "f.toml: song")
    assert str(e.value).startswith("f.toml: ") and line in str(e.value)
    assert "\n" not in str(e.value)
    assert len(str(e.value)) < 400  # a 400-digit value is cut short in the line


def test_effect_table_is_the_one_source_of_factories_flags_and_costs():
    assert set(fx.EFFECT_FACTORIES) == set(config.EFFECT_PARAMETERS) == set(effects.EFFECTS)
    assert {n for n, k in effects.EFFECTS.items() if k.channel_wise} == fx.CHANNEL_WISE
    assert config.EFFECT_PARAMETERS["Reverb"] is effects.EFFECTS["Reverb"].params
    from arranger.audio import produce

    assert not hasattr(produce, "_EFFECT_COST")
    assert effects.EFFECTS["Reverb"].cost > effects.EFFECTS["Gain"].cost
    tape = fx.build_effect(EffectSpec("TapeWobble", {"depth_percent": 1.0}), seed=4)
    assert isinstance(tape, fx.TapeWobble) and tape.seed == 4 and tape.depth_percent == 1.0


def test_every_declared_parameter_is_accepted_by_its_effect():
    """The parameters of the table are names the factories take (pedalboard's or ours)."""
    for name, kind in effects.EFFECTS.items():
        for f in dataclasses.fields(kind.params):
            spec = f.metadata["setting"]
            value = spec.choices[-1] if spec.choices else (
                spec.high if math.isfinite(spec.high) else spec.low)
            value = int(value) if "int" in str(f.type) else value
            fx.build_effect(EffectSpec.from_dict({"type": name, f.name: value}, "t"))


def test_settings_import_neither_pedalboard_nor_scipy():
    code = ("import sys, arranger.preset, arranger.manifest; "
            "print(sorted(m for m in ('pedalboard', 'scipy', 'torch') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert out.strip() == "[]"


def test_model_config_with_wrong_types_is_one_line():
    from tracks.weights_file import ModelConfig, WeightsError

    good = {"layer": "drums", "vocab_size": 5, "cond_sizes": [3, 4]}
    assert ModelConfig.from_dict(good).cond_sizes == (3, 4)
    for bad, words in [({**good, "vocab_size": "5"}, "config.vocab_size = '5'"),
                       ({**good, "cond_sizes": 3}, "config.cond_sizes = 3"),
                       ({**good, "hidden": 2.5}, "config.hidden = 2.5"),
                       ({"layer": "drums"}, "config.vocab_size = (missing)"),
                       ({**good, "extra": 1}, "unknown field 'extra'"), ([1], "config = [1]")]:
        with pytest.raises(WeightsError) as e:
            ModelConfig.from_dict(bad, "w.safetensors: config")
        assert str(e.value).startswith("w.safetensors: ") and words in str(e.value)


# --- key spelling ----------------------------------------------------------------------------


def test_a_key_is_spelled_as_written_without_changing_equality():
    sharp, flat = Key.parse("C#m"), Key.parse("Dbm")
    assert sharp == flat == Key(1, "minor") and hash(sharp) == hash(Key(1, "minor"))
    assert str(sharp) == "C# minor" and str(flat) == "Db minor"
    assert Chord(0, "m7").name(sharp) == "C#m7" and Chord(3, "maj").name(sharp) == "E"
    assert Chord(7, "7").name(sharp) == "G#7" and Chord(7, "7").name(flat) == "Ab7"
    assert str(Key.parse("F minor")) == "F minor" and str(Key(1)) == "Db major"  # as before
    with pytest.raises(ValueError):
        Key(0, "major", "both")


def _song(key: Key) -> Score:
    return Score(2, key=key, chords=(Chord(0, "m7"), None, None, None, Chord(5, "m7"), None,
                                     None, None))


def _events(path):
    midi = mido.MidiFile(str(path))
    msgs = [m for t in midi.tracks for m in t]
    return ([m.key for m in msgs if m.type == "key_signature"],
            [m.text for m in msgs if m.type == "text" and m.text != "N"
             and not m.text.startswith("lofi:")])


@pytest.mark.parametrize("text,signature,chords", [
    ("C#m", "C#m", ["C#m7", "F#m7"]), ("A# minor", "A#m", ["A#m7", "D#m7"]),
    ("Ebm", "Ebm", ["Ebm7", "Abm7"]), ("C# major", "C#", ["C#m7", "F#m7"]),
    ("Gb major", "Gb", ["Gbm7", "Bm7"]), ("F minor", "Fm", ["Fm7", "Bbm7"]),
])
def test_midi_key_signature_and_chord_symbols_follow_the_spelling(tmp_path, text, signature,
                                                                  chords):
    path = tmp_path / "k.mid"
    midi_io.write_midi(path, _song(Key.parse(text)))
    assert _events(path) == ([signature], chords)
    back = midi_io.read_midi(path)  # regenerate reads the song back: the spelling stays
    assert str(back.key) == str(Key.parse(text)) and back.key == Key.parse(text)


def test_keys_with_one_spelling_write_the_bytes_they_always_did(tmp_path):
    for text in ("F minor", "Eb major", "D major", "A minor", "C minor", "E major"):
        score = _song(Key.parse(text))
        path = tmp_path / "k.mid"
        midi_io.write_midi(path, score)
        assert path.read_bytes() == midi_io.midi_bytes(midi_io.to_midi(score)), text


def test_lead_sheet_key_is_spelled_as_written():
    from arranger import pictures

    assert pictures._tonic_name(_song(Key.parse("C#m"))) == "C#"
    assert pictures._tonic_name(_song(Key.parse("F minor"))) == "F"
