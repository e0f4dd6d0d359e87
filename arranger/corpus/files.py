"""Corpus files: find them in folders and .zip archives; read one with the reader of its type.

MIDI files, POP909 song folders, jazz chord charts (.txt) and MusicXML lead sheets are read;
every failure, including a reader that runs past its time limit, becomes a :class:`SkipSong`.
"""

from __future__ import annotations

import contextlib
import csv
import functools
import os
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from arranger.corpus.piece import SkipSong, Song, check_size
from arranger.corpus.pool import guarded
from arranger.corpus.readers.charts import is_chord_chart, read_chord_chart
from arranger.corpus.readers.midi import MIDI_SUFFIXES, read_midi_bytes
from arranger.corpus.readers.musicxml import XML_SUFFIXES, read_musicxml, read_musicxml_bytes
from arranger.corpus.readers.pop909 import (
    is_pop909,
    pop909_from_archive,
    pop909_from_folder,
    read_pop909,
)

MAX_ARCHIVE_MEMBERS = 100_000
DATASETS = (("pop909", "pop909"), ("groove", "groove-gmd"), ("openewld", "openewld"),
            ("jazz-chord", "jazz-chord-corpus"), ("nottingham", "nottingham"))
_CHART_SNIFF_BYTES = 2048  # a .txt file is a chord chart when its head looks like one


def dataset_of(source: str) -> str:
    """Dataset name from a path component (e.g. ``.../pop909/...`` -> ``"pop909"``), else ``""``."""
    for part in PurePosixPath(source.replace(os.sep, "/")).parts:
        low = part.lower()
        for marker, name in DATASETS:
            if marker in low:
                return name
    return ""


# --- reading one file -------------------------------------------------------------------------


def read_file(path: Path | str, aligned: bool = True) -> list[Song]:
    """Songs of one file, POP909 song folder or .zip archive.

    A Groove MIDI file (one its ``info.csv`` lists) gets its style, and unless ``aligned`` is
    False its songs are phase-aligned and trimmed (:func:`arranger.corpus.groove.align`), so
    the drum model's "step in bar" is the performance's.

    Raises
    ------
    SkipSong : the file is rejected; ``reason`` says why. No other exception escapes.
    """
    path = Path(path)
    return guarded(lambda: _read_path(path, aligned))


def _read_path(path: Path, aligned: bool = True) -> list[Song]:
    if path.is_dir():
        if not is_pop909(os.listdir(path)):
            raise SkipSong("unsupported: a folder without beat_midi.txt and chord_midi.txt")
        return read_pop909(pop909_from_folder(path, dataset_of(str(path))))
    if not path.is_file():
        raise SkipSong("unreadable: no such file")
    if path.suffix.lower() == ".zip":
        return _read_archive(path)
    check_size(path.stat().st_size)
    row = _check_gmd_info(path) if path.suffix.lower() in MIDI_SUFFIXES else None
    songs = _read_blob(path.name, path.read_bytes, str(path), dataset_of(str(path)), path)
    return _as_groove(songs, row.get("style", ""), aligned) if row else songs


def _as_groove(songs: list[Song], style: str, aligned: bool) -> list[Song]:
    """A Groove MIDI file's songs with its main style; phase-aligned and trimmed if
    ``aligned`` (a song too short for that is kept as read)."""
    from dataclasses import replace

    from arranger.corpus.groove import align  # here: groove reads files through this module

    out = []
    for song in songs:
        score = song.score
        if aligned and "drums" in song.layers:
            with contextlib.suppress(ValueError):
                score = align(score)[0]
        score.style = style.partition("/")[0]
        out.append(replace(song, score=score))
    return out


def _read_blob(name: str, load: Callable[[], bytes], source: str, dataset: str,
               path: Path | None = None) -> list[Song]:
    """Dispatch one file (on disk or in an archive) to its reader by suffix."""
    suffix = PurePosixPath(name).suffix.lower()
    if suffix in MIDI_SUFFIXES:
        return read_midi_bytes(load(), source, dataset)
    if suffix in XML_SUFFIXES:
        if path is not None:
            return read_musicxml(str(path), source, dataset)
        return read_musicxml_bytes(load(), suffix, source, dataset)
    if suffix == ".txt":
        text = load().decode("utf-8", errors="replace")
        if not is_chord_chart(text):
            raise SkipSong(unsupported_reason(name))
        return read_chord_chart(text, source, dataset)
    raise SkipSong(unsupported_reason(name))


@functools.lru_cache(maxsize=16)
def _gmd_info(csv_path: str) -> dict[str, dict[str, str]]:
    with open(csv_path, newline="", encoding="utf-8", errors="replace") as f:
        return {r.get("midi_filename", ""): r for r in csv.DictReader(f)}


def _check_gmd_info(path: Path) -> dict[str, str] | None:
    """The ``info.csv`` row (up to 3 folders up) of a Groove MIDI file, or None; a file it
    marks as non-4/4 is skipped."""
    for folder in list(path.parents)[:3]:
        info = folder / "info.csv"
        if info.is_file():
            row = _gmd_info(str(info)).get(path.relative_to(folder).as_posix())
            meter = (row or {}).get("time_signature", "")
            if meter and meter != "4-4":
                raise SkipSong(f"non-4/4 time signature: {meter.replace('-', '/')} (info.csv)")
            return row
    return None


