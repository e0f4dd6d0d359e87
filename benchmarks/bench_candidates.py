"""What choosing among candidates costs: seconds per 32-bar song for K candidates per song.

Run: .venv/bin/python benchmarks/bench_candidates.py [--preset rainy-night] [--k 1 4 8 16 24]
     [--songs 1] [--bars 32] [--repeat 3] [--blas-threads N]

Each K writes ``--songs`` songs of the preset (its own candidates setting replaced by K) as one
batch through :func:`arranger.compose.coordinator.compose`, i.e. generation plus the checks
that rank the candidates, the median of ``--repeat`` runs after one warm-up, in wall and in CPU
seconds (on a shared machine the CPU figure at one BLAS thread is the steadier one).
``--blas-threads`` sets the BLAS threads generation uses (default: generation_mode's own
choice, at most 2).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from arranger.compose import coordinator, threads  # noqa: E402
from arranger.preset import load_preset  # noqa: E402
from arranger.weights import load_models  # noqa: E402


def seconds_per_song(models: coordinator.Models, preset: str, k: int, songs: int,
                     repeat: int, bars: int = 32) -> tuple[float, float]:
    """Median wall and CPU seconds per song of ``songs`` songs of ``bars`` bars written with
    ``k`` candidates."""
    plan = load_preset(preset).plan(bars, bass_seed=0).with_song(candidates=k)
    coordinator.compose(models, plan, seed=0, variations=songs)  # warm-up
    walls, cpus = [], []
    for r in range(repeat):
        start, cpu = time.perf_counter(), time.process_time()
        coordinator.compose(models, plan, seed=r + 1, variations=songs)
        walls.append((time.perf_counter() - start) / songs)
        cpus.append((time.process_time() - cpu) / songs)
    return statistics.median(walls), statistics.median(cpus)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", default="rainy-night")
    ap.add_argument("--k", type=int, nargs="+", default=[1, 4, 8, 16, 24])
    ap.add_argument("--songs", type=int, default=1)
    ap.add_argument("--bars", type=int, default=32)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--blas-threads", type=int, default=None)
    args = ap.parse_args()
    if args.blas_threads:
        default_init = threads.generation_mode.__init__

        def init(self, blas_threads=None):
            default_init(self, args.blas_threads)

        threads.generation_mode.__init__ = init
    models = load_models()
    print(f"{args.preset}, {args.songs} song(s) of {args.bars} bars per batch, median of "
          f"{args.repeat}")
    for k in args.k:
        wall, cpu = seconds_per_song(models, args.preset, k, args.songs, args.repeat, args.bars)
        print(f"K={k:3d}: {wall:6.2f} s per song (CPU {cpu:.2f} s)")


if __name__ == "__main__":
    main()
