"""Test folders that cannot be written: read-only, or on a full disk (a small tmpfs).

As root, permission bits do not stop writes, so a read-only tmpfs is mounted instead; where
mounting is not allowed the test is skipped.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest


def _mount(path: Path, options: str) -> None:
    path.mkdir(parents=True, exist_ok=True)
    result = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(path)],
                            capture_output=True, text=True)
    if result.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {result.stderr.strip()}")


def _umount(path: Path) -> None:
    subprocess.run(["umount", "-l", str(path)], capture_output=True)


@contextlib.contextmanager
def small_disk(path: Path, size_kb: int = 512) -> Iterator[Path]:
    """A folder on a tmpfs of ``size_kb`` KiB (root only, else skip)."""
    if os.geteuid() != 0:
        pytest.skip("mounting a small disk needs root")
    _mount(path, f"size={size_kb}k")
    try:
        yield path
    finally:
        _umount(path)


def fill(disk: Path) -> None:
    """Fill ``disk`` to the last byte."""
    for chunk in (65536, 1):
        with contextlib.suppress(OSError), open(disk / "filler", "ab", buffering=0) as f:
            while True:
                f.write(b"\0" * chunk)


def make_read_only(path: Path) -> None:
    """Make ``path`` (a folder, or a mounted small disk as root) read-only."""
    if os.geteuid() == 0:
        result = subprocess.run(["mount", "-o", "remount,ro", str(path)], capture_output=True,
                                text=True)
        if result.returncode != 0:
            pytest.skip(f"cannot remount read-only: {result.stderr.strip()}")
    else:
        for p in (path, *path.rglob("*")):
            p.chmod(p.stat().st_mode & ~0o222)


@pytest.fixture
def read_only_dir():
    """``read_only_dir(path)`` -> an empty read-only folder at ``path``."""
    made: list[contextlib.ExitStack] = []

    def make(path: Path) -> Path:
        stack = contextlib.ExitStack()
        made.append(stack)
        if os.geteuid() == 0:
            stack.enter_context(small_disk(path))
        else:
            path.mkdir(parents=True)
            stack.callback(lambda: path.chmod(0o755))
        make_read_only(path)
        return path

    yield make
    for stack in made:
        stack.close()
