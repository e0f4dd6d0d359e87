"""Reading corpus files safely: a time limit per file, worker processes, retries, progress.

A task is any object whose ``read()`` returns songs or raises :class:`SkipSong`.
:func:`run_pool` reads tasks in forked worker processes: a file that hangs or kills its worker
is retried alone and then skipped, and a broken pool falls back to reading in this process.
"""

from __future__ import annotations

import contextlib
import signal
import threading
import time
import warnings
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait

from arranger.corpus.piece import Result, SkipSong, Song

FILE_TIME_LIMIT_S = 60.0  # per file, enforced in the worker
STALL_S = 300.0  # no result from any worker for this long: the pool is restarted


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


def guarded(read: Callable[[], list[Song]]) -> list[Song]:
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


def read_one(task) -> Result:
    """``task.read()``, or the reason it was skipped (a task is any object with ``read()``)."""
    try:
        return task.read()
    except SkipSong as exc:
        return exc.reason


def _init_worker() -> None:
    warnings.simplefilter("ignore")
    with contextlib.suppress(ValueError, OSError):
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent handles Ctrl-C


def _read_chunk(chunk: list[tuple[int, object]]) -> list[tuple[int, Result]]:
    return [(i, read_one(task)) for i, task in chunk]


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


def run_pool(tasks: list, workers: int, deliver: Callable[[int, Result], None]) -> None:
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
                deliver(i, read_one(tasks[i]))
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


def _read_alone(task) -> Result:
    with _executor(1) as ex:
        fut = ex.submit(_read_chunk, [(0, task)])
        try:
            return fut.result(timeout=FILE_TIME_LIMIT_S + STALL_S)[0][1]
        except Exception:
            _kill(ex)
            return "reader crashed: the worker process died or hung"


@contextlib.contextmanager
def progress_bar(total: int, enabled: bool) -> Iterator[Callable[[Result], None]]:
    """A callback that advances a progress bar (on stderr) by one result; a no-op if disabled."""
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
