"""The corpus cache: every file's songs (or skip reason) in an .npz, and one bundle per load.

Entries are keyed by a file's path, size, mtime and ``READER_VERSION``; a bundle holds every
result of one ``load_corpus`` call (its roots and ``max_files``), so a second run loads one file.
The .npz files hold plain arrays and JSON (no pickles).
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import zipfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from arranger.atomic import write_bytes
from arranger.corpus.files import Task
from arranger.corpus.piece import Result, Song
from arranger.score import Chord, Key, Score
from tracks.common import QUALITY_NAMES

READER_VERSION = 4  # bump when a reader's output changes: old cache entries are then ignored
_QUALITY_INDEX = {q: i for i, q in enumerate(QUALITY_NAMES)}
_CHORD_TABLE = [Chord(r, q) for r in range(12) for q in QUALITY_NAMES]
_ARRAYS = (("melody", np.int16), ("bass", np.int16), ("drums", np.uint16),
           ("drum_velocity", np.uint8))


def task_key(task: Task) -> str:
    """Cache key: absolute path, member, size and mtime of the inputs, and READER_VERSION."""
    path = os.path.abspath(task.path)
    parts = [str(READER_VERSION), path, task.member]
    try:
        if os.path.isdir(path):
            entries = sorted(os.scandir(path), key=lambda e: e.name)
            parts += [f"{e.name}:{e.stat().st_size}:{e.stat().st_mtime_ns}"
                      for e in entries if e.is_file()]
        else:
            st = os.stat(path)
            parts += [str(st.st_size), str(st.st_mtime_ns)]
    except OSError:
        parts.append("missing")
    return hashlib.sha1("|".join(parts).encode("utf-8", "surrogateescape")).hexdigest()


def default_cache_dir() -> Path:
    """``$LOFI_CACHE/corpus`` if set, else ``~/.cache/lofi/corpus``."""
    root = os.environ.get("LOFI_CACHE")
    return (Path(root) if root else Path.home() / ".cache" / "lofi") / "corpus"


def encode_results(items: Sequence[tuple[str, Result]], **extra) -> bytes:
    """An .npz (no pickles) of ``(cache key, result)`` pairs; ``extra`` goes into its JSON meta."""
    entries, chords = [], []
    arrays: dict[str, list[np.ndarray]] = {name: [] for name, _ in _ARRAYS}
    for key, result in items:
        if isinstance(result, str):
            entries.append({"key": key, "skip": result})
            continue
        for song in result:
            for name, _ in _ARRAYS:
                arrays[name].append(getattr(song.score, name))
            chords.append(_chord_tokens(song.score.chords))
        entries.append({"key": key, "songs": [_song_meta(song) for song in result]})
    meta = {"version": READER_VERSION, "qualities": list(QUALITY_NAMES), "entries": entries}
    payload = {name: np.concatenate(arrays[name] or [np.zeros(0, dtype)]).astype(dtype)
               for name, dtype in _ARRAYS}
    payload["chords"] = np.concatenate(chords or [np.zeros(0, np.int16)])
    payload["meta"] = np.frombuffer(json.dumps(meta | extra).encode("utf-8"), np.uint8)
    buf = io.BytesIO()
    np.savez(buf, **payload)
    return buf.getvalue()


def _song_meta(song: Song) -> dict:
    sc = song.score
    return {"bars": sc.bars, "tempo": sc.tempo_bpm, "tonic": sc.key.tonic, "mode": sc.key.mode,
            "swing": sc.swing, "dataset": song.dataset, "layers": sorted(song.layers),
            "style": sc.style}


def _chord_tokens(chords) -> np.ndarray:
    """int16 per beat: ``root * len(QUALITY_NAMES) + quality index``, -1 for no chord."""
    return np.array([-1 if c is None else c.root * len(QUALITY_NAMES) + _QUALITY_INDEX[c.quality]
                     for c in chords], np.int16)


def decode_results(path: Path, sources: dict[str, str] | None = None
                   ) -> tuple[dict, dict[str, Result]]:
    """``(meta, {cache key: result})`` of a file written from :func:`encode_results`.

    ``sources`` maps keys to the Song.source to give their songs. A missing, corrupt or
    out-of-date file reads as empty.
    """
    try:
        with np.load(path, allow_pickle=False) as z:
            meta = json.loads(z["meta"].tobytes().decode("utf-8"))
            arrays = {name: z[name] for name in (*dict(_ARRAYS), "chords")}
        if meta.get("version") != READER_VERSION or meta.get("qualities") != list(QUALITY_NAMES):
            return {}, {}
        return meta, _decode_entries(meta["entries"], arrays, sources or {})
    except (OSError, ValueError, KeyError, TypeError, zipfile.BadZipFile, json.JSONDecodeError):
        return {}, {}


def _decode_entries(entries: list[dict], arrays: dict[str, np.ndarray],
                    sources: dict[str, str]) -> dict[str, Result]:
    out: dict[str, Result] = {}
    step = beat = 0
    for entry in entries:
        if "skip" in entry:
            out[entry["key"]] = entry["skip"]
            continue
        songs = []
        for info in entry["songs"]:
            n_steps, n_beats = info["bars"] * 16, info["bars"] * 4
            tokens = arrays["chords"][beat:beat + n_beats].tolist()
            key = Key(info["tonic"], info["mode"])
            score = Score(info["bars"], tempo_bpm=info["tempo"], key=key, swing=info["swing"],
                          style=info.get("style", ""),
                          chords=tuple(None if t < 0 else _CHORD_TABLE[t] for t in tokens),
                          **{name: arrays[name][step:step + n_steps] for name, _ in _ARRAYS})
            songs.append(Song(sources.get(entry["key"], ""), score, frozenset(info["layers"]),
                              info["dataset"]))
            step, beat = step + n_steps, beat + n_beats
        out[entry["key"]] = songs
    return out


class Cache:
    """Per-file entries under ``files/`` and one bundle per set of roots under ``bundles/``.

    Writes happen in the calling thread: worker processes are forked, and a fork must not
    happen while another thread holds a lock.
    """

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.errors = 0

    def entry_path(self, key: str) -> Path:
        return self.root / "files" / key[:2] / f"{key}.npz"

    def bundle_path(self, paths: Sequence[Path | str], max_files: int | None) -> Path:
        roots = "\n".join(sorted(os.path.abspath(p) for p in paths))
        name = hashlib.sha1(f"{READER_VERSION}\n{roots}\n{max_files}".encode()).hexdigest()
        return self.root / "bundles" / f"{name}.npz"

    def save(self, path: Path, items: Sequence[tuple[str, Result]], **extra) -> None:
        """Write atomically; a cache that cannot be written only costs speed."""
        try:
            write_bytes(path, encode_results(items, **extra))
        except OSError:
            self.errors += 1
