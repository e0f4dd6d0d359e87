"""Manifests are read like presets: every crafted field is one line naming file, field, value."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from arranger.errors import InputError
from arranger.manifest import Manifest
from arranger.preset import load_preset
from arranger.weights import weights_hash

runner = CliRunner()


@pytest.fixture(scope="module")
def good() -> dict:
    return Manifest(preset=load_preset("rainy-night").to_dict(), seed=5, bars=8, variations=2,
                    index=1, weights_sha256=weights_hash(None),
                    history=[{"layer": "drums", "bars": "1-8", "seed": 11}],
                    packages={"numpy": "2"}).to_dict()


def _write(tmp_path, data) -> str:
    path = tmp_path / "manifest.json"
    path.write_text(data if isinstance(data, str) else json.dumps(data))
    return str(path)


def test_a_written_manifest_reads_back_equal(tmp_path, good):
    m = Manifest.from_dict(good, "m.json")
    assert m.to_dict() == good and list(good)[:3] == ["preset", "seed", "bars"]
    m.save(tmp_path)
    assert Manifest.load(tmp_path) == m
    assert json.loads(m.to_json()) == good


@pytest.mark.parametrize("change,needle", [
    ({"index": 99}, "index = 99: expected an integer in 0..63"),
    ({"index": 2}, "index = 2: expected an integer in 0..1"),
    ({"index": -1}, "index = -1: expected an integer in 0..63"),
    ({"seed": 1.5}, "seed = 1.5: expected an integer in 0.."),
    ({"seed": True}, "seed = True: expected an integer"),
    ({"seed": 10 ** 400}, "seed = 1000000000"),
    ({"bars": 0}, "bars = 0: expected an integer in 2..512"),
    ({"variations": 0}, "variations = 0: expected an integer in 1..64"),
    ({"history": "abc"}, "history = 'abc': expected a list of tables"),
    ({"history": [{"layer": "drums", "seed": 3}]}, "history[0].bars = (missing): expected"),
    ({"history": [{"layer": "drums", "bars": "9-16", "seed": 3}]},
     "history[0].bars = '9-16': expected bars within the song's 1..8"),
    ({"history": [{"layer": "drums", "bars": "5-2", "seed": 3}]}, "history[0].bars = '5-2'"),
    ({"history": [{"layer": "flute", "bars": "1-2", "seed": 3}]},
     "history[0].layer = 'flute': expected one of chords, melody, bass, drums"),
    ({"history": [{"layer": "drums", "bars": "1-2", "seed": -3}]}, "history[0].seed = -3"),
    ({"history": [7]}, "history[0] = 7: expected a table"),
    ({"weights_sha256": "abc"}, "weights_sha256 = 'abc': expected 64 lower-case hex digits"),
    ({"weights": 5}, "weights = 5: expected a string"),
    ({"packages": {"numpy": 2}}, "packages.numpy = 2: expected a string"),
    ({"format_version": 2}, "format_version = 2: expected one of 1"),
    ({"colour": 1}, "colour = 1: expected one of preset, seed"),
    ({"preset": "rainy"}, "preset = 'rainy': expected a table"),
    ({"preset": {"song": {"tempo_bpm": 900}}}, "preset.song.tempo_bpm = 900: expected a number"),
])
def test_crafted_fields_are_one_line_naming_file_field_and_value(tmp_path, good, change,
                                                                 needle):
    path = _write(tmp_path, {**good, **change})
    with pytest.raises(InputError) as e:
        Manifest.load(path)
    assert str(e.value).startswith(f"{path}: ") and needle in str(e.value), str(e.value)
    assert "\n" not in str(e.value) and len(str(e.value)) < 600


@pytest.mark.parametrize("text,needle", [
    ("{", "not valid JSON"), ("[" * 5000 + "]" * 5000, "not valid JSON (nested too deeply)"),
    ('{"seed": ' + "9" * 5000 + "}", "not valid JSON (Exceeds the limit"),
    ("[1, 2]", "manifest.json: expected a table at the top, got [1, 2]"),
])
def test_unreadable_manifests_are_one_line(tmp_path, text, needle):
    path = _write(tmp_path, text)
    with pytest.raises(InputError) as e:
        Manifest.load(path)
    assert needle in str(e.value) and "\n" not in str(e.value)


def test_missing_manifest_says_so(tmp_path):
    with pytest.raises(InputError, match="no manifest here"):
        Manifest.load(tmp_path)


def test_weights_hash_is_compared_with_the_weights_used(good):
    Manifest.from_dict(good, "m.json").check_weights("m.json")  # the shipped weights: same
    other = Manifest.from_dict({**good, "weights_sha256": "0" * 64}, "m.json")
    with pytest.raises(InputError) as e:
        other.check_weights("m.json")
    assert str(e.value).startswith("m.json: weights_sha256 = '0000") and "changed" in str(e.value)
    gone = Manifest.from_dict({**good, "weights": "/no/such/weights"}, "m.json")
    with pytest.raises(InputError, match="weights = '/no/such/weights'"):
        gone.check_weights("m.json")
    Manifest.from_dict({**good, "weights_sha256": ""}, "m.json").check_weights()  # unknown: ok


@pytest.mark.parametrize("change,needle", [
    ({"weights_sha256": "0" * 64}, "weights_sha256 = '0000"),
    ({"index": 99}, "index = 99"),
    ({"history": "abc"}, "history = 'abc'"),
    ({"history": [{"layer": "drums", "seed": 3}]}, "history[0].bars = (missing)"),
    ({"seed": 1.5}, "seed = 1.5"),
])
def test_from_manifest_refuses_with_one_line_and_exit_2(tmp_path, good, change, needle):
    from arranger.cli.main import app

    path = _write(tmp_path, {**good, **change})
    out = tmp_path / "o"
    result = runner.invoke(app, ["generate", "--from-manifest", path, "--out", str(out),
                                 "--no-render"])
    lines = [x for x in result.output.splitlines() if x.strip()]
    assert result.exit_code == 2 and len(lines) == 1 and needle in lines[0], result.output
    assert not out.exists()
