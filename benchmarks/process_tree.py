"""Peak memory of a process and all its descendants, sampled from /proc while they run.

``ru_maxrss`` from ``wait4`` is no measure of a command's tree: it is the largest single
process's peak, and it is inherited across fork + exec (a child forked from a big benchmark
process starts at the parent's peak). So this samples the tree instead, every ``interval``:

- ``peak_mb``, the tree's footprint: the root's resident size (``/proc/PID/statm``) plus each
  descendant's private pages (``Private_Clean + Private_Dirty`` of ``smaps_rollup``). A child
  forked from the root shares the root's pages until it writes them; counting only its private
  ones counts every page once. ``smaps_rollup`` walks the page tables (~50 ms for 1 GB on a
  loaded core), so a descendant's private size is re-read every ``scan_every`` samples only;
- ``peak_rss_sum_mb``: the summed resident sizes, shared pages counted twice (an overestimate);
- ``hwm_sum_mb``: the sum of each process's own peak (``VmHWM``, exact per process and not
  inherited: it belongs to the process's own address space), an upper bound of the tree's peak.

Every ``scan_every`` samples /proc is also scanned for new descendants (this kernel has no
``/proc/PID/task/TID/children``); a spike shorter than ``interval`` can be missed.
"""

from __future__ import annotations

import os
import threading
import time

PAGE_BYTES = os.sysconf("SC_PAGE_SIZE")
MB = 1024 * 1024


def _read(path: str) -> bytes:
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError:  # the process has ended meanwhile
        return b""


def parent_of(stat: bytes) -> int:
    """The parent pid in a ``/proc/PID/stat`` line (the name in parentheses may hold spaces)."""
    return int(stat[stat.rfind(b")") + 2:].split()[1])


def descendants(root: int) -> set[int]:
    """``root`` and every process descended from it, alive now."""
    children: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            stat = _read(f"/proc/{entry.name}/stat")
            if stat:
                children.setdefault(parent_of(stat), []).append(int(entry.name))
    tree, todo = set(), [root]
    while todo:
        pid = todo.pop()
        tree.add(pid)
        todo += [c for c in children.get(pid, ()) if c not in tree]
    return tree


def resident_bytes(pid: int) -> int:
    """The resident size of ``pid`` now (0 once it has ended)."""
    fields = _read(f"/proc/{pid}/statm").split()
    return int(fields[1]) * PAGE_BYTES if len(fields) > 1 else 0


def private_bytes(pid: int) -> int:
    """Pages of ``pid`` no other process maps (0 once it has ended)."""
    total = 0
    for line in _read(f"/proc/{pid}/smaps_rollup").splitlines():
        if line.startswith((b"Private_Clean:", b"Private_Dirty:")):
            total += int(line.split()[1]) * 1024
    return total


def high_water_bytes(pid: int) -> int:
    """``VmHWM`` of ``pid``: the peak resident size of its own address space (0 if ended)."""
    for line in _read(f"/proc/{pid}/status").splitlines():
        if line.startswith(b"VmHWM:"):
            return int(line.split()[1]) * 1024
    return 0


class TreePeak:
    """``with TreePeak(pid) as peak: ...wait for pid...``; then ``peak.figures()``."""

    def __init__(self, root: int, interval: float = 0.01, scan_every: int = 10) -> None:
        self.root, self.interval, self.scan_every = root, interval, scan_every
        self.tree = {root}
        self.high_water: dict[int, int] = {}
        self.private: dict[int, int] = {}  # descendants' private bytes, last read
        self.peak_sum = self.peak = 0
        self.samples = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> TreePeak:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.is_set():
            if self.samples % self.scan_every == 0:
                self.tree |= descendants(self.root)
                self.private = {pid: private_bytes(pid) for pid in self.tree - {self.root}}
            for pid in self.tree:  # a handful of processes: cheap to read every time
                self.high_water[pid] = max(self.high_water.get(pid, 0), high_water_bytes(pid))
            resident = {pid: resident_bytes(pid) for pid in self.tree}
            self.peak_sum = max(self.peak_sum, sum(resident.values()))
            self.peak = max(self.peak, resident[self.root] + sum(
                self.private[pid] for pid in self.private if resident[pid]))  # alive ones
            self.samples += 1
            time.sleep(self.interval)

    def figures(self) -> dict[str, float | int]:
        """The peaks in MB, the processes seen and the samples taken."""
        return {"peak_mb": round(self.peak / MB, 1),
                "peak_rss_sum_mb": round(self.peak_sum / MB, 1),
                "hwm_sum_mb": round(sum(self.high_water.values()) / MB, 1),
                "processes": len(self.tree), "samples": self.samples}
