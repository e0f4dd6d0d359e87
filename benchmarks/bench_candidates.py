"""What choosing among candidates costs: seconds per 32-bar song for K candidates per song.

Run: .venv/bin/python benchmarks/bench_candidates.py [--preset rainy-night] [--k 1 4 8 16 24]
     [--songs 1] [--repeat 3] [--blas-threads N]

Each K writes ``--songs`` songs of the preset (its own candidates setting replaced by K) as one
batch through :func:`arranger.compose.coordinator.compose`, i.e. generation plus the checks
that rank the candidates, the median of ``--repeat`` runs after one warm-up. ``--blas-threads``
sets the BLAS threads generation uses (default: generation_mode's own choice, at most 2).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from arranger.compose import coordinator  # noqa: E402
from arranger.preset import load_preset  # noqa: E402
from arranger.weights import load_models  # noqa: E402


def seconds_per_song(models: coordinator.Models, preset: str, k: int, songs: int,
                     repeat: int) -> float:
    """Median wall seconds per song of ``songs`` 32-bar songs written with ``k`` candidates."""
    plan = load_preset(preset).plan(32, bass_seed=0).with_song(candidates=k)
    coordinator.compose(models, plan, seed=0, variations=songs)  # warm-up
    runs = []
    for r in range(repeat):
        start = time.perf_counter()
        coordinator.compose(models, plan, seed=r + 1, variations=songs)
        runs.append((time.perf_counter() - start) / songs)
    return statistics.median(runs)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", default="rainy-night")
    ap.add_argument("--k", type=int, nargs="+", default=[1, 4, 8, 16, 24])
    ap.add_argument("--songs", type=int, default=1)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--blas-threads", type=int, default=None)
    args = ap.parse_args()
    if args.blas_threads:
        default_init = coordinator.generation_mode.__init__

        def init(self, blas_threads=None):
            default_init(self, args.blas_threads)

        coordinator.generation_mode.__init__ = init
    models = load_models()
    print(f"{args.preset}, {args.songs} song(s) of 32 bars per batch, median of {args.repeat}")
    for k in args.k:
        s = seconds_per_song(models, args.preset, k, args.songs, args.repeat)
        print(f"K={k:3d}: {s:6.2f} s per song")


if __name__ == "__main__":
    main()
