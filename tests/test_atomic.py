"""Atomic folders: the old or the new folder is visible at every moment, junk of killed runs goes,
an unwritable folder is one line naming it, SIGTERM is handled like Ctrl-C."""

import errno
import os
import signal
import subprocess
import sys
import time

import pytest

from arranger import atomic
from arranger.atomic import (
    FolderExistsError,
    check_output,
    clean_stale,
    interrupt_on_sigterm,
    staged_dir,
)
from arranger.errors import InputError
from tests import disks

read_only_dir = disks.read_only_dir  # a fixture


def _folder(path, text):
    path.mkdir(parents=True, exist_ok=True)
    (path / "score.mid").write_text(text)
    return path


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_swap_is_one_step_that_never_leaves_the_folder_missing(tmp_path, monkeypatch):
    """A kill between the two renames of the old swap left no song folder at all."""
    target = _folder(tmp_path / "song", "old")
    renames = []

    def rename_then_die(*args):
        renames.append(args)
        raise KeyboardInterrupt  # the process dies right here

    monkeypatch.setattr(os, "rename", rename_then_die)
    monkeypatch.setattr(os, "replace", rename_then_die)
    with staged_dir(target, force=True) as stage:
        (stage / "score.mid").write_text("new")
    assert (target / "score.mid").read_text() == "new" and renames == []
    assert sorted(p.name for p in tmp_path.iterdir()) == ["song"]


def test_fallback_swap_killed_between_renames_is_repaired_by_the_next_run(tmp_path,
                                                                           monkeypatch):
    target = _folder(tmp_path / "song", "old")
    monkeypatch.setattr(atomic, "_exchange", lambda a, b: False)  # no RENAME_EXCHANGE here
    real_rename, calls = os.rename, []

    def rename(a, b):
        calls.append(b)
        if len(calls) == 2:
            raise KeyboardInterrupt  # killed after moving the old folder aside
        real_rename(a, b)

    monkeypatch.setattr(os, "rename", rename)
    monkeypatch.setattr(atomic, "_alive", lambda pid: False)  # as if this process had died
    with pytest.raises(KeyboardInterrupt), staged_dir(target, force=True) as stage:
        (stage / "score.mid").write_text("new")
    assert not target.exists()
    monkeypatch.setattr(os, "rename", real_rename)
    clean_stale(target)
    assert (target / "score.mid").read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["song"]


def test_stale_staging_of_dead_processes_is_removed_live_ones_kept(tmp_path):
    target = _folder(tmp_path / "song", "old")
    dead = _folder(tmp_path / f".song.{_dead_pid()}.abc123.staging", "half")
    live = _folder(tmp_path / f".song.{os.getppid()}.def456.staging", "busy")
    other = _folder(tmp_path / f".song.5.{_dead_pid()}.x1.staging", "of 'song.5'")
    with staged_dir(target, force=True) as stage:
        (stage / "score.mid").write_text("new")
    assert not dead.exists() and live.exists() and other.exists()
    assert (target / "score.mid").read_text() == "new"


def test_staging_folder_names_carry_the_owner_pid(tmp_path):
    with staged_dir(tmp_path / "song") as stage:
        assert stage.name.startswith(f".song.{os.getpid()}.") and stage.name.endswith(".staging")


def test_existing_folder_is_refused_naming_the_field(tmp_path):
    target = _folder(tmp_path / "song", "old")
    with pytest.raises(FolderExistsError) as caught:
        check_output(target)
    assert isinstance(caught.value, FileExistsError) and caught.value.field == "out"
    check_output(target, force=True)
    check_output(tmp_path / "new" / "deeper")  # a new folder: fine, nothing created
    assert not (tmp_path / "new").exists()


@pytest.mark.parametrize("code", [errno.ENOSPC, errno.EROFS, errno.EACCES])
def test_unwritable_folder_is_one_input_error_and_the_old_contents_stay(tmp_path, code):
    target = _folder(tmp_path / "song", "old")
    with pytest.raises(InputError) as caught, staged_dir(target, keep=True,
                                                           field="folder") as stage:
        (stage / "score.mid").write_text("half")
        raise OSError(code, os.strerror(code), str(stage / "stems"))
    assert caught.value.field == "folder" and os.strerror(code) in str(caught.value)
    assert str(caught.value).startswith(f"{tmp_path}: folder = 'song': expected ")
    assert "\n" not in str(caught.value)
    assert (target / "score.mid").read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["song"]


def test_other_os_errors_are_not_disguised(tmp_path):
    with pytest.raises(FileNotFoundError), staged_dir(tmp_path / "song"):
        raise FileNotFoundError(errno.ENOENT, "no such stem", "stems/x.wav")


def test_read_only_parent_is_refused_before_any_work(tmp_path, read_only_dir):
    parent = read_only_dir(tmp_path / "ro")
    with pytest.raises(InputError, match="read-only or not yours"):
        check_output(parent / "song")


def test_sigterm_raises_keyboard_interrupt_inside_and_is_restored_after():
    before = signal.getsignal(signal.SIGTERM)
    with pytest.raises(KeyboardInterrupt), interrupt_on_sigterm():
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(5)  # interrupted at once by the handler
    assert signal.getsignal(signal.SIGTERM) == before


def test_in_place_copy_keeps_links_as_links_and_never_follows_them(tmp_path):
    target = _folder(tmp_path / "song", "old")
    (target / "stems").mkdir()
    (target / "stems" / "drums.wav").write_bytes(b"RIFF")
    (target / "up").symlink_to("..")  # followed, this would copy without end
    with staged_dir(target, keep=True) as stage:
        assert (stage / "up").is_symlink() and os.readlink(stage / "up") == ".."
        assert (stage / "stems" / "drums.wav").read_bytes() == b"RIFF"
        (stage / "score.mid").write_text("new")
    assert (target / "score.mid").read_text() == "new" and (target / "up").is_symlink()


def test_an_atomic_write_removes_what_a_killed_writer_left(tmp_path):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True).stdout.strip()
    left = tmp_path / f".w.bin.{dead}.abc123.tmp.bin"  # as atomic_path names its temporary
    left.write_bytes(b"half")
    mine = tmp_path / f".w.bin.{os.getpid()}.zzz.tmp.bin"  # a live writer's: kept
    mine.write_bytes(b"busy")
    atomic.write_bytes(tmp_path / "w.bin", b"whole")
    assert (tmp_path / "w.bin").read_bytes() == b"whole"
    assert not left.exists() and mine.exists()
