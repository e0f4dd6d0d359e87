"""The training corpus: find songs in folders and archives, read them in worker processes, cache.

``load_corpus`` walks folders recursively (and .zip archives) for MIDI files, POP909 song folders,
jazz chord charts and MusicXML lead sheets, reads each in a worker process under a time limit,
and caches every file's result (songs, or the reason it was skipped) keyed by its path, size,
mtime and ``READER_VERSION``. A second run over the same folders loads one bundle file.

A song holds only some layers (``Song.layers``); each layer model trains on the songs that hold
its layer, and a conditioning input a song lacks is fed the models' "unknown" token.
"""

from __future__ import annotations

import contextlib
import csv
import functools
import hashlib
import io
import json
import os
import signal
import tempfile
import threading
import time
import warnings
import zipfile
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

import numpy as np

from arranger.atomic import write_bytes
from arranger.corpus_formats import (
    MAX_FILE_BYTES,
    Pop909Files,
    SkipSong,
    Song,
    is_chord_chart,
    read_chord_chart,
    read_midi_bytes,
    read_musicxml,
    read_pop909,
)
from arranger.score import QUALITIES, Chord, Key, Score

READER_VERSION = 2  # bump when a reader's output changes: old cache entries are then ignored
FILE_TIME_LIMIT_S = 60.0  # per file, enforced in the worker
STALL_S = 300.0  # no result from any worker for this long: the pool is restarted
MIDI_SUFFIXES = (".mid", ".midi", ".kar", ".smf")
XML_SUFFIXES = (".mxl", ".musicxml")
POP909_FILES = ("beat_midi.txt", "chord_midi.txt")
MAX_ARCHIVE_MEMBERS = 100_000
DATASETS = (("pop909", "pop909"), ("groove", "groove-gmd"), ("openewld", "openewld"),
            ("jazz-chord", "jazz-chord-corpus"), ("nottingham", "nottingham"))
LAYER_NAMES = ("chords", "melody", "bass", "drums")

__all__ = ["Song", "SkipSong", "CorpusReport", "load_corpus", "read_file", "discover",
           "READER_VERSION", "default_cache_dir"]


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
        """Multi-line human summary: kept songs (by dataset and layer), skipped by reason."""
        lines = [f"kept {self.kept} files -> {self.songs} songs "
                 f"({self.from_cache} files from cache, {self.seconds:.1f} s)"]
        if self.datasets:
            lines.append("  datasets: " + ", ".join(
                f"{name or 'other'} {n}" for name, n in sorted(self.datasets.items())))
        lines.append("  layers: " + ", ".join(f"{k} {self.layers.get(k, 0)}" for k in LAYER_NAMES))
        lines.append(f"skipped {sum(self.skipped.values())} files")
        for reason, n in sorted(self.skipped.items(), key=lambda kv: (-kv[1], kv[0])):
            lines.append(f"  {n:6d}  {reason}")
        return "\n".join(lines)

    def add(self, source: str, result: list[Song] | str) -> None:
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


# --- reading one file -------------------------------------------------------------------------


class _TimeUp(BaseException):
    """Raised by the alarm; a BaseException so that library ``except Exception`` can't eat it."""


@contextlib.contextmanager
def _time_limit(seconds: float) -> Iterator[None]:
    """Raise ``_TimeUp`` after ``seconds`` (main thread on POSIX only; else no limit)."""
    usable = (hasattr(signal, "setitimer") and threading.current_thread() is threading.main_thread()
              and signal.getitimer(signal.ITIMER_REAL)[0] == 0)
    if not usable:
        yield
        return

    def _raise(signum, frame):
        raise _TimeUp()

    previous = signal.signal(signal.SIGALRM, _raise)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def _guarded(read: Callable[[], list[Song]]) -> list[Song]:
    """Run a reader; every failure becomes a :class:`SkipSong`."""
    try:
        with _time_limit(FILE_TIME_LIMIT_S):
            return read()
    except SkipSong:
        raise
    except _TimeUp:
        raise SkipSong(f"timed out: over {FILE_TIME_LIMIT_S:g} s") from None
    except RecursionError:
        raise SkipSong("reader error: nesting too deep") from None
    except MemoryError:
        raise SkipSong("reader error: out of memory") from None
    except Exception as exc:
        text = (str(exc).strip().splitlines() or [""])[0][:120]
        raise SkipSong(f"reader error: {type(exc).__name__}: {text}") from None


