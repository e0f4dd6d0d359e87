"""Hardening: killed training resumes, weights are checked, generation is thread-independent."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from arranger import midi_io
from arranger.compose.coordinator import compose
from arranger.compose.plan import Forced, Plan
from arranger.song_settings import SongSettings
from tests.helpers import make_score, save_models, tiny_models
from tracks.model import WeightsError, load_weights, save_weights

ROOT = Path(__file__).resolve().parents[1]


def _midi_folder(folder: Path, n: int = 30) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        midi_io.write_midi(folder / f"song{i:02d}.mid", make_score(bars=8, seed=i, key="G major"))
    (folder / "broken.mid").write_bytes(b"MThd\x00\x00\x00\x06\x00\x01garbage")
    return folder


def _train_cmd(corpus: Path, out: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "arranger.cli.main", "train", str(corpus), "--out", str(out),
            "--layers", "melody", "--epochs", "40", "--hidden", "48", "--batch-size", "4",
            "--device", "cpu", "--workers", "1", *extra]


def _env(tmp_path):
    return os.environ | {"LOFI_CACHE": str(tmp_path / "cache"), "PYTHONPATH": str(ROOT)}


def test_sigkill_mid_epoch_then_resume_loses_at_most_one_epoch(tmp_path):
    corpus, out = _midi_folder(tmp_path / "corpus"), tmp_path / "w"
    proc = subprocess.Popen(_train_cmd(corpus, out, "--epochs", "400", "--max-minutes", "1"),
                            env=_env(tmp_path), cwd=ROOT, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)  # still training when killed
    ckpt = out / "melody.ckpt.pt"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not _epochs(ckpt) >= 2:
        time.sleep(0.2)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done = _epochs(ckpt)
    assert done >= 2, "training never checkpointed"
    torch.load(ckpt, weights_only=True)  # never truncated
    run = subprocess.run(_train_cmd(corpus, out, "--resume", "--epochs", str(done + 1)),
                         env=_env(tmp_path), cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    assert not list(out.glob(".*tmp*"))  # what the kill left mid-write is cleaned by the resume
    card = json.loads((out / "model_card.json").read_text())["melody"]
    assert [h["epoch"] for h in card["history"]][-1] == done + 1
    assert card["history"][0]["epoch"] == 1  # history kept from before the kill
    assert "skipped" in run.stderr and "broken.mid" not in run.stdout


def _epochs(ckpt: Path) -> int:
    try:
        return int(torch.load(ckpt, weights_only=True)["state"]["epoch"])
    except Exception:
        return 0


def test_generation_does_not_depend_on_thread_count():
    models = tiny_models(hidden=64)
    plan = Plan(SongSettings(bars=8))
    torch.set_num_threads(1)
    one = compose(models, plan, seed=9)[0]
    torch.set_num_threads(2)
    two = compose(models, plan, seed=9)[0]
    assert one.equals(two)
    assert midi_io.midi_bytes(midi_io.to_midi(one)) == midi_io.midi_bytes(midi_io.to_midi(two))


@pytest.mark.parametrize("batch", [1, 16])
def test_generation_is_the_same_on_one_or_two_blas_threads(batch):
    """Generation shares its products out over two BLAS threads: no sum changes order."""
    from arranger.compose.coordinator import ending_forced, generate_tokens
    from arranger.compose.threads import generation_mode
    from arranger.weights import load_models

    models, plan = load_models(), Plan(SongSettings(bars=4))  # shipped sizes: big products
    runs = []
    for threads in (1, 2):
        forced = Forced.free(batch, plan.song.bars)
        ending_forced(forced, plan, models)
        with generation_mode(blas_threads=threads):
            runs.append(generate_tokens(models, plan, forced, seed=3))
    for layer in ("chords", "melody", "drums"):
        assert np.array_equal(getattr(runs[0], layer), getattr(runs[1], layer))
        np.testing.assert_array_equal(runs[0].forced_logp[layer], runs[1].forced_logp[layer])


def test_weights_with_wrong_shapes_name_the_mismatch(tmp_path):
    models = tiny_models()
    w = models.melody
    save_weights(tmp_path / "melody.safetensors", w)
    from safetensors import safe_open
    from safetensors.torch import load_file, save_file

    tensors = load_file(tmp_path / "melody.safetensors")
    with safe_open(tmp_path / "melody.safetensors", "pt") as f:
        meta = f.metadata()
    tensors["head.weight"] = torch.zeros(3, 16)
    save_file(tensors, tmp_path / "bad.safetensors", metadata=meta)
    with pytest.raises(WeightsError, match=r"head.weight has shape \(3, 16\)"):
        load_weights(tmp_path / "bad.safetensors", "melody")


def test_weights_with_wrong_vocabulary_are_refused(tmp_path):
    w = tiny_models().chords
    w.vocab = w.vocab[:-1]
    save_weights(tmp_path / "chords.safetensors", w)
    with pytest.raises(WeightsError, match="vocabulary has 205 tokens"):
        load_weights(tmp_path / "chords.safetensors", "chords")


def test_missing_weights_folder_is_a_clear_error(tmp_path):
    from arranger.weights import load_models

    save_models(tiny_models(), tmp_path)
    (tmp_path / "drums.safetensors").unlink()
    with pytest.raises(WeightsError, match="missing drums weights"):
        load_models(tmp_path)


def test_ctrl_c_saves_a_checkpoint_and_exits_cleanly(tmp_path):
    corpus, out = _midi_folder(tmp_path / "corpus", n=12), tmp_path / "w"
    # A tiny model trains 40 epochs in ~2 s: ask for many more (the last --epochs counts), and
    # interrupt as soon as the first checkpoint exists (written atomically after epoch 1).
    cmd = _train_cmd(corpus, out, "--epochs", "400", "--max-minutes", "1")
    # A runner started in the background (`cmd &`) ignores SIGINT, and so would the child,
    # which then never sees Ctrl-C: give it the default handling a terminal would.
    proc = subprocess.Popen(cmd, env=_env(tmp_path), cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    ckpt = out / "melody.ckpt.pt"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not ckpt.exists():
        time.sleep(0.02)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "interrupted" in err and "Traceback" not in err
    assert _epochs(ckpt) >= 1 and (out / "melody.safetensors").exists()


# --- killed and failing song runs (generate / regenerate) -------------------------------------


@pytest.fixture(scope="module")
def tiny_weights(tmp_path_factory):
    return save_models(tiny_models(), tmp_path_factory.mktemp("tiny-weights"))


def _lofi(tmp_path, *args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "arranger.cli.main", *args], cwd=ROOT,
                            env=_env(tmp_path), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)


def _alive_children(pid: int) -> list[int]:
    """Live (not zombie) processes forked by ``pid`` (same command line: not an ldconfig...)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            same = (stat.parent / "cmdline").read_bytes() == Path(f"/proc/{pid}/cmdline"
                                                                   ).read_bytes()
        except OSError:
            continue
        if int(fields[1]) == pid and fields[0] != "Z" and same:
            found.append(int(stat.parent.name))
    return found


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def _wait_for(condition, timeout: float = 120.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.01)
    return False


