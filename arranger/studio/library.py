"""The studio's library: one folder per song, exactly as ``lofi generate`` writes it.

Every name that comes from a request goes through here. A song id is one plain folder name; a
file path is relative, made of plain names (no ``..``, no hidden names, nothing absolute) and
may not pass through a symbolic link, so nothing outside the song's folder can be read.
"""

from __future__ import annotations

import contextlib
import os
import re
import stat
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from arranger.errors import InputError
from arranger.manifest import MANIFEST, Manifest

SONG_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,99}")
SCORE = "score.mid"
STEMS = "stems"
STUDIO_DIR = ".studio"  # the studio's own state (undo versions), hidden from song listings


class Missing(LookupError):
    """A song or file that is not there (HTTP 404); the message is one line."""


def default_library() -> Path:
    """``$XDG_DATA_HOME/lofi/library`` (``~/.local/share/lofi/library`` on Linux)."""
    from platformdirs import user_data_path

    return user_data_path("lofi", appauthor=False) / "library"


@dataclass(frozen=True)
class Library:
    """Song folders under ``root``; the studio's own state under ``root/.studio``."""

    root: Path

    def folder(self, song_id: str) -> Path:
        """The folder of ``song_id`` (which need not exist yet); a bad id is refused."""
        if not isinstance(song_id, str) or not SONG_ID.fullmatch(song_id):
            raise InputError("song id", song_id, "letters, digits, '-', '_' or '.', starting "
                             "with a letter or digit (at most 100)")
        return self.root / song_id

    def song(self, song_id: str) -> Path:
        """The folder of an existing song (a real folder holding a manifest), else Missing."""
        folder = self.folder(song_id)
        if folder.is_symlink() or not (folder / MANIFEST).is_file():
            raise Missing(f"song {song_id!r} not found in the library")
        return folder

    def song_ids(self) -> list[str]:
        """Ids of the songs in the library, newest first."""
        if not self.root.is_dir():
            return []
        found = [(p.stat().st_mtime_ns, p.name) for p in self.root.iterdir()
                 if SONG_ID.fullmatch(p.name) and not p.is_symlink()
                 and (p / MANIFEST).is_file()]
        return [name for _, name in sorted(found, reverse=True)]

    def manifest(self, song_id: str) -> Manifest:
        return Manifest.load(self.song(song_id))

    def file(self, song_id: str, relative: str) -> Path:
        """A regular file inside the song's folder, reached without following any link.

        Raises InputError for a path that could leave the folder, Missing when absent.
        """
        folder = self.song(song_id)
        path = folder
        for part in _plain_parts(relative):
            path = path / part
            try:
                mode = path.lstat().st_mode
            except FileNotFoundError:
                raise Missing(f"{relative!r}: no such file in song {song_id!r}") from None
            if stat.S_ISLNK(mode):
                raise _refused(relative)
        if not stat.S_ISREG(path.lstat().st_mode):
            raise Missing(f"{relative!r}: not a file of song {song_id!r}")
        return path

    def files(self, song_id: str) -> list[dict]:
        """The song's files: ``{"path", "bytes", "version"}`` (version changes with content)."""
        folder = self.song(song_id)
        return [{"path": rel, "bytes": st.st_size, "version": f"{st.st_mtime_ns}-{st.st_ino}"}
                for rel, st in _walk(folder, "")]

    def new_id(self, preset: str, seed: int, taken: set[str]) -> str:
        """A fresh id like ``rainy-night-s7``, ``rainy-night-s7-2``... free on disk and in
        ``taken`` (songs still queued)."""
        base = re.sub(r"[^A-Za-z0-9_.-]+", "-", preset).strip("-.")[:80] or "song"
        for n in range(1, 10_000):
            song_id = f"{base}-s{seed}" + (f"-{n}" if n > 1 else "")
            if song_id not in taken and not os.path.lexists(self.root / song_id):
                return song_id
        raise InputError("seed", seed, "a seed not used 10000 times already for this preset")

    def versions_dir(self, song_id: str) -> Path:
        """Where the earlier versions of a song are kept for undo."""
        return self.root / STUDIO_DIR / "versions" / self.folder(song_id).name

    def staging_dirs(self, song_id: str) -> list[Path]:
        """Folders ``arranger.atomic.staged_dir`` is building for this song right now."""
        name = self.folder(song_id).name
        return [p for p in self.root.glob(f".{name}.*.staging") if p.is_dir()]

    def write_zip(self, song_id: str, dest: Path) -> str:
        """Write ``score.mid`` and every file of ``stems/`` of one version of the song to
        ``dest``.

        All files are opened before any is read, and the folder must be the same one before
        and after (a regenerate swaps in a new folder), so the zip never mixes two versions.
        Returns the zip's download name.
        """
        for _ in range(5):
            folder = self.song(song_id)
            before = folder.stat().st_ino
            stems = folder / STEMS
            names = [SCORE] + ([rel for rel, _ in _walk(stems, f"{STEMS}/")]
                               if stems.is_dir() and not stems.is_symlink() else [])
            with contextlib.ExitStack() as stack:
                handles = [(name, stack.enter_context(open(self.file(song_id, name), "rb")))
                           for name in names]
                if folder.stat().st_ino == before:
                    _zip(handles, dest, song_id)
                    return f"{song_id}.zip"
        raise Missing(f"song {song_id!r} kept changing while zipping; try again")


def _zip(handles, dest: Path, song_id: str) -> None:
    # Stored, not deflated: WAV hardly compresses and deflating 100 MB takes seconds.
    with zipfile.ZipFile(dest, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as z:
        for name, handle in handles:
            with z.open(f"{song_id}/{name}", "w", force_zip64=True) as out:
                while chunk := handle.read(1 << 20):
                    out.write(chunk)


def _plain_parts(relative: str) -> tuple[str, ...]:
    """The parts of a relative path made only of plain names, else InputError."""
    if not isinstance(relative, str) or not relative or "\\" in relative or "\x00" in relative:
        raise _refused(relative)
    path = PurePosixPath(relative)
    parts = relative.split("/")
    if path.is_absolute() or any(p in ("", ".", "..") or p.startswith(".") for p in parts):
        raise _refused(relative)
    return tuple(parts)


def _refused(relative: object) -> InputError:
    return InputError("path", relative, "a file of the song: plain names separated by '/' (no "
                      "'..', hidden or absolute paths, no links)")


def _walk(folder: Path, prefix: str) -> Iterator[tuple[str, os.stat_result]]:
    """Plain files under ``folder`` (sorted, links and hidden names skipped)."""
    with os.scandir(folder) as it:
        entries = sorted(it, key=lambda e: e.name)
    for entry in entries:
        if entry.name.startswith(".") or entry.is_symlink():
            continue
        rel = f"{prefix}{entry.name}"
        if entry.is_dir(follow_symlinks=False):
            yield from _walk(Path(entry.path), rel + "/")
        elif entry.is_file(follow_symlinks=False):
            yield rel, entry.stat(follow_symlinks=False)