def read_file(path: Path | str) -> list[Song]:
    """Songs of one file, POP909 song folder or .zip archive.

    Raises
    ------
    SkipSong : the file is rejected; ``reason`` says why. No other exception escapes.
    """
    path = Path(path)
    return _guarded(lambda: _read_path(path))


def _read_path(path: Path) -> list[Song]:
    if path.is_dir():
        if not _is_pop909(os.listdir(path)):
            raise SkipSong("unsupported: a folder without beat_midi.txt and chord_midi.txt")
        return read_pop909(_pop909_from_folder(path))
    if not path.is_file():
        raise SkipSong("unreadable: no such file")
    if path.suffix.lower() == ".zip":
        return _read_archive(path)
    size = path.stat().st_size
    if size > MAX_FILE_BYTES:
        raise SkipSong(f"too big: {size / 2**20:.1f} MB")
    if path.suffix.lower() in MIDI_SUFFIXES:
        _check_gmd_info(path)
    return _read_blob(path.name, path.read_bytes, str(path), dataset_of(str(path)), path)


def _read_blob(name: str, load: Callable[[], bytes], source: str, dataset: str,
               path: Path | None = None) -> list[Song]:
    """Dispatch one file (on disk or in an archive) to its reader by suffix."""
    suffix = PurePosixPath(name).suffix.lower()
    if suffix in MIDI_SUFFIXES:
        return read_midi_bytes(load(), source, dataset)
    if suffix in XML_SUFFIXES:
        if path is not None:
            return read_musicxml(str(path), source, dataset)
        with tempfile.TemporaryDirectory() as tmp:
            tmp_path = Path(tmp) / f"member{suffix}"
            tmp_path.write_bytes(load())
            return read_musicxml(str(tmp_path), source, dataset)
    if suffix == ".txt":
        text = load().decode("utf-8", errors="replace")
        if not is_chord_chart(text):
            raise SkipSong("unsupported: a text file that is not a chord chart")
        return read_chord_chart(text, source, dataset)
    raise SkipSong(f"unsupported: file type {suffix or name!r}")


def _is_pop909(names) -> bool:
    names = set(names)
    return all(n in names for n in POP909_FILES) and any(
        n.lower().endswith(MIDI_SUFFIXES) for n in names)


def _pop909_from_folder(folder: Path) -> Pop909Files:
    midis = sorted(p for p in folder.iterdir() if p.suffix.lower() in MIDI_SUFFIXES)
    keys = folder / "key_audio.txt"
    return Pop909Files(
        midi=midis[0].read_bytes(), beats=(folder / "beat_midi.txt").read_text(errors="replace"),
        chords=(folder / "chord_midi.txt").read_text(errors="replace"),
        keys=keys.read_text(errors="replace") if keys.exists() else "",
        source=str(folder), dataset=dataset_of(str(folder)) or "pop909")


def dataset_of(source: str) -> str:
    """Dataset name from a path component (e.g. ``.../pop909/...`` -> ``"pop909"``), else ``""``."""
    for part in PurePosixPath(source.replace(os.sep, "/")).parts:
        low = part.lower()
        for marker, name in DATASETS:
            if marker in low:
                return name
    return ""


@functools.lru_cache(maxsize=16)
def _gmd_info(csv_path: str) -> dict[str, str]:
    with open(csv_path, newline="", encoding="utf-8", errors="replace") as f:
        rows = csv.DictReader(f)
        return {r.get("midi_filename", ""): r.get("time_signature", "") for r in rows}


def _check_gmd_info(path: Path) -> None:
    """Skip a Groove MIDI file that its ``info.csv`` (up to 3 folders up) marks as non-4/4."""
    for folder in list(path.parents)[:3]:
        info = folder / "info.csv"
        if info.is_file():
            meter = _gmd_info(str(info)).get(path.relative_to(folder).as_posix(), "")
            if meter and meter != "4-4":
                raise SkipSong(f"non-4/4 time signature: {meter.replace('-', '/')} (info.csv)")
            return


