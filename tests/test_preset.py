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
    ("[song]\ntempi = 90", "song.tempi = 90: expected one of tempo_bpm, key"),
    ("colour = 1", "colour = 1: expected one of name, description"),
    ('[song]\nkey = "H minor"', "song.key = 'H minor'"),
    ("[song]\nswing = 2.0", "song.swing = 2.0"),
    ('[song]\nbars = 1.5', "song.bars = 1.5: expected an integer"),
    ("[song]\nmelody_range = [80, 70]", "song.melody_range"),
    ('[song]\ndrum_kit = "cowbell"', "song.drum_kit = 'cowbell'"),
    ('[song]\nmelody_form = "aaba"', "song.melody_form = 'aaba': expected capital letters"),
    ("[song]\nmelody_form = 4", "song.melody_form = 4"),
    ("[sampling.melody]\ntemperature = -1", "sampling.melody.temperature = -1"),
    ("[sampling.bass]\ntemperature = 1", "sampling.bass = {'temperature': 1}: expected one of "
     "chords, melody, drums (unknown field 'bass')"),
    ('inherits = "nope"', "inherits = 'nope': expected a preset in"),
    ("[song\n", "not valid TOML"),
])
def test_malformed_presets_name_file_field_and_value(tmp_path, text, needle):
    with pytest.raises(PresetError) as e:
        load_preset(_write(tmp_path, text))
    msg = str(e.value)
    assert needle in msg and "\n" not in msg
    assert "bad.toml" in msg


def test_circular_inheritance(tmp_path):
    (tmp_path / "a.toml").write_text('inherits = "b.toml"')
    (tmp_path / "b.toml").write_text('inherits = "a.toml"')
    with pytest.raises(PresetError, match="circular"):
        load_preset(str(tmp_path / "a.toml"))


def test_unknown_preset_lists_known_ones():
    with pytest.raises(PresetError, match="rainy-night"):
        load_preset("no-such-preset")


# --- hostile presets (#12.10): one line, never a traceback ------------------------------------


@pytest.mark.parametrize("text,needle", [
    ("[layers.bass]\ngain_db = " + "9" * 400, "layers.bass.gain_db = 9999"),
    ("[song]\ntempo_bpm = -" + "9" * 400, "song.tempo_bpm = -9999"),
    ("[master]\neffects = [{type = \"VinylCrackle\", hiss_db = -" + "9" * 400 + "}]",
     "master.effects[0].hiss_db = -9999"),
    ("[song]\nbars = " + "9" * 5000, "not valid TOML (Exceeds the limit"),
    ("[song]\nmelody_range = " + "[" * 5000 + "]" * 5000, "not valid TOML (nested too deeply)"),
    ("[song]\nmelody_range = " + "[" * 300 + "]" * 300, "song.melody_range = [[[["),
    ("[song]\ntempo_bpm = nan", "song.tempo_bpm = nan"),
    ("[song]\nswing = inf", "song.swing = inf"),
    ("song = 3", "song = 3: expected a table"),
    ("layers = []", "layers = []: expected a table"),
    ("[layers.drums]\neffects = [[1]]", "layers.drums.effects[0] = [1]: expected a table"),
    ("description = 5", "description = 5: expected a string"),
    ('[song]\nkey = "[red]Q[/red] minor"', "song.key = '[red]Q[/red] minor'"),
])
def test_hostile_values_are_one_line(tmp_path, text, needle):
    with pytest.raises(PresetError) as e:
        load_preset(_write(tmp_path, text))
    msg = str(e.value)
    assert needle in msg and "\n" not in msg and "bad.toml" in msg and len(msg) < 400, msg


def test_missing_inherits_target_names_the_file_that_asked(tmp_path):
    (tmp_path / "child.toml").write_text('inherits = "mother.toml"')
    (tmp_path / "top.toml").write_text('inherits = "child.toml"\n[song]\nbars = 8')
    with pytest.raises(PresetError) as e:
        load_preset(str(tmp_path / "top.toml"))
    assert str(e.value).startswith(f"{tmp_path / 'child.toml'}: inherits = 'mother.toml'")


