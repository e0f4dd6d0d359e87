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
    stems = {p.stem: read_audio(p)[0] for p in (tmp_path / "o" / "stems").glob("*.wav")
             if p.stem != "fx"}  # fx: the master bus's noise
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


# --- #12.10: errors and user text are printed as written, never read as markup ---------------

@pytest.mark.parametrize("args,needle", [
    (["generate", "--key", "[red]Q[/red] minor"], "--key '[red]Q[/red] minor': expected"),
    (["generate", "--tempo", "500"], "--tempo 500: expected a number in 40..200"),
])
def test_override_errors_name_the_flag_and_keep_brackets(tmp_path, weights, args, needle):
    result = runner.invoke(app, [*args, "--weights", str(weights), "--out", str(tmp_path / "o")])
    assert result.exit_code == 2, result.output
    lines = [x for x in result.output.splitlines() if x.strip()]
    assert lines == [lines[0]] and needle in lines[0], lines
    assert not (tmp_path / "o").exists()


def test_preset_error_keeps_its_brackets(tmp_path, weights):
    preset = tmp_path / "bad.toml"
    preset.write_text('inherits = "rainy-night"\n[song]\nmelody_range = [1, 2]\n')
    result = runner.invoke(app, ["generate", "--preset", str(preset), "--weights", str(weights),
                                 "--out", str(tmp_path / "o")])
    assert result.exit_code == 2
    assert "[1, 2]" in result.output and "[low, high]" in result.output, result.output


def test_input_error_of_an_option_is_worded_as_its_flag():
    from arranger.cli.common import error_line
    from arranger.errors import InputError

    flags = {"--bars", "--seed"}
    assert error_line(InputError("bars", "9-x", "A-B, e.g. 9-16"), flags) == (
        "--bars 9-x: expected A-B, e.g. 9-16")
    in_file = InputError("song.bars", 1, "an integer in 2..512", where="my.toml")
    assert error_line(in_file, flags) == "my.toml: song.bars = 1: expected an integer in 2..512"
    assert error_line(InputError("weights", "x", "a folder"), flags).startswith("weights = ")


def test_regenerate_bad_bars_names_the_flag(tmp_path, weights):
    out = tmp_path / "song"
    runner.invoke(app, ["generate", "--bars", "4", "--out", str(out), "--weights", str(weights),
                        "--no-render"])
    result = runner.invoke(app, ["regenerate", str(out), "--layer", "drums", "--bars", "9-x",
                                 "--no-render"])
    assert result.exit_code == 2
    lines = [x for x in result.output.splitlines() if x.strip()]
    assert len(lines) == 1 and "--bars" in lines[0] and "9-x" in lines[0], lines


# --- #12.17 / #17.4: what a command says, and the help --------------------------------------

def test_version_is_the_package_metadata_declared_in_pyproject():
    import tomllib
    from pathlib import Path

    declared = tomllib.loads(Path("pyproject.toml").read_text())["project"]["version"]
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0 and result.output.strip() == f"lofi {declared}"


def test_generate_overrides_land_in_the_midi_and_the_summary_says_what_was_written(tmp_path,
                                                                                     weights):
    import pretty_midi

    out = tmp_path / "song"
    result = runner.invoke(app, ["generate", "--preset", "worn-tape", "--seed", "5", "--bars",
                                 "8", "--key", "D minor", "--tempo", "84", "--out", str(out),
                                 "--weights", str(weights), "--no-render"])
    assert result.exit_code == 0, result.output
    pm = pretty_midi.PrettyMIDI(str(out / "score.mid"))
    assert round(pm.get_tempo_changes()[1][0], 2) == 84.0
    assert pm.key_signature_changes[0].key_number == 2 + 12  # D minor
    facts, files = result.output.strip().splitlines()
    for part in ("worn-tape", "D minor", "84 bpm", "8 bars", "0:23", "seed 5"):
        assert part in facts, facts
    written = {p.name for p in out.iterdir()}
    assert set(files.split()[1:]) == written


def test_regenerate_says_its_seed_and_that_seed_gives_the_take_again(tmp_path, weights):
    import shutil

    out = tmp_path / "song"
    runner.invoke(app, ["generate", "--bars", "4", "--out", str(out), "--weights", str(weights),
                        "--no-render"])
    shutil.copytree(out, tmp_path / "copy")
    result = runner.invoke(app, ["regenerate", str(out), "--layer", "drums", "--no-render"])
    assert result.exit_code == 0, result.output
    seed = int(result.output.split("with seed ")[1].split()[0])
    again = runner.invoke(app, ["regenerate", str(tmp_path / "copy"), "--layer", "drums",
                                "--seed", str(seed), "--no-render"])
    assert again.exit_code == 0, again.output
    assert (out / "score.mid").read_bytes() == (tmp_path / "copy" / "score.mid").read_bytes()


def test_train_help_shows_the_training_config_defaults():
    from arranger.training.train import TrainConfig

    text = " ".join(runner.invoke(app, ["train", "--help"], env={"COLUMNS": "200"}).output.split())
    cfg = TrainConfig()
    for flag, value in (("--epochs", cfg.epochs), ("--batch-size", cfg.batch_size),
                        ("--lr", cfg.lr), ("--hidden", cfg.hidden)):
        after = text.split(flag + " ", 1)[1].split(" --", 1)[0]
        assert f"[default: {value}]" in after, (flag, after)


COMMANDS = [[], ["generate"], ["regenerate"], ["render"], ["train"], ["eval"], ["presets"],
            ["presets", "show"]]


@pytest.mark.parametrize("cmd", COMMANDS)
def test_boolean_flags_take_no_value_in_help(cmd):
    output = runner.invoke(app, [*cmd, "--help"], env={"COLUMNS": "120"}).output
    assert "<bool>" not in output and "--force <" not in output
    if cmd == ["generate"]:
        assert "--flac " in output and "--render / --no-render" in output


def _words_intact(help_text: str, output: str) -> bool:
    def norm(text: str) -> str:
        return " ".join(text.split())

    return norm(help_text) in norm(output)


@pytest.mark.parametrize("columns", ["50", "80", "133"])
@pytest.mark.parametrize("cmd", [["generate"], ["regenerate"], ["train"]])
def test_option_help_is_wrapped_between_words_at_any_width(cmd, columns):
    """No description broken or cut mid-word: every help text is in the output whole."""
    import typer.main

    command = typer.main.get_command(app).commands[cmd[0]]
    output = runner.invoke(app, [*cmd, "--help"], env={"COLUMNS": columns}).output
    for param in command.params:
        if getattr(param, "help", None):
            assert _words_intact(param.help, output), (param.name, output)


def test_summary_length_and_files_text(tmp_path):
    from arranger.cli.summary import files_text, mm_ss, song_seconds

    assert mm_ss(song_seconds(32, 72)) == "1:47" and mm_ss(59.6) == "1:00"
    for name in ("score.mid", "stems/drums.wav", "stems/bass.wav", "loop/mix.wav"):
        (tmp_path / name).parent.mkdir(exist_ok=True)
        (tmp_path / name).write_bytes(b"x")
    assert files_text(tmp_path) == "score.mid loop/mix.wav stems/{bass,drums}.wav"