# --- archives ---------------------------------------------------------------------------------


def _read_archive(path: Path) -> list[Song]:
    songs: list[Song] = []
    for task in _archive_tasks(path):
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
            if info.file_size > MAX_FILE_BYTES:
                raise SkipSong(f"too big: {info.file_size / 2**20:.1f} MB")
            return zf.read(info)

        if member.endswith("/"):
            names = {n[len(member):] for n in zf.namelist() if n.startswith(member)}
            midi = sorted(n for n in names if n.lower().endswith(MIDI_SUFFIXES) and "/" not in n)
            text = {n: load(member + n).decode("utf-8", "replace")
                    for n in (*POP909_FILES, "key_audio.txt") if n in names}
            return read_pop909(Pop909Files(
                load(member + midi[0]), text["beat_midi.txt"], text["chord_midi.txt"],
                text.get("key_audio.txt", ""), source.rstrip("/"), dataset or "pop909"))
        return _read_blob(member, load, source, dataset)


# --- discovery --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Task:
    """One unit of reading: a file, a POP909 folder, or a member of a .zip archive."""

    path: str
    member: str = ""

    @property
    def source(self) -> str:
        return f"{self.path}:{self.member.rstrip('/')}" if self.member else self.path

    def read(self) -> list[Song]:
        if self.member:
            return _guarded(lambda: _read_member(Path(self.path), self.member))
        return read_file(self.path)


def discover(paths: Sequence[Path | str]) -> list[Task]:
    """Reading tasks under ``paths`` (files, folders walked recursively, .zip archives).

    A folder holding ``beat_midi.txt``, ``chord_midi.txt`` and a MIDI file is one POP909 song.
    Other files count by suffix (.mid/.midi/.kar/.smf, .mxl/.musicxml, .zip, and .txt when it is
    a chord chart); anything else is ignored. A path that does not exist becomes a task that is
    skipped with its reason.
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
        if _is_pop909(files):
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
    return tasks


def _sniff_chart(path: str) -> bool:
    try:
        with open(path, "rb") as f:
            return is_chord_chart(f.read(2048).decode("utf-8", "replace"))
    except OSError:
        return False


def _archive_tasks(path: Path, lenient: bool = False) -> list[Task]:
    """Tasks for an archive's members; an unreadable archive is one task (skipped when read)."""
    try:
        with _open_zip(path) as zf:
            names = [n for n in zf.namelist()[:MAX_ARCHIVE_MEMBERS] if not n.endswith("/")]
            charts = {n for n in names if n.lower().endswith(".txt")
                      and is_chord_chart(zf.read(n)[:2048].decode("utf-8", "replace"))}
    except SkipSong:
        if lenient:
            return [Task(str(path))]
        raise
    folders: dict[str, list[str]] = {}
    for name in names:
        folder, _, base = name.rpartition("/")
        folders.setdefault(folder + "/" if folder else "", []).append(base)
    pop = {f for f, files in folders.items() if f and _is_pop909(files)}
    tasks = [Task(str(path), f) for f in sorted(pop)]
    for name in names:
        if name.rpartition("/")[0] + "/" in pop or PurePosixPath(name).name.startswith("."):
            continue
        if name.lower().endswith(MIDI_SUFFIXES + XML_SUFFIXES) or name in charts:
            tasks.append(Task(str(path), name))
    return tasks


def _task_key(task: Task) -> str:
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


# --- cache ------------------------------------------------------------------------------------

_QUALITY_NAMES = tuple(QUALITIES)
_QUALITY_INDEX = {q: i for i, q in enumerate(_QUALITY_NAMES)}
_CHORD_TABLE = [Chord(r, q) for r in range(12) for q in _QUALITY_NAMES]
_ARRAYS = (("melody", np.int16), ("bass", np.int16), ("drums", np.uint16),
           ("drum_velocity", np.uint8))