def _staging(parent: Path) -> list[Path]:
    return sorted(parent.glob(".*.staging"))


def _kill_at(proc: subprocess.Popen, parent: Path, point: str, sig: int) -> list[int]:
    """Send ``sig`` once the run reaches ``point``; returns the run's children at that moment."""
    if point == "staging":
        reached = _wait_for(lambda: bool(_staging(parent)) or proc.poll() is not None)
    else:  # "drawing": the forked picture process exists (waiting for the stems, or drawing)
        reached = _wait_for(lambda: bool(_alive_children(proc.pid)) or proc.poll() is not None)
    assert reached and proc.poll() is None, "the run ended before it could be killed"
    children = _alive_children(proc.pid)
    proc.send_signal(sig)
    _, proc.err_text = proc.communicate(timeout=60)
    return children


@pytest.mark.parametrize("sig,point,render", [
    (signal.SIGKILL, "staging", False), (signal.SIGKILL, "drawing", False),
    (signal.SIGKILL, "drawing", True), (signal.SIGTERM, "drawing", False)])
def test_killed_generate_leaves_no_process_and_no_junk(tmp_path, tiny_weights, sig, point,
                                                       render):
    """#12.7: the picture process outlived a SIGKILL (blocked forever while the stems
    rendered) and a hidden staging folder stayed; SIGTERM left one too."""
    from arranger.compose.generate import generate
    from arranger.compose.song_folder import Output
    from arranger.preset import load_preset

    parent = tmp_path / "songs"
    parent.mkdir()
    args = ["generate", "--seed", "1", "--bars", "4" if render else "8", "--weights",
            str(tiny_weights), "--out", str(parent / "song")]
    proc = _lofi(tmp_path, *args, *([] if render else ["--no-render"]))
    children = _kill_at(proc, parent, point, sig)
    assert point == "staging" or children, "no picture process was running"
    assert _wait_for(lambda: not any(_alive(c) for c in children), timeout=10), \
        "the picture process outlived its parent"
    if sig == signal.SIGTERM:  # handled like Ctrl-C: cleaned up at once, one line
        assert proc.returncode == 130, proc.err_text
        assert "interrupted" in proc.err_text and "Traceback" not in proc.err_text
        assert sorted(p.name for p in parent.iterdir()) == []
    generate(load_preset("rainy-night"), parent / "song", seed=1, bars=4, weights=tiny_weights,
             output=Output(render=False, pictures=False, progress=False), force=True)
    assert sorted(p.name for p in parent.iterdir()) == ["song"]  # the next run cleaned up


