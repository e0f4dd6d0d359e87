"""Atomic writes: a reader sees the old file or folder or the complete new one, never a partial one.

Files are written beside their target and renamed over it; a folder is built in a staging copy
(``.NAME.PID.XXXX.staging`` beside it) and exchanged with the old one in one system call, so the
old or the new folder is visible at every moment. What a killed run leaves behind (staging
copies of a process that is gone) is cleaned up by the next run on the same folder.
:func:`song_lock` keeps two runs from changing one folder at the same time.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import fcntl
import glob
import os
import re
import shutil
import signal
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

from arranger.errors import InputError

LOCK_TIMEOUT_S = 60.0  # how long a second run waits for the folder before it refuses
# Errors that mean "this folder cannot be written" (full, read-only, not ours), not a bug.
_UNWRITABLE = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM, errno.EFBIG}
_RENAME_EXCHANGE = 2  # linux/fs.h
_AT_FDCWD = -100
_held = threading.local()  # the lock files this thread holds: song_lock nests in one thread


class FolderExistsError(InputError, FileExistsError):
    """The output folder holds files and replacing it was not asked for."""


class FolderBusyError(InputError):
    """Another run holds the folder's lock for longer than we wait."""


@contextlib.contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success fsync it and rename it over ``path``.

    The temporary name keeps ``path``'s suffix, since some writers pick the format from it.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    _clean_dead_temporaries(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.{os.getpid()}.", suffix=f".tmp{path.suffix}",
                               dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        with open(tmp_path, "rb+") as f:
            os.fsync(f.fileno())
        # mkstemp makes 0600 (and some writers recreate the file): give the usual mode.
        os.chmod(tmp_path, 0o666 & ~_umask())
        os.replace(tmp_path, path)
        _fsync_dir(path.parent)
    finally:
        tmp_path.unlink(missing_ok=True)


def _clean_dead_temporaries(path: Path) -> None:
    """Remove the temporary files of ``path`` that killed processes left (SIGKILL mid-write)."""
    pattern = re.compile(rf"\.{re.escape(path.name)}\.(\d+)\.[^.]+\.tmp.*")
    for old in path.parent.glob(f".{glob.escape(path.name)}.*.tmp*"):
        found = pattern.fullmatch(old.name)
        if found is not None and not _alive(int(found[1])):
            old.unlink(missing_ok=True)