Result = list[Song] | str  # songs, or the reason the file was skipped


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
        songs = []
        for song in result:
            sc = song.score
            songs.append({"bars": sc.bars, "tempo": sc.tempo_bpm, "tonic": sc.key.tonic,
                          "mode": sc.key.mode, "swing": sc.swing, "dataset": song.dataset,
                          "layers": sorted(song.layers)})
            for name, _ in _ARRAYS:
                arrays[name].append(getattr(sc, name))
            chords.append(np.array([-1 if c is None else c.root * len(_QUALITY_NAMES)
                                    + _QUALITY_INDEX[c.quality] for c in sc.chords], np.int16))
        entries.append({"key": key, "songs": songs})
    meta = {"version": READER_VERSION, "qualities": list(_QUALITY_NAMES), "entries": entries}
    payload = {name: np.concatenate(arrays[name] or [np.zeros(0, dtype)]).astype(dtype)
               for name, dtype in _ARRAYS}
    payload["chords"] = np.concatenate(chords or [np.zeros(0, np.int16)])
    payload["meta"] = np.frombuffer(json.dumps(meta | extra).encode("utf-8"), np.uint8)
    buf = io.BytesIO()
    np.savez(buf, **payload)
    return buf.getvalue()


def decode_results(path: Path, sources: dict[str, str] | None = None
                   ) -> tuple[dict, dict[str, Result]]:
    """``(meta, {cache key: result})`` of a file written from :func:`encode_results`.

    ``sources`` maps keys to the Song.source to give their songs. A missing, corrupt or
    out-of-date file reads as empty.
    """
    try:
        with np.load(path, allow_pickle=False) as z:
            meta = json.loads(z["meta"].tobytes().decode("utf-8"))
            arrays = {name: z[name] for name in ("melody", "bass", "drums", "drum_velocity",
                                                 "chords")}
        if meta.get("version") != READER_VERSION or meta.get("qualities") != list(_QUALITY_NAMES):
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
                          chords=tuple(None if t < 0 else _CHORD_TABLE[t] for t in tokens),
                          **{name: arrays[name][step:step + n_steps] for name, _ in _ARRAYS})
            songs.append(Song(sources.get(entry["key"], ""), score, frozenset(info["layers"]),
                              info["dataset"]))
            step, beat = step + n_steps, beat + n_beats
        out[entry["key"]] = songs
    return out


class _Cache:
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


# --- workers ----------------------------------------------------------------------------------


def _read_one(task: Task) -> Result:
    try:
        return task.read()
    except SkipSong as exc:
        return exc.reason


def _init_worker() -> None:
    warnings.simplefilter("ignore")
    with contextlib.suppress(ValueError, OSError):
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent handles Ctrl-C


def _read_chunk(chunk: list[tuple[int, Task]]) -> list[tuple[int, Result]]:
    return [(i, _read_one(task)) for i, task in chunk]


def _mp_context():
    """Fork where it exists (fast, and callers need no ``__main__`` guard); else spawn."""
    import multiprocessing as mp

    return mp.get_context("fork" if "fork" in mp.get_all_start_methods() else "spawn")


def _executor(workers: int) -> ProcessPoolExecutor:
    return ProcessPoolExecutor(workers, mp_context=_mp_context(), initializer=_init_worker)


def _kill(executor: ProcessPoolExecutor) -> None:
    for proc in list((getattr(executor, "_processes", None) or {}).values()):
        with contextlib.suppress(Exception):
            proc.kill()


def _run_pool(tasks: list[Task], workers: int, deliver: Callable[[int, Result], None]) -> None:
    """Read ``tasks`` in worker processes; a task that keeps killing workers is skipped.

    When a worker dies (or nothing finishes for ``STALL_S``), the chunks that were in flight get
    a strike and everything unfinished is retried; a task with two strikes runs alone. If the
    very first round finishes nothing at all, the pool itself is broken: read in this process.
    """
    queue, strikes, first = list(range(len(tasks))), Counter(), True
    while queue:
        for i in [i for i in queue if strikes[i] >= 2]:
            deliver(i, _read_alone(tasks[i]))
        queue = [i for i in queue if strikes[i] < 2]
        if not queue:
            break
        failed = _pool_round(tasks, queue, workers, deliver, strikes)
        if first and len(failed) == len(queue) and len(queue) > 2 * (workers + 1):
            warnings.warn("corpus worker processes fail to start; reading in this process",
                          RuntimeWarning, stacklevel=2)
            for i in failed:
                deliver(i, _read_one(tasks[i]))
            return
        queue, first = failed, False