def test_killed_regenerate_keeps_the_song_and_the_next_run_cleans_up(tmp_path, tiny_weights):
    from arranger.compose.generate import generate
    from arranger.compose.regenerate import regenerate
    from arranger.compose.song_folder import Output
    from arranger.preset import load_preset

    parent, midi_only = tmp_path / "songs", Output(render=False, pictures=False, progress=False)
    song = parent / "song"
    generate(load_preset("rainy-night"), song, seed=2, bars=8, weights=tiny_weights,
             output=midi_only)
    before = {p.name: p.read_bytes() for p in song.iterdir()}
    proc = _lofi(tmp_path, "regenerate", str(song), "--layer", "drums", "--no-render")
    _kill_at(proc, parent, "staging", signal.SIGKILL)
    assert {p.name: p.read_bytes() for p in song.iterdir()} == before
    regenerate(song, "drums", seed=4, output=midi_only)
    assert sorted(p.name for p in parent.iterdir()) == ["song"]


def _one_line(result) -> str:
    lines = [x for x in result.output.splitlines() if x.strip()]
    assert result.exit_code == 2 and len(lines) == 1, result.output
    assert "Traceback" not in result.output
    return lines[0]


def test_full_disk_is_one_line_and_the_song_stays_as_it_was(tmp_path, tiny_weights):
    """#12.8: a full disk gave a traceback."""
    from typer.testing import CliRunner

    from arranger.cli.main import app
    from arranger.compose.generate import generate
    from arranger.compose.song_folder import Output
    from arranger.preset import load_preset
    from tests.disks import fill, small_disk

    with small_disk(tmp_path / "disk") as disk:
        song = disk / "song"
        generate(load_preset("rainy-night"), song, seed=2, bars=8, weights=tiny_weights,
                 output=Output(render=False, pictures=False, progress=False))
        before = {p.name: p.read_bytes() for p in song.iterdir()}
        fill(disk)
        runner = CliRunner()
        line = _one_line(runner.invoke(app, ["regenerate", str(song), "--layer", "drums",
                                             "--no-render"]))
        assert "No space left on device" in line and str(disk) in line
        assert {p.name: p.read_bytes() for p in song.iterdir()} == before
        line = _one_line(runner.invoke(app, ["generate", "--bars", "4", "--weights",
                                             str(tiny_weights), "--no-render", "--out",
                                             str(disk / "new")]))
        assert "No space left on device" in line
        assert sorted(p.name for p in disk.iterdir()) == ["filler", "song"]


def test_read_only_folder_is_one_line_before_any_work(tmp_path, tiny_weights, monkeypatch):
    from typer.testing import CliRunner

    from arranger.cli.main import app
    from arranger.compose import generate as generate_module
    from arranger.compose.song_folder import Output
    from arranger.preset import load_preset
    from tests.disks import make_read_only, small_disk

    with small_disk(tmp_path / "disk") as disk:
        song = disk / "song"
        generate_module.generate(load_preset("rainy-night"), song, seed=2, bars=8,
                                 weights=tiny_weights,
                                 output=Output(render=False, pictures=False, progress=False))
        before = {p.name: p.read_bytes() for p in song.iterdir()}
        make_read_only(disk)
        monkeypatch.setattr(generate_module, "compose", lambda *a, **k: pytest.fail("composed"))
        runner = CliRunner()
        line = _one_line(runner.invoke(app, ["regenerate", str(song), "--layer", "drums",
                                             "--no-render"]))
        assert "Read-only file system" in line
        line = _one_line(runner.invoke(app, ["generate", "--weights", str(tiny_weights),
                                             "--no-render", "--out", str(disk / "new")]))
        assert "read-only" in line and str(disk) in line
        assert {p.name: p.read_bytes() for p in song.iterdir()} == before