# --- archives ---------------------------------------------------------------------------------


def _read_archive(path: Path) -> list[Song]:
    songs: list[Song] = []
    for task in _archive_tasks(path):
        if task.skip:
            continue
        with contextlib.suppress(SkipSong):
            songs += _read_member(path, task.member)
    if not songs:
        raise SkipSong("no usable songs in archive")
    return songs


def _open_zip(path: Path) -> zipfile.ZipFile:
    try:
        return zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        raise SkipSong(f"bad archive: {exc}") from None


def _read_member(path: Path, member: str) -> list[Song]:
    source, dataset = f"{path}:{member}", dataset_of(f"{path}/{member}")
    with _open_zip(path) as zf:

        def load(name: str = member) -> bytes:
            info = zf.getinfo(name)
            check_size(info.file_size)
            return zf.read(info)

        if member.endswith("/"):
            return read_pop909(pop909_from_archive(zf.namelist(), member, load,
                                                   source.rstrip("/"), dataset))
        return _read_blob(member, load, source, dataset)


# --- discovery --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Task:
    """One unit of reading: a file, a POP909 folder, or a member of a .zip archive."""

    path: str
    member: str = ""
    skip: str = ""  # set for a file that discovery already knows no reader takes

    @property
    def source(self) -> str:
        return f"{self.path}:{self.member.rstrip('/')}" if self.member else self.path

    def read(self) -> list[Song]:
        if self.skip:
            raise SkipSong(self.skip)
        if self.member:
            return guarded(lambda: _read_member(Path(self.path), self.member))
        return read_file(self.path)


def discover(paths: Sequence[Path | str]) -> list[Task]:
    """Reading tasks under ``paths`` (files, folders walked recursively, .zip archives).

    A folder holding ``beat_midi.txt``, ``chord_midi.txt`` and a MIDI file is one POP909 song.
    Other files count by suffix (.mid/.midi/.kar/.smf, .mxl/.musicxml, .zip, and .txt when it is
    a chord chart); any other file (e.g. Humdrum ``.krn``) becomes a task with ``skip`` set, so
    it is counted and named in the skip report without being read. Hidden files are left out.
    A path that does not exist becomes a task that is skipped with its reason.
    """
    tasks: list[Task] = []
    for root in map(Path, paths):
        if root.is_dir():
            tasks += _walk(root)
        elif root.suffix.lower() == ".zip" and root.is_file():
            tasks += _archive_tasks(root, lenient=True)
        else:
            tasks.append(Task(str(root)))
    return tasks


def _walk(root: Path) -> list[Task]:
    tasks = []
    for folder, dirs, files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        if is_pop909(files):
            tasks.append(Task(folder))
            dirs[:] = []
            continue
        for name in sorted(files):
            path = os.path.join(folder, name)
            low = name.lower()
            if name.startswith("."):
                continue
            if low.endswith(MIDI_SUFFIXES + XML_SUFFIXES) or (low.endswith(".txt")
                                                             and _sniff_chart(path)):
                tasks.append(Task(path))
            elif low.endswith(".zip"):
                tasks += _archive_tasks(Path(path), lenient=True)
            else:
                tasks.append(Task(path, skip=unsupported_reason(name)))
    return tasks


def unsupported_reason(name: str) -> str:
    """The skip reason of a file no reader takes (its category names the suffix)."""
    suffix = PurePosixPath(name).suffix.lower()
    if suffix == ".txt":
        return "unsupported: a text file that is not a chord chart"
    kind = f"file type {suffix}" if suffix else "file without a suffix"
    return (f"unsupported {kind}: lofi reads MIDI, MusicXML, chord-chart .txt, POP909 song "
            "folders and .zip archives of those")


def _is_chart_head(data: bytes) -> bool:
    return is_chord_chart(data[:_CHART_SNIFF_BYTES].decode("utf-8", "replace"))


def _sniff_chart(path: str) -> bool:
    try:
        with open(path, "rb") as f:
            return _is_chart_head(f.read(_CHART_SNIFF_BYTES))
    except OSError:
        return False


def _archive_tasks(path: Path, lenient: bool = False) -> list[Task]:
    """Tasks for an archive's members; an unreadable archive is one task (skipped when read)."""
    try:
        with _open_zip(path) as zf:
            names = [n for n in zf.namelist()[:MAX_ARCHIVE_MEMBERS] if not n.endswith("/")]
            charts = {n for n in names if n.lower().endswith(".txt") and _is_chart_head(zf.read(n))}
    except SkipSong:
        if lenient:
            return [Task(str(path))]
        raise
    folders: dict[str, list[str]] = {}
    for name in names:
        folder, _, base = name.rpartition("/")
        folders.setdefault(folder + "/" if folder else "", []).append(base)
    pop = {f for f, files in folders.items() if f and is_pop909(files)}
    tasks = [Task(str(path), f) for f in sorted(pop)]
    for name in names:
        if name.rpartition("/")[0] + "/" in pop or PurePosixPath(name).name.startswith("."):
            continue
        if name.lower().endswith(MIDI_SUFFIXES + XML_SUFFIXES) or name in charts:
            tasks.append(Task(str(path), name))
        else:
            tasks.append(Task(str(path), name, skip=unsupported_reason(name)))
    return tasks
