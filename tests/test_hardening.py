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
from arranger.compose.coordinator import Forced, Plan, compose
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
    assert not list(out.glob(".*tmp*"))  # no temporary files left behind... at most one epoch
    run = subprocess.run(_train_cmd(corpus, out, "--resume", "--epochs", str(done + 1)),
                         env=_env(tmp_path), cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
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
    plan = Plan(bars=8)
    torch.set_num_threads(1)
    one = compose(models, plan, seed=9)[0]
    torch.set_num_threads(2)
    two = compose(models, plan, seed=9)[0]
    assert one.equals(two)
    assert midi_io.midi_bytes(midi_io.to_midi(one)) == midi_io.midi_bytes(midi_io.to_midi(two))


@pytest.mark.parametrize("batch", [1, 16])
def test_generation_is_the_same_on_one_or_two_blas_threads(batch):
    """Generation shares its products out over two BLAS threads: no sum changes order."""
    from arranger.compose.coordinator import ending_forced, generate_tokens, generation_mode
    from arranger.weights import load_models

    models, plan = load_models(), Plan(bars=4)  # shipped sizes: products big enough to thread
    runs = []
    for threads in (1, 2):
        forced = Forced.free(batch, plan.bars)
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
