"""The command line: help that teaches, one-line errors with exit code 2, nothing half-written."""

import pytest
from typer.testing import CliRunner

from arranger.cli import app
from tests.helpers import save_models, tiny_models

runner = CliRunner()


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    return save_models(tiny_models(), tmp_path_factory.mktemp("w"))


@pytest.mark.parametrize("cmd", [[], ["generate"], ["regenerate"], ["render"], ["train"],
                                 ["presets"]])
def test_help(cmd):
    result = runner.invoke(app, [*cmd, "--help"])
    assert result.exit_code == 0 and "Usage" in result.output


def test_regenerate_help_says_what_moves_with_the_chords():
    output = runner.invoke(app, ["regenerate", "--help"], env={"COLUMNS": "300"}).output
    text = " ".join(output.split())
    assert "bass" in text and "follows the chords" in text


def test_presets_lists_at_least_six():
    result = runner.invoke(app, ["presets"])
    assert result.exit_code == 0
    assert sum(1 for line in result.output.splitlines() if line.strip()) >= 6


def test_presets_show_prints_resolved_toml():
    result = runner.invoke(app, ["presets", "show", "worn-tape"])
    assert result.exit_code == 0 and 'name = "worn-tape"' in result.output
    assert "[layers.melody]" in result.output  # inherited table is resolved


def test_generate_midi_only(tmp_path, weights):
    out = tmp_path / "song"
    result = runner.invoke(app, ["generate", "--seed", "3", "--bars", "4", "--out", str(out),
                                 "--weights", str(weights), "--no-render"])
    assert result.exit_code == 0, result.output
    assert {p.name for p in out.iterdir()} >= {"score.mid", "manifest.json", "pianoroll.png",
                                                "score.musicxml"}


@pytest.mark.parametrize("args,needle", [
    (["generate", "--preset", "nope"], "preset 'nope' not found"),
    (["generate", "--bars", "10000"], "--bars 10000"),
    (["generate", "--variations", "0"], "--variations 0"),
    (["regenerate", "missing-dir", "--layer", "drums"], "no manifest"),
    (["render", "missing.mid"], "missing.mid"),
    (["train", "no-such-folder"], "no-such-folder"),
])
def test_bad_input_is_one_line_exit_2_and_writes_nothing(tmp_path, monkeypatch, weights, args,
                                                         needle):
    monkeypatch.chdir(tmp_path)
    extra = ["--weights", str(weights)] if args[0] == "generate" else []
    result = runner.invoke(app, [*args, *extra, "--out", str(tmp_path / "o")]
                           if args[0] not in ("regenerate",) else args)
    assert result.exit_code == 2, result.output
    lines = [x for x in result.output.splitlines() if x.strip()]
    assert len(lines) == 1 and needle in lines[0]
    assert not (tmp_path / "o").exists()
