"""The studio's job queue: jobs run in a worker process, one song's jobs strictly in order.

The web server only queues and reports: the work (composing, rendering) runs in a separate
process, so the server answers at once however busy the worker is, and a crash in the audio
stack cannot take the server down. Job state lives here, in the server, so every browser tab
sees the same thing.
"""

from __future__ import annotations

import multiprocessing as mp
import sys
import threading
import time
import traceback
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field

STATES = ("queued", "running", "done", "error")
_QUEUE = None  # in the worker process: where it says that a job has started


@dataclass
class Job:
    """One unit of work on one song."""

    id: int
    song: str
    kind: str  # "generate", "regenerate" or "undo"
    label: str  # what it does, for people: "regenerate drums, bars 9-16"
    status: str = "queued"
    error: str = ""
    queued_at: float = field(default_factory=time.time)
    started_at: float | None = None
    finished_at: float | None = None

    def to_dict(self) -> dict:
        end = self.finished_at or time.time()
        return {"id": self.id, "kind": self.kind, "label": self.label, "status": self.status,
                "error": self.error,
                "seconds": round(end - self.started_at, 1) if self.started_at else 0.0}


class Worker:
    """Runs jobs in ``processes`` worker processes; jobs of one song never overlap."""

    def __init__(self, processes: int = 1, warm_up: Callable[[], None] | None = None) -> None:
        self._lock = threading.Lock()
        self._jobs: list[Job] = []
        self._waiting: dict[str, deque] = {}  # song -> jobs queued behind its running one
        self._busy: set[str] = set()
        self._processes = processes
        self._started = mp.get_context("spawn").Queue()
        self._pool = self._new_pool()
        self._listener = threading.Thread(target=self._listen, name="studio-jobs", daemon=True)
        self._listener.start()
        self._warm = self._pool.submit(warm_up) if warm_up is not None else None

    def submit(self, song: str, kind: str, label: str, fn: Callable, *args) -> Job:
        """Queue ``fn(*args)`` as a job on ``song``; it starts when the song's earlier jobs
        are done."""
        with self._lock:
            job = Job(len(self._jobs) + 1, song, kind, label)
            self._jobs.append(job)
            self._waiting.setdefault(song, deque()).append((job, fn, args))
            self._next(song)
        return job

    @property
    def starting(self) -> bool:
        """True while the worker process is still importing the engine."""
        return self._warm is not None and not self._warm.done()

    def jobs(self, song: str | None = None) -> list[Job]:
        """All jobs (of one song), oldest first."""
        with self._lock:
            return [j for j in self._jobs if song is None or j.song == song]

    def songs(self) -> list[str]:
        """Songs that have had a job, newest first."""
        with self._lock:
            return list(dict.fromkeys(j.song for j in reversed(self._jobs)))

    def wait_idle(self, timeout: float = 60.0) -> bool:
        """Wait until no job is queued or running (for tests and shutdown)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if all(j.status in ("done", "error") for j in self.jobs()):
                return True
            time.sleep(0.05)
        return False

    def close(self) -> None:
        """Drop queued jobs, stop the worker process and the listener."""
        with self._lock:
            for queue in self._waiting.values():
                for job, _, _ in queue:
                    job.status, job.error = "error", "the studio was stopped before this ran"
            self._waiting.clear()
        self._pool.shutdown(wait=True, cancel_futures=True)
        self._started.put(None)
        self._listener.join(timeout=5)

    # --- internals (called with self._lock held unless said) ----------------------------

    def _new_pool(self) -> ProcessPoolExecutor:
        # spawn, not fork: the server has threads, and a forked child could inherit a held lock.
        return ProcessPoolExecutor(self._processes, mp_context=mp.get_context("spawn"),
                                   initializer=_init_worker, initargs=(self._started,))

    def _next(self, song: str) -> None:
        queue = self._waiting.get(song)
        if song in self._busy or not queue:
            return
        job, fn, args = queue.popleft()
        self._busy.add(song)
        try:
            future = self._pool.submit(_run, job.id, fn, args)
        except BrokenProcessPool:  # the worker died: later jobs get a new one
            self._pool = self._new_pool()
            future = self._pool.submit(_run, job.id, fn, args)
        future.add_done_callback(lambda f, job=job: self._finished(job, f))

    def _finished(self, job: Job, future: Future) -> None:
        """Runs on a pool thread (without the lock) when a job ends."""
        error = _error_of(future)
        with self._lock:
            job.status, job.error = ("error", error) if error else ("done", "")
            job.finished_at = time.time()
            job.started_at = job.started_at or job.finished_at
            self._busy.discard(job.song)
            self._next(job.song)

    def _listen(self) -> None:
        while (message := self._started.get()) is not None:
            job_id, at = message
            with self._lock:
                job = self._jobs[job_id - 1]
                if job.status == "queued":
                    job.status, job.started_at = "running", at


def _error_of(future: Future) -> str:
    """The job's one-line error ('' when it succeeded)."""
    if future.cancelled():
        return "the studio was stopped before this ran"
    exc = future.exception()
    if isinstance(exc, BrokenProcessPool):
        return "the worker process died (out of memory?); the song is as it was before"
    if exc is not None:
        return f"internal error: {type(exc).__name__}: {exc}".splitlines()[0]
    return future.result() or ""


def _init_worker(started) -> None:
    global _QUEUE
    _QUEUE = started


def _run(job_id: int, fn: Callable, args: tuple) -> str:
    """In the worker: run one job; returns '' or the one-line error for bad input."""
    from arranger.preset import PresetError
    from tracks.weights_file import WeightsError

    if _QUEUE is not None:
        _QUEUE.put((job_id, time.time()))
    try:
        fn(*args)
    except (PresetError, WeightsError, ValueError, FileNotFoundError, FileExistsError) as e:
        return str(e).splitlines()[0] if str(e) else type(e).__name__
    except Exception as e:
        traceback.print_exc(file=sys.stderr)  # a bug: the server's log gets the whole story
        return f"internal error: {type(e).__name__}: {e}".splitlines()[0]
    return ""
