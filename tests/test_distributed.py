"""Training on several processes: DistributedDataParallel through torch's elastic launcher."""

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
from arranger.training import distributed
from arranger.training.distributed import World
from arranger.training.encoded import Job, load_job, save_job
from arranger.training.train import TrainConfig, epoch_order, per_rank_batch, prepare_layer
from tests.helpers import make_score

ROOT = Path(__file__).resolve().parents[1]
TINY = ["--layers", "melody", "--epochs", "2", "--hidden", "16", "--batch-size", "8",
        "--device", "cpu", "--workers", "1", "--threads", "1"]


def _corpus(folder: Path, n: int = 16) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        midi_io.write_midi(folder / f"song{i:02d}.mid", make_score(bars=8, seed=i, key="G major"))
    return folder


def _env(tmp_path: Path) -> dict:
    return os.environ | {"LOFI_CACHE": str(tmp_path / "cache"), "PYTHONPATH": str(ROOT)}


def _train(corpus: Path, out: Path, tmp_path: Path, *extra: str, **kwargs):
    cmd = [sys.executable, "-m", "arranger.cli", "train", str(corpus), "--out", str(out), *TINY,
           *extra]
    return subprocess.run(cmd, env=_env(tmp_path), cwd=ROOT, capture_output=True, text=True,
                          timeout=kwargs.get("timeout", 120))


def _card(out: Path) -> dict:
    return json.loads((out / "model_card.json").read_text())["melody"]


def _in_process(corpus: Path, out: Path, **extra) -> dict:
    from arranger.training.run import run_training

    overrides = {"epochs": 2, "hidden": 16, "batch_size": 8, "threads": 1} | extra
    return run_training([corpus], out, layers="melody", device="cpu", workers=1,
                        overrides=overrides, resume="epochs" in extra)


def test_two_processes_train_like_one_and_only_rank_0_writes(tmp_path, monkeypatch):
    monkeypatch.setenv("LOFI_CACHE", str(tmp_path / "cache"))
    corpus = _corpus(tmp_path / "corpus")
    two = _train(corpus, tmp_path / "two", tmp_path, "--nproc", "2")
    assert two.returncode == 0, two.stderr[-2000:]
    _in_process(corpus, tmp_path / "one")
    c2, c1 = _card(tmp_path / "two"), _card(tmp_path / "one")
    assert c2["distributed"] == {"world_size": 2, "backend": "gloo", "devices": "2 x cpu",
                                 "per_rank_batch": 4, "global_batch": 8}
    assert c1["distributed"]["world_size"] == 1 and c1["distributed"]["per_rank_batch"] == 8
    # Same global batches in the same order: held-out bits/step agree within noise (dropout).
    assert abs(c2["val_bits_per_step"] - c1["val_bits_per_step"]) < 0.1, (c1, c2)
    assert c2["train_tokens_per_s"] > 0 and len(c2["history"]) == 2
    assert two.stderr.count("melody: ") == 2  # one announcement and one result line: rank 0 only
    assert sorted(p.name for p in (tmp_path / "two").glob(".*")) == []  # no temporary leftovers
    _in_process(corpus, tmp_path / "two", epochs=3)  # --resume with another number of processes
    assert [h["epoch"] for h in _card(tmp_path / "two")["history"]] == [1, 2, 3]


def _children(pid: int) -> list[int]:
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    return [int(x) for x in text.split()]


@pytest.mark.slow
def test_a_killed_worker_fails_the_run_cleanly(tmp_path):
    corpus = _corpus(tmp_path / "corpus")
    out = tmp_path / "w"
    cmd = [sys.executable, "-m", "arranger.cli", "train", str(corpus), "--out", str(out), *TINY,
           "--nproc", "2", "--epochs", "500"]
    proc = subprocess.Popen(cmd, env=_env(tmp_path), cwd=ROOT, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline and not (out / "melody.ckpt.pt").exists():
        time.sleep(0.2)
    workers = _children(proc.pid)  # the launcher's children are the two workers
    assert len(workers) == 2 and (out / "melody.ckpt.pt").exists()
    os.kill(workers[1], signal.SIGKILL)
    started = time.monotonic()
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 1 and time.monotonic() - started < 60  # no hung peer
    lines = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and "failed (killed by SIGKILL)" in lines[0] and "--resume" in lines[0]
    assert "Traceback" not in err
    assert all(not Path(f"/proc/{pid}").exists() for pid in workers)
    torch.load(out / "melody.ckpt.pt", weights_only=True)  # the last epoch's checkpoint is whole


def test_epoch_shards_split_one_permutation_evenly():
    cfg = TrainConfig(seed=3)
    whole = epoch_order(10, cfg, 5, World())
    shards = [epoch_order(10, cfg, 5, World(rank=r, size=3)) for r in range(3)]
    assert sorted(whole.tolist()) == list(range(10))
    assert {len(s) for s in shards} == {4}  # padded: every worker takes as many steps
    assert set(torch.cat(shards).tolist()) == set(range(10))
    assert not torch.equal(whole, epoch_order(10, cfg, 6, World()))  # reshuffled every epoch
    assert per_rank_batch(TrainConfig(batch_size=64), World(size=3)) == 22


def test_world_is_read_from_the_launcher_environment(monkeypatch):
    for name in ("WORLD_SIZE", "TORCHELASTIC_RUN_ID"):
        monkeypatch.delenv(name, raising=False)
    assert distributed.current() == distributed.SOLO
    env = {"RANK": "3", "WORLD_SIZE": "4", "LOCAL_RANK": "1", "LOCAL_WORLD_SIZE": "2",
           "TORCHELASTIC_RUN_ID": "abc", "TORCHELASTIC_RESTART_COUNT": "1"}
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    w = distributed.current()
    assert (w.rank, w.size, w.local_rank, w.local_size, w.run_id, w.restarts) == (
        3, 4, 1, 2, "abc", 1)
    assert not w.main and not w.local_main


def test_the_encoded_job_is_memory_mapped_and_round_trips(tmp_path):
    from arranger.corpus.piece import Song

    songs = [Song(f"s{i}.mid", make_score(bars=8, seed=i), frozenset({"melody", "chords"}))
             for i in range(8)]
    cfg = TrainConfig(seq_len=32, hidden=16)
    split = prepare_layer(songs, "melody", cfg)
    save_job(tmp_path / "job", Job({"melody": split}, cfg, tmp_path / "out", "cpu",
                                   extras={"melody": {"include": ["*"]}}))
    job = load_job(tmp_path / "job")
    mapped = job.splits["melody"]
    assert mapped.vocab == split.vocab and mapped.config == split.config
    for side in ("train", "val"):
        for name in ("prev", "cond", "multi", "target"):
            a, b = getattr(getattr(mapped, side), name), getattr(getattr(split, side), name)
            assert torch.equal(a, b)
    base = np.load(tmp_path / "job" / "melody.train.prev.npy", mmap_mode="c")
    assert isinstance(base, np.memmap)  # what every worker maps instead of parsing the corpus
    assert job.cfg == cfg and job.extras == {"melody": {"include": ["*"]}}
