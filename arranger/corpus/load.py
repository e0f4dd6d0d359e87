"""The training corpus: find songs in folders and archives, read them in worker processes, cache.

``load_corpus`` walks folders recursively (and .zip archives) for MIDI files, POP909 song folders,
jazz chord charts and MusicXML lead sheets, reads each in a worker process under a time limit,
and caches every file's result (songs, or the reason it was skipped) keyed by its path, size,
mtime and ``READER_VERSION``. A second run over the same folders loads one bundle file.

A song holds only some layers (``Song.layers``); each layer model trains on the songs that hold
its layer, and a conditioning input a song lacks is fed the models' "unknown" token.
"""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from arranger.corpus import pool
from arranger.corpus.cache import Cache, decode_results, default_cache_dir, task_key
from arranger.corpus.files import Task, discover
from arranger.corpus.piece import Result, Song
from arranger.score import LAYERS

LAYER_NAMES = LAYERS  # the order corpus summaries count layers in

@dataclass
class CorpusReport:
    """What a corpus load kept and skipped.

    ``kept`` counts files (a file may give several songs: one per run of 4/4 bars and key);
    ``skipped`` counts skipped files by reason category; ``examples`` lists every skipped file
    with its full reason.
    """

    kept: int = 0
    skipped: dict[str, int] = field(default_factory=dict)
    examples: list[tuple[str, str]] = field(default_factory=list)
    songs: int = 0
    datasets: dict[str, int] = field(default_factory=dict)  # songs per dataset
    layers: dict[str, int] = field(default_factory=dict)  # songs holding each layer
    from_cache: int = 0  # files answered by the cache
    seconds: float = 0.0

    def summary(self) -> str:
        """Multi-line human summary: files read, kept and skipped; what a song is; per layer."""
        skipped = sum(self.skipped.values())
        lines = [f"read {self.kept + skipped} files ({self.from_cache} from cache, "
                 f"{self.seconds:.1f} s): kept {self.kept} files -> {self.songs} songs, "
                 f"skipped {skipped} files",
                 "  a song is a run of 4/4 bars in one key: a file gives one per such run "
                 "(other meters and key changes split it)"]
        if self.datasets:
            lines.append("  songs per dataset: " + ", ".join(
                f"{name or 'other'} {n}" for name, n in sorted(self.datasets.items())))
        lines.append("  songs holding each layer: " + ", ".join(
            f"{k} {self.layers.get(k, 0)}" for k in LAYER_NAMES)
                     + " (each layer model trains on the songs holding its layer)")
        if skipped:
            lines.append(f"skipped {skipped} files, by reason:")
        for reason, n in sorted(self.skipped.items(), key=lambda kv: (-kv[1], kv[0])):
            lines.append(f"  {n:6d}  {reason}")
        return "\n".join(lines)

    def skip_report(self) -> str:
        """Tab-separated ``path<TAB>reason`` of every skipped file, a header line first."""
        rows = ["path\treason"]
        rows += [f"{_one_line(src)}\t{_one_line(why)}" for src, why in self.examples]
        return "\n".join(rows) + "\n"

    def add(self, source: str, result: Result) -> None:
        if isinstance(result, str):
            category = result.split(":", 1)[0]
            self.skipped[category] = self.skipped.get(category, 0) + 1
            self.examples.append((source, result))
            return
        self.kept += 1
        self.songs += len(result)
        for song in result:
            self.datasets[song.dataset] = self.datasets.get(song.dataset, 0) + 1
            for layer in song.layers:
                self.layers[layer] = self.layers.get(layer, 0) + 1


def _one_line(text: str) -> str:
    return " ".join(str(text).split("\t")).replace("\n", " ")


# --- the public entry point -------------------------------------------------------------------


def _spread(tasks: list[Task], n: int) -> list[Task]:
    """At most ``n`` tasks spread evenly over the (sorted) list, so every folder is sampled."""
    if n >= len(tasks):
        return tasks
    picks = np.unique(np.linspace(0, len(tasks) - 1, max(n, 0)).round().astype(int))
    return [tasks[i] for i in picks.tolist()]


def load_corpus(paths: Sequence[Path | str], *, workers: int | None = None,
                cache_dir: Path | None = None, progress: bool = True,
                max_files: int | None = None) -> tuple[list[Song], CorpusReport]:
    """Read every song under ``paths``, using worker processes and the cache.

    Parameters
    ----------
    paths : files, folders (walked recursively) and .zip archives.
    workers : worker processes (default ``os.cpu_count()``); 1 reads in this process.
    cache_dir : cache folder (default :func:`default_cache_dir`).
    progress : show a progress bar (on stderr) while files are read.
    max_files : read at most this many files, spread evenly over the sorted file list.

    Returns
    -------
    songs, report : the songs in file order, and what was kept and skipped (with reasons).
    """
    started = time.perf_counter()
    tasks = discover(paths)
    if max_files is not None:
        tasks = _spread(tasks, max_files)
    keys = [task_key(t) for t in tasks]
    sources = {k: t.source for k, t in zip(keys, tasks, strict=True)}
    signature = hashlib.sha1("".join(keys).encode()).hexdigest()
    cache = Cache(cache_dir if cache_dir is not None else default_cache_dir())
    bundle = cache.bundle_path(paths, max_files)
    meta, known = decode_results(bundle, sources)
    results: list[Result | None] = [t.skip or known.get(k) for t, k in zip(tasks, keys,
                                                                             strict=True)]
    from_cache = sum(r is not None and not t.skip for t, r in zip(tasks, results, strict=True))
    if meta.get("signature") != signature:
        from_cache += _load_entries(cache, keys, sources, results)
        _read_missing(tasks, keys, results, cache, workers or os.cpu_count() or 1, progress)
        cache.save(bundle, list(zip(keys, results, strict=True)), signature=signature)
    return _finish(tasks, results, from_cache, started)


def _load_entries(cache: Cache, keys: list[str], sources: dict[str, str],
                  results: list[Result | None]) -> int:
    found = 0
    for i, key in enumerate(keys):
        if results[i] is None:
            path = cache.entry_path(key)
            result = decode_results(path, sources)[1].get(key) if path.exists() else None
            if result is not None:
                results[i] = result
                found += 1
    return found


def _read_missing(tasks: list[Task], keys: list[str], results: list[Result | None],
                  cache: Cache, workers: int, progress: bool) -> None:
    """Read the tasks without a result, caching each result as it arrives."""
    todo = [i for i, r in enumerate(results) if r is None]

    def deliver(j: int, result: Result) -> None:
        results[todo[j]] = result
        cache.save(cache.entry_path(keys[todo[j]]), [(keys[todo[j]], result)])

    _read_all([tasks[i] for i in todo], workers, progress, deliver)


def _read_all(tasks: list[Task], workers: int, progress: bool,
              deliver: Callable[[int, Result], None]) -> None:
    with pool.progress_bar(len(tasks), progress) as advance:

        def both(i: int, result: Result) -> None:
            deliver(i, result)
            advance(result)

        if workers <= 1 or len(tasks) <= 2:
            for i, task in enumerate(tasks):
                both(i, pool.read_one(task))
        else:
            pool.run_pool(tasks, min(workers, len(tasks)), both)


def _finish(tasks: list[Task], results: list, from_cache: int, started: float
            ) -> tuple[list[Song], CorpusReport]:
    report = CorpusReport(from_cache=from_cache)
    songs: list[Song] = []
    for task, result in zip(tasks, results, strict=True):
        report.add(task.source, result)
        if not isinstance(result, str):
            songs += result
    report.seconds = time.perf_counter() - started
    return songs, report