def _pool_round(tasks, queue: list[int], workers: int, deliver, strikes: Counter) -> list[int]:
    suspects = [[i] for i in queue if strikes[i]]
    rest = [i for i in queue if not strikes[i]]
    size = max(1, min(8, len(rest) // (workers * 4)))
    chunks = suspects + [rest[k:k + size] for k in range(0, len(rest), size)]
    failed: list[int] = []
    with _executor(workers) as ex:
        futures = {ex.submit(_read_chunk, [(i, tasks[i]) for i in c]): n
                   for n, c in enumerate(chunks)}
        pending: set[Future] = set(futures)
        while pending:
            done, pending = wait(pending, timeout=STALL_S, return_when=FIRST_COMPLETED)
            if not done:
                _kill(ex)
                continue
            for fut in done:
                try:
                    for i, result in fut.result():
                        deliver(i, result)
                except Exception:  # BrokenProcessPool: a worker died
                    failed.append(futures[fut])
    failed.sort()
    for n in failed[:workers + 1]:
        strikes.update(chunks[n])
    return [i for n in failed for i in chunks[n]]


def _read_alone(task: Task) -> Result:
    with _executor(1) as ex:
        fut = ex.submit(_read_chunk, [(0, task)])
        try:
            return fut.result(timeout=FILE_TIME_LIMIT_S + STALL_S)[0][1]
        except Exception:
            _kill(ex)
            return "reader crashed: the worker process died or hung"


@contextlib.contextmanager
def _progress_bar(total: int, enabled: bool) -> Iterator[Callable[[Result], None]]:
    if not enabled or total == 0:
        yield lambda result: None
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
               TimeElapsedColumn(),
               TextColumn("kept {task.fields[kept]} skipped {task.fields[skip]}"))
    # No refresh thread: worker processes are forked while the bar is up.
    with Progress(*columns, console=Console(stderr=True), auto_refresh=False) as bar:
        job = bar.add_task("reading corpus", total=total, kept=0, skip=0)
        counts = Counter()
        last = [0.0]

        def advance(result: Result) -> None:
            counts["skip" if isinstance(result, str) else "kept"] += 1
            now = time.monotonic()
            refresh = now - last[0] > 0.1 or sum(counts.values()) == total
            last[0] = now if refresh else last[0]
            bar.update(job, advance=1, kept=counts["kept"], skip=counts["skip"], refresh=refresh)

        yield advance


def _read_all(tasks: list[Task], workers: int, progress: bool,
              deliver: Callable[[int, Result], None]) -> None:
    with _progress_bar(len(tasks), progress) as advance:

        def both(i: int, result: Result) -> None:
            deliver(i, result)
            advance(result)

        if workers <= 1 or len(tasks) <= 2:
            for i, task in enumerate(tasks):
                both(i, _read_one(task))
        else:
            _run_pool(tasks, min(workers, len(tasks)), both)


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
    keys = [_task_key(t) for t in tasks]
    sources = {k: t.source for k, t in zip(keys, tasks, strict=True)}
    signature = hashlib.sha1("".join(keys).encode()).hexdigest()
    cache = _Cache(cache_dir if cache_dir is not None else default_cache_dir())
    bundle = cache.bundle_path(paths, max_files)
    meta, known = decode_results(bundle, sources)
    results: list[Result | None] = [known.get(k) for k in keys]
    from_cache = sum(r is not None for r in results)
    if meta.get("signature") != signature:
        from_cache += _load_entries(cache, keys, sources, results)
        todo = [i for i, r in enumerate(results) if r is None]

        def deliver(j: int, result: Result) -> None:
            results[todo[j]] = result
            cache.save(cache.entry_path(keys[todo[j]]), [(keys[todo[j]], result)])

        _read_all([tasks[i] for i in todo], workers or os.cpu_count() or 1, progress, deliver)
        cache.save(bundle, list(zip(keys, results, strict=True)), signature=signature)
    return _finish(tasks, results, from_cache, started)


def _load_entries(cache: _Cache, keys: list[str], sources: dict[str, str],
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