# --- training: full and read-only disks, bad checkpoints (#12.8), layers a corpus lacks (#12.3) --

def _fake_songs(monkeypatch, layers=frozenset({"chords", "melody", "bass"}), n=12):
    from arranger.corpus import load
    from arranger.corpus.load import CorpusReport
    from arranger.corpus.piece import Song

    songs = [Song(f"/c/song{i:02d}.mid", make_score(bars=8, seed=i), layers) for i in range(n)]
    monkeypatch.setattr(load, "load_corpus", lambda *a, **k: (songs, CorpusReport()))
    return songs


def _train_args(tmp_path, out, *extra):
    return ["train", str(tmp_path), "--out", str(out), "--layers", "melody", "--epochs", "1",
            "--hidden", "16", "--batch-size", "8", "--device", "cpu", *extra]


def _error_line(result, code=2) -> str:
    errors = [x for x in result.output.splitlines() if x.startswith("error:")]
    assert result.exit_code == code and len(errors) == 1, result.output
    assert "Traceback" not in result.output
    return errors[0]


def test_train_to_a_full_or_read_only_disk_is_one_line(tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from arranger.cli.main import app
    from tests.disks import fill, make_read_only, small_disk

    _fake_songs(monkeypatch)
    runner = CliRunner()
    with small_disk(tmp_path / "ro") as ro:
        make_read_only(ro)
        line = _error_line(runner.invoke(app, _train_args(tmp_path, ro / "w")))
        assert "--out" in line and "can be written to" in line
    with small_disk(tmp_path / "disk", size_kb=16384) as disk:  # + copied shipped models
        out = disk / "w"
        assert runner.invoke(app, _train_args(tmp_path, out)).exit_code == 0
        before = {p.name: p.read_bytes() for p in out.iterdir()}
        fill(disk)
        line = _error_line(runner.invoke(app, _train_args(tmp_path, out, "--resume", "--epochs",
                                                          "3")))
        assert "No space left on device" in line
        assert {p.name: p.read_bytes() for p in out.iterdir()} == before


def test_resume_from_a_truncated_checkpoint_is_one_line(tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from arranger.cli.main import app

    _fake_songs(monkeypatch)
    runner, out = CliRunner(), tmp_path / "w"
    assert runner.invoke(app, _train_args(tmp_path, out)).exit_code == 0
    ckpt = out / "melody.ckpt.pt"
    ckpt.write_bytes(ckpt.read_bytes()[:1000])
    line = _error_line(runner.invoke(app, _train_args(tmp_path, out, "--resume", "--epochs", "2")))
    assert "--resume" in line and "cannot be read" in line and str(ckpt) in line
    assert len(ckpt.read_bytes()) == 1000  # left for the user to inspect


def test_train_refuses_a_layer_the_corpus_lacks_at_once(tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from arranger.cli.main import app
    from arranger.training import train

    _fake_songs(monkeypatch)
    monkeypatch.setattr(train, "train_layer", lambda *a, **k: pytest.fail("trained"))
    args = _train_args(tmp_path, tmp_path / "w")
    args[args.index("melody")] = "drums"
    line = _error_line(CliRunner().invoke(app, args))
    assert line.startswith("error: --layers drums: expected layers some song of the corpus holds")


def test_eval_of_a_corpus_without_drums_scores_the_other_layers():
    from arranger.corpus.piece import Song
    from arranger.evaluation.evaluate import evaluate_songs
    from arranger.evaluation.report import format_table

    songs = [Song(f"s{i}.mid", make_score(bars=8, seed=i), frozenset({"chords", "melody"}))
             for i in range(12)]
    result = evaluate_songs(songs, songs, tiny_models(), n=2, bars=8, val_fraction=0.4)
    bits = result["bits_per_step"]
    assert bits["drums"]["lstm"] is None and "holds a drums layer" in bits["drums"]["note"]
    assert bits["melody"]["markov"] is not None and bits["chords"]["tokens"] > 0
    assert "drums" in format_table(result)