def write_bytes(path: Path, data: bytes) -> None:
    """Atomically write ``data`` to ``path``."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def write_text(path: Path, text: str) -> None:
    """Atomically write ``text`` (UTF-8) to ``path``."""
    write_bytes(path, text.encode("utf-8"))


# --- folders ----------------------------------------------------------------------------------


def check_output(target: Path, *, force: bool = False, field: str = "out") -> None:
    """Refuse, before any work, an output folder that cannot be written or would be replaced.

    Raises
    ------
    FolderExistsError
        ``target`` holds files and ``force`` is not set.
    InputError
        The nearest existing folder at or above ``target`` is not writable (read-only, no
        permission).
    """
    target = Path(target)
    if not force and target.is_dir() and any(target.iterdir()):
        raise FolderExistsError(field, str(target), "a new or empty folder (force replaces it)")
    if target.exists() and not target.is_dir():
        raise InputError(field, str(target), "a folder, not a file")
    existing = next(p for p in (target, *target.absolute().parents) if p.exists())
    if not os.access(existing, os.W_OK | os.X_OK):  # access() also reports a read-only mount
        raise unwritable(field, target, f"{existing} is read-only or not yours")


@contextlib.contextmanager
def staged_dir(target: Path, *, force: bool = False, keep: bool = False,
               field: str = "out") -> Iterator[Path]:
    """Build a directory's new contents in a staging copy, then swap it in as a whole.

    Parameters
    ----------
    target : the output directory.
    force : allow replacing an existing non-empty ``target``.
    keep : start the staging copy from ``target``'s current files (for in-place updates).
    field : the name errors give ``target`` (``out``, ``folder``).

    An interrupted or failed run leaves ``target`` as it was. Raises
    :class:`FolderExistsError` when ``target`` holds files and neither ``force`` nor ``keep``
    is set, and :class:`InputError` when the folder cannot be written (disk full, read-only).
    """
    target = Path(target)
    if not (force or keep):
        check_output(target, field=field)
    stage = None
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        clean_stale(target)
        stage = Path(tempfile.mkdtemp(prefix=f".{target.name}.{os.getpid()}.",
                                      suffix=".staging", dir=target.parent))
        os.chmod(stage, 0o777 & ~_umask())  # mkdtemp makes 0700; the output gets the usual mode
        if keep and target.exists():
            _copy_tree(target, stage)
        yield stage
        _swap_in(stage, target)
    except OSError as e:
        if e.errno not in _UNWRITABLE:
            raise
        raise unwritable(field, target, e.strerror) from None
    finally:
        if stage is not None:
            shutil.rmtree(stage, ignore_errors=True)  # after an exchange: the old contents


def unwritable(field: str, target: Path, reason: str) -> InputError:
    """The error for a folder that cannot be written, naming where it is in full."""
    target = Path(target)
    return InputError(field, target.name, f"a folder that can be written ({reason})",
                      where=str(target.absolute().parent))


def _copy_tree(source: Path, dest: Path) -> None:
    """Copy a folder's files into ``dest``; the first failure is raised as it is (copytree
    would gather them into one ``shutil.Error`` without an errno). Symbolic links are copied
    as links, never followed (a link to a folder above would copy without end)."""
    for root, dirs, files in os.walk(source):
        into = dest / Path(root).relative_to(source)
        into.mkdir(exist_ok=True)
        for name in files + [d for d in dirs if os.path.islink(os.path.join(root, d))]:
            shutil.copy2(Path(root) / name, into / name, follow_symlinks=False)


def clean_stale(target: Path) -> list[Path]:
    """Remove what killed runs left beside ``target``: staging copies of processes that are gone.

    A folder moved aside by the two-rename fallback swap is put back when ``target`` is
    missing. Returns the paths removed or restored.
    """
    target, done = Path(target), []
    pattern = re.compile(rf"\.{re.escape(target.name)}\.(\d+)\.(?:[^.]+\.staging|old)")
    for path in target.parent.glob(f".{glob.escape(target.name)}.*"):
        found = pattern.fullmatch(path.name)
        if found is None or _alive(int(found[1])):
            continue
        if path.name.endswith(".old") and not target.exists():
            os.rename(path, target)
        else:
            shutil.rmtree(path, ignore_errors=True)
        done.append(path)
    return done


def _swap_in(stage: Path, target: Path) -> None:
    """Put ``stage`` at ``target``; the old ``target`` (if any) ends up at ``stage``."""
    if not target.exists():
        os.rename(stage, target)
    elif not _exchange(stage, target):
        # No atomic exchange here (not Linux, or a file system without it): two renames,
        # and the next run puts the old folder back if we are killed in between.
        old = target.with_name(f".{target.name}.{os.getpid()}.old")
        os.rename(target, old)
        os.rename(stage, target)
        os.rename(old, stage)
    _fsync_dir(target.parent)


def _exchange(a: Path, b: Path) -> bool:
    """Swap two paths in one step (Linux ``renameat2(RENAME_EXCHANGE)``); False if unsupported."""
    renameat2 = getattr(_libc(), "renameat2", None) if sys.platform == "linux" else None
    if renameat2 is None:
        return False
    if renameat2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.EINVAL, errno.ENOSYS, errno.ENOTSUP):
        return False
    raise OSError(code, os.strerror(code), str(b))


# --- one run per folder -----------------------------------------------------------------------


@contextlib.contextmanager
def song_lock(folder: Path, *, timeout_s: float = LOCK_TIMEOUT_S) -> Iterator[None]:
    """Hold the lock of a song folder while changing it; wait at most ``timeout_s`` seconds.

    The lock is an ``flock`` on ``.NAME.lock`` beside the folder (a lock file inside would be
    swapped away with the folder). It is exclusive between processes and between threads, and
    the kernel drops it when its holder dies; a thread that holds it may enter it again (a
    caller that locks around ``regenerate``). The lock file is removed on release.

    Raises
    ------
    FolderBusyError
        Another run still holds the lock after ``timeout_s`` seconds.
    InputError
        The folder's parent cannot be written.
    """
    folder = Path(folder)
    path = folder.absolute().with_name(f".{folder.name}.lock")
    held, key = _held.__dict__.setdefault("paths", set()), os.path.realpath(path)
    if key in held:  # this thread holds it already (e.g. the studio's job around regenerate)
        yield
        return
    fd = _acquire(path, time.monotonic() + timeout_s, folder, timeout_s)
    held.add(key)
    try:
        yield
    finally:
        held.discard(key)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)  # while still locked: a waiter sees the file is gone and retries
        os.close(fd)


def _acquire(path: Path, deadline: float, folder: Path, timeout_s: float) -> int:
    while True:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o666)
        except OSError as e:
            if e.errno not in _UNWRITABLE | {errno.ENOENT}:  # ENOENT: a file system without files
                raise
            raise unwritable("folder", folder, e.strerror) from None
        if _try_lock(fd, path):
            return fd
        os.close(fd)
        if time.monotonic() >= deadline:
            raise FolderBusyError("folder", str(folder), "a song no other run is changing "
                                  f"(still busy after {timeout_s:g} s; try again)")
        time.sleep(0.05)


def _try_lock(fd: int, path: Path) -> bool:
    """Lock ``fd``; True if locked and ``path`` still names this file (not unlinked meanwhile)."""
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    try:
        same = os.stat(path).st_ino == os.fstat(fd).st_ino
    except FileNotFoundError:
        same = False
    if not same:
        fcntl.flock(fd, fcntl.LOCK_UN)
    return same


@contextlib.contextmanager
def interrupt_on_sigterm() -> Iterator[None]:
    """Treat SIGTERM like Ctrl-C (``KeyboardInterrupt``) while inside: clean-ups run.

    Does nothing outside the main thread, where Python cannot install signal handlers.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum, frame):
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True  # our own staging (another thread's): never stale
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: alive
        pass
    return True


def _libc():
    return ctypes.CDLL(None, use_errno=True)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _fsync_dir(path: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
