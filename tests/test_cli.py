"""The command line: help that teaches, one-line errors with exit code 2, nothing half-written."""

import numpy as np
import pytest
from typer.testing import CliRunner

from arranger.cli.main import app
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
    import tomllib

    from arranger.preset import from_dict, load_preset

    result = runner.invoke(app, ["presets", "show", "worn-tape"])
    assert result.exit_code == 0 and 'name = "worn-tape"' in result.output
    assert "[layers.melody]" in result.output  # inherited table is resolved
    shown = from_dict(tomllib.loads(result.output), "shown")  # valid TOML, a usable preset
    assert shown.to_dict() == load_preset("worn-tape").to_dict()


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


def test_render_any_multitrack_midi(tmp_path):
    import pretty_midi

    from arranger.audio.files import read_audio

    pm = pretty_midi.PrettyMIDI(initial_tempo=100)
    tracks = [("Rhodes", 4, False, 60), ("Lead synth", 81, False, 72), ("Fretless", 35, False, 36),
              ("Kit", 0, True, 38), ("Second rhodes", 5, False, 64)]
    for name, program, drum, pitch in tracks:
        inst = pretty_midi.Instrument(program, is_drum=drum, name=name)
        inst.notes = [pretty_midi.Note(90, pitch, t * 0.6, t * 0.6 + 0.5) for t in range(6)]
        pm.instruments.append(inst)
    src = tmp_path / "daw.mid"
    pm.write(str(src))
    result = runner.invoke(app, ["render", str(src), "--out", str(tmp_path / "o")])
    assert result.exit_code == 0, result.output
    stems = {p.stem: read_audio(p)[0] for p in (tmp_path / "o" / "stems").iterdir()}
    assert set(stems) == {"chords", "melody", "bass", "drums"}
    assert len({s.shape for s in stems.values()}) == 1
    for audio in stems.values():
        rms_db = 10 * np.log10(np.mean(audio.astype(np.float64) ** 2) + 1e-20)
        assert rms_db > -50


@pytest.mark.parametrize("text,needle", [
    ('inherits = "rainy-night"\n[render]\nsoundfont = "/nope/missing.sf2"', "missing.sf2"),
    ('inherits = "rainy-night"\n[layers.melody]\nprogram = 200', "layers.melody.program"),
    ('inherits = "rainy-night"\n[layers.drums]\neffects = [{ type = "Flanger" }]', "Flanger"),
    ('inherits = "rainy-night"\n[master]\ntarget_lufs = "loud"', "target_lufs"),
])
def test_malformed_preset_exits_2_before_writing(tmp_path, weights, text, needle):
    preset = tmp_path / "bad.toml"
    preset.write_text(text)
    result = runner.invoke(app, ["generate", "--preset", str(preset), "--weights", str(weights),
                                 "--bars", "4", "--out", str(tmp_path / "o")])
    assert result.exit_code == 2, result.output
    lines = [x for x in result.output.splitlines() if x.strip()]
    assert len(lines) == 1 and needle in lines[0], lines
    assert not (tmp_path / "o").exists()


def test_train_include_filters_songs_by_path(tmp_path, monkeypatch):
    from arranger import midi_io
    from tests.helpers import make_score

    monkeypatch.setenv("LOFI_CACHE", str(tmp_path / "cache"))
    for name in ("hiphop_1", "hiphop_2", "rock_1", "hiphop_3"):
        midi_io.write_midi(tmp_path / "c" / f"{name}.mid", make_score(bars=8, seed=len(name)))
    result = runner.invoke(app, ["train", str(tmp_path / "c"), "--out", str(tmp_path / "w"),
                                 "--layers", "drums", "--epochs", "1", "--hidden", "16",
                                 "--include", "*hiphop*", "--workers", "1"])
    assert result.exit_code == 0, result.output
    card = (tmp_path / "w" / "model_card.json").read_text()
    assert '"user": 3' in card  # three songs of the four