@pytest.mark.parametrize("target", ["../../../../etc/passwd", "/etc/passwd", "sub/x.toml",
                                    "..", ".hidden", "", "../presets/rainy-night", 7])
def test_inherits_names_a_preset_never_a_path(tmp_path, target):
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "x.toml").write_text('description = "x"')
    path = _write(tmp_path, f"inherits = {target!r}".replace("'", '"'))
    with pytest.raises(PresetError) as e:
        load_preset(path)
    assert str(e.value).startswith(f"{path}: inherits = ") and "not a path" in str(e.value)


def test_inherits_finds_shipped_presets_and_siblings(tmp_path):
    (tmp_path / "mine.toml").write_text('inherits = "worn-tape"\n[song]\nbars = 8')
    (tmp_path / "more.toml").write_text('inherits = "mine.toml"\n[song]\ntempo_bpm = 77')
    p = load_preset(str(tmp_path / "more.toml"))
    assert (p.song.bars, p.song.tempo_bpm) == (8, 77.0)
    assert p.master == load_preset("worn-tape").master


def _cli(args):
    from typer.testing import CliRunner

    from arranger.cli.main import app

    result = CliRunner().invoke(app, args)
    return result.exit_code, [x for x in result.output.splitlines() if x.strip()]


@pytest.mark.parametrize("text,needle", [
    ("[layers.bass]\ngain_db = " + "9" * 400, "layers.bass.gain_db = 9999"),
    ("[song]\nmelody_range = " + "[" * 5000 + "]" * 5000, "nested too deeply"),
    ('inherits = "../../../../etc/passwd"', "inherits = '../../../../etc/passwd'"),
    ('inherits = "gone"', "inherits = 'gone': expected a preset in"),
])
def test_hostile_presets_exit_2_with_one_line_through_the_cli(tmp_path, text, needle):
    path = _write(tmp_path, text)
    out = tmp_path / "o"
    for args in (["presets", "show", path],
                 ["generate", "--preset", path, "--no-render", "--out", str(out)]):
        code, lines = _cli(args)
        assert code == 2 and len(lines) == 1 and needle in lines[0] and "bad.toml" in lines[0], \
            (args, lines)
    assert not out.exists()


_HOSTILE = [None, True, -1, 0, 10 ** 400, -(10 ** 400), 1.5, float("nan"), float("inf"), "",
            "x" * 500, "[b]x[/b]", [], [1, "a"], [[[]]], {}, {"type": "Reverb"}, {"a": {"b": 1}},
            [{"type": "Gain", "gain_db": 10 ** 400}], "../../etc/passwd"]


def _leaves(d, path=()):
    for k, v in d.items():
        if isinstance(v, dict) and v:
            yield from _leaves(v, (*path, k))
        yield (*path, k)


def test_fuzz_malformed_presets_never_give_a_traceback():
    """Every leaf of a resolved preset replaced by hostile values: loads or one PresetError."""
    import random

    base = load_preset("jazzy-ninths").to_dict()
    rng = random.Random(12)
    paths = list(_leaves(base)) + [("song", "extra"), ("layers", "flute"), ("inherits",)]
    tried = refused = 0
    for _ in range(600):
        data = _mutate(base, rng.choice(paths), rng.choice(_HOSTILE))
        tried += 1
        try:
            from_dict(data, "fuzz.toml")
        except PresetError as e:  # any other exception fails the test with its traceback
            refused += 1
            assert "\n" not in str(e) and str(e).startswith("fuzz.toml: ") and len(str(e)) < 500
    assert tried == 600 and refused > 400


def _mutate(base: dict, path: tuple, value):
    import copy

    data = copy.deepcopy(base)
    node = data
    for k in path[:-1]:
        node = node[k]
    if value is None:
        node.pop(path[-1], None)
    else:
        node[path[-1]] = value
    return data
