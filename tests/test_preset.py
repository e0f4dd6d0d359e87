"""Presets: every shipped one loads; inheritance; one clear line for each malformed field."""

import pytest

from arranger.preset import PresetError, dump_toml, from_dict, load_preset, preset_names


def test_at_least_six_presets_load_and_differ():
    names = preset_names()
    assert len(names) >= 6
    presets = [load_preset(n) for n in names]
    assert all(p.description for p in presets)
    assert len({(p.song.tempo_bpm, p.song.key) for p in presets}) == len(presets)


def test_inheritance_overrides_only_what_it_names():
    base, child = load_preset("rainy-night"), load_preset("worn-tape")
    assert child.song.tempo_bpm != base.song.tempo_bpm
    assert child.layers["melody"] == base.layers["melody"]
    assert child.master != base.master


def test_resolved_preset_round_trips_through_dict_and_toml():
    import tomllib

    p = load_preset("jazzy-ninths")
    assert from_dict(p.to_dict(), "x") == from_dict(tomllib.loads(dump_toml(p.to_dict())), "x")


def _write(tmp_path, text):
    path = tmp_path / "bad.toml"
    path.write_text(text)
    return str(path)


@pytest.mark.parametrize("text,needle", [
    ('[song]\ntempo_bpm = "fast"', "song.tempo_bpm = 'fast'"),
    ("[song]\ntempo_bpm = 900", "song.tempo_bpm = 900: expected a number in 40..200"),
    ("[song]\ntempi = 90", "song.tempi: unknown field"),
    ("colour = 1", "colour: unknown field"),
    ('[song]\nkey = "H minor"', "song.key = 'H minor'"),
    ("[song]\nswing = 2.0", "song.swing = 2.0"),
    ('[song]\nbars = 1.5', "song.bars = 1.5: expected an integer"),
    ("[song]\nmelody_range = [80, 70]", "song.melody_range"),
    ('[song]\ndrum_kit = "cowbell"', "song.drum_kit = 'cowbell'"),
    ('[song]\nmelody_form = "aaba"', "song.melody_form = 'aaba': expected capital letters"),
    ("[song]\nmelody_form = 4", "song.melody_form = 4"),
    ("[sampling.melody]\ntemperature = -1", "sampling.melody.temperature = -1"),
    ("[sampling.bass]\ntemperature = 1", "sampling.bass: unknown field"),
    ('inherits = "nope"', "preset 'nope' not found"),
    ("[song\n", "not valid TOML"),
])
def test_malformed_presets_name_file_field_and_value(tmp_path, text, needle):
    with pytest.raises(PresetError) as e:
        load_preset(_write(tmp_path, text))
    msg = str(e.value)
    assert needle in msg and "\n" not in msg
    if "not found" not in needle:
        assert "bad.toml" in msg


def test_circular_inheritance(tmp_path):
    (tmp_path / "a.toml").write_text('inherits = "b.toml"')
    (tmp_path / "b.toml").write_text('inherits = "a.toml"')
    with pytest.raises(PresetError, match="circular"):
        load_preset(str(tmp_path / "a.toml"))


def test_unknown_preset_lists_known_ones():
    with pytest.raises(PresetError, match="rainy-night"):
        load_preset("no-such-preset")
