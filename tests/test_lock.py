"""One run at a time per song folder: arranger.atomic.song_lock and two real `lofi regenerate`s."""

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from arranger.atomic import FolderBusyError, song_lock
from arranger.manifest import Manifest

ROOT = Path(__file__).resolve().parents[1]
HOLD = ("import sys, time; from arranger.atomic import song_lock\n"
        "with song_lock(sys.argv[1]):\n    print('held', flush=True); time.sleep(60)\n")


def _holder(folder: Path) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(folder)], cwd=ROOT,
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "held"
    return proc


def test_threads_take_turns_and_no_update_is_lost(tmp_path):
    counter = tmp_path / "count"
    counter.write_text("0")

    def bump():
        with song_lock(tmp_path / "song", timeout_s=30):
            n = int(counter.read_text())
            time.sleep(0.01)  # a read-modify-write that would lose updates unlocked
            counter.write_text(str(n + 1))

    threads = [threading.Thread(target=bump) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert counter.read_text() == "8"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["count"]  # lock file removed


def test_another_process_holding_it_makes_us_wait_then_refuse(tmp_path):
    proc = _holder(tmp_path / "song")
    try:
        start = time.monotonic()
        with pytest.raises(FolderBusyError) as caught, song_lock(tmp_path / "song",
                                                                 timeout_s=0.5):
            pass
        assert 0.5 <= time.monotonic() - start < 5
        assert caught.value.field == "folder" and "still busy after 0.5 s" in str(caught.value)
    finally:
        proc.kill()
        proc.wait()


def test_a_killed_holder_releases_the_lock(tmp_path):
    proc = _holder(tmp_path / "song")
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert (tmp_path / ".song.lock").exists()  # left by the kill, but no longer locked
    with song_lock(tmp_path / "song", timeout_s=2):
        pass
    assert not (tmp_path / ".song.lock").exists()  # and the next run removes it


def test_the_same_thread_may_enter_twice(tmp_path):
    with song_lock(tmp_path / "song", timeout_s=1), song_lock(tmp_path / "song", timeout_s=1):
        pass
    with song_lock(tmp_path / "song", timeout_s=1):
        pass


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    from tests.helpers import save_models, tiny_models

    return save_models(tiny_models(), tmp_path_factory.mktemp("weights"))


def _lofi(*args: str) -> subprocess.Popen:
    env = os.environ | {"PYTHONPATH": str(ROOT)}
    return subprocess.Popen([sys.executable, "-m", "arranger.cli.main", *args], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_two_regenerates_at_once_both_edits_are_kept(tmp_path, weights):
    """#12.4: two `lofi regenerate` runs on one song at the same time; one edit was lost."""
    from arranger.compose.generate import generate
    from arranger.compose.reproduce import reproduce
    from arranger.compose.song_folder import Output
    from arranger.preset import load_preset

    song, midi_only = tmp_path / "song", Output(render=False, pictures=False, progress=False)
    generate(load_preset("rainy-night"), song, seed=3, bars=8, weights=weights, output=midi_only)
    holder = _holder(song)  # both start while the song is busy, so they surely overlap
    runs = [_lofi("regenerate", str(song), "--layer", layer, "--seed", seed, "--no-render")
            for layer, seed in (("drums", "11"), ("melody", "12"))]
    time.sleep(1.0)
    holder.kill()
    holder.wait()
    results = [run.communicate(timeout=300) for run in runs]
    assert [run.returncode for run in runs] == [0, 0], results
    history = Manifest.load(song).history
    assert sorted(h["layer"] for h in history) == ["drums", "melody"]
    reproduce(song / "manifest.json", tmp_path / "replayed", output=midi_only)
    assert (tmp_path / "replayed" / "score.mid").read_bytes() == (song / "score.mid").read_bytes()
