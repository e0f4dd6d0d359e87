"""How many threads generation uses, and giving the second one up when its core is taken.

numpy's products run ~1.3x faster on two BLAS threads even at batch 1 (the weights stream
through two cores' caches), but a second thread is only worth it while it has a core to itself:
OpenBLAS makes every product wait for all its threads, so on a machine where something else
takes a core each of ~7,000 products a song waits for the scheduler (16 variations of 64 bars
took 16 s instead of 2.5 s beside a running test). The thread count never changes a result (see
:class:`generation_mode`), so it follows the load: from the load average at the start, then bar
by bar (:func:`keep_pace`).
"""

from __future__ import annotations

import os
import sys
import time

# Two BLAS threads running side by side spend ~2 CPU seconds a second (they spin while they
# wait for each other's share); under this, one of them kept waiting for a core.
SIDE_BY_SIDE = 1.5
PACE_WINDOW_S = 0.05  # wall time judged at once: bars are 5-50 ms


def default_blas_threads() -> int:
    """Two BLAS threads where a second core is free, else one.

    On a busy machine the second thread waits for a core at every product: 64 bars took
    25-31 s on two threads at load 10 on 2 cores, 2 s on one.
    """
    cores = len(os.sched_getaffinity(0))
    free = cores - os.getloadavg()[0]
    return min(2, cores) if free >= 1.0 else 1


_ACTIVE: list[generation_mode] = []  # the generation_mode blocks entered, innermost last


class generation_mode:
    """One PyTorch thread, no oneDNN and at most two BLAS threads while generating.

    Step-by-step LSTM calls through oneDNN are ~30x slower on this CPU build, and one PyTorch
    thread is the fastest at batch sizes this small. Results do not depend on the BLAS thread
    count: BLAS shares a product out by output rows and columns, never splitting a sum, so
    every output is added up in the same order (a test checks it). PyTorch is only configured
    when something already imported it (its device path).
    """

    def __init__(self, blas_threads: int | None = None) -> None:
        """``blas_threads`` None: as many as the enclosing block has (a benchmark or a test that
        pins them around ``compose``), else :func:`default_blas_threads`."""
        inherited = _ACTIVE[-1].blas_threads if _ACTIVE else None
        self.blas_threads = blas_threads or inherited or default_blas_threads()

    def __enter__(self) -> generation_mode:
        from threadpoolctl import threadpool_limits

        self.torch = sys.modules.get("torch")
        if self.torch is not None:
            self.saved = self.torch.get_num_threads(), self.torch.backends.mkldnn.enabled
            self.torch.set_num_threads(1)
            self.torch.backends.mkldnn.enabled = False
        self.blas = threadpool_limits(self.blas_threads)
        self.since = time.perf_counter(), time.process_time()
        _ACTIVE.append(self)
        return self

    def __exit__(self, *exc) -> None:
        _ACTIVE.remove(self)
        if self.torch is not None:
            self.torch.set_num_threads(self.saved[0])
            self.torch.backends.mkldnn.enabled = self.saved[1]
        self.blas.restore_original_limits()

    def pace(self) -> None:
        """Drop to one BLAS thread for the rest of the block once two have not run side by
        side over the last :data:`PACE_WINDOW_S` (the process's CPU time under
        :data:`SIDE_BY_SIDE` times the wall time)."""
        if self.blas_threads < 2:
            return
        wall, cpu = time.perf_counter() - self.since[0], time.process_time() - self.since[1]
        if wall < PACE_WINDOW_S:
            return
        if cpu < SIDE_BY_SIDE * wall:
            from threadpoolctl import threadpool_limits

            threadpool_limits(1)  # undone with the rest by __exit__ (restore_original_limits)
            self.blas_threads = 1
        self.since = time.perf_counter(), time.process_time()


def keep_pace() -> None:
    """Between bars of a generation: let the innermost :class:`generation_mode` (if any)
    give up its second BLAS thread when that thread's core is taken."""
    if _ACTIVE:
        _ACTIVE[-1].pace()
