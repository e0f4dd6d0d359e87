"""Atomic writes: a reader sees the old file or the complete new one, never a partial one."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success fsync it and rename it over ``path``.

    The temporary name keeps ``path``'s suffix, since some writers pick the format from it.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=f".tmp{path.suffix}",
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


def write_bytes(path: Path, data: bytes) -> None:
    """Atomically write ``data`` to ``path``."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def write_text(path: Path, text: str) -> None:
    """Atomically write ``text`` (UTF-8) to ``path``."""
    write_bytes(path, text.encode("utf-8"))


@contextlib.contextmanager
def staged_dir(target: Path, *, force: bool = False, keep: bool = False) -> Iterator[Path]:
    """Build a directory's new contents in a staging copy, then swap it in as a whole.

    Parameters
    ----------
    target : the output directory.
    force : allow replacing an existing non-empty ``target``.
    keep : start the staging copy from ``target``'s current files (for in-place updates).

    An interrupted run leaves ``target`` as it was. Raises ``FileExistsError`` when ``target``
    holds files and neither ``force`` nor ``keep`` is set.
    """
    target = Path(target)
    exists = target.exists() and any(target.iterdir())
    if exists and not (force or keep):
        raise FileExistsError(f"{target} already exists and is not empty (use --force to replace)")
    target.parent.mkdir(parents=True, exist_ok=True)
    stage = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".staging", dir=target.parent))
    os.chmod(stage, 0o777 & ~_umask())  # mkdtemp makes 0700; the output gets the usual mode
    try:
        if keep and target.exists():
            shutil.copytree(target, stage, dirs_exist_ok=True, copy_function=shutil.copy2)
        yield stage
        _swap_in(stage, target)
    finally:
        shutil.rmtree(stage, ignore_errors=True)


def _swap_in(stage: Path, target: Path) -> None:
    old = None
    if target.exists():
        old = target.with_name(f".{target.name}.old-{os.getpid()}")
        os.replace(target, old)
    os.replace(stage, target)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
    _fsync_dir(target.parent)


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
