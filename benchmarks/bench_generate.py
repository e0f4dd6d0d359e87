"""Generation speed: the stateful coordinator vs re-running a 100-step window per step.

Run: .venv/bin/python benchmarks/bench_generate.py [--weights DIR] [--bars 64]
Both sides use the same models, plan and seed; only how the LSTM state is obtained differs.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from arranger.coordinator import Models, Plan, compose
from arranger.weights import load_models
from tracks.model import LayerWeights


class WindowedModel(torch.nn.Module):
    """Wraps a layer model so that every step re-runs the last ``window`` steps from scratch."""

    def __init__(self, model: torch.nn.Module, window: int = 100) -> None:
        super().__init__()
        self.model, self.window, self.config = model, window, model.config

    def forward(self, prev, cond, multi=None, state=None):
        if state is None:
            state = (prev, cond, multi)
        else:
            state = (torch.cat([state[0], prev], 1)[:, -self.window:],
                     torch.cat([state[1], cond], 1)[:, -self.window:],
                     None if multi is None else torch.cat([state[2], multi], 1)[:, -self.window:])
        logits, _ = self.model(*state, None)
        return logits[:, -1:], state


def windowed(models: Models, window: int = 100) -> Models:
    def wrap(w: LayerWeights) -> LayerWeights:
        return LayerWeights(WindowedModel(w.model, window).eval(), w.vocab, w.card)

    return Models(wrap(models.chords), wrap(models.melody), wrap(models.drums))


@dataclass
class Timing:
    seconds: float
    runs: int


def time_compose(models: Models, bars: int, variations: int = 1, repeat: int = 3) -> Timing:
    plan = Plan(bars=bars)
    compose(models, Plan(bars=2), seed=0)  # warm-up
    best = float("inf")
    for r in range(repeat):
        t = time.perf_counter()
        compose(models, plan, seed=r, variations=variations)
        best = min(best, time.perf_counter() - t)
    return Timing(best, repeat)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--weights", type=Path, default=None)
    ap.add_argument("--bars", type=int, default=64)
    args = ap.parse_args()
    models = load_models(args.weights)
    one = time_compose(models, args.bars)
    sixteen = time_compose(models, args.bars, variations=16, repeat=2)
    win1 = time_compose(windowed(models), args.bars, repeat=1)
    win16 = time_compose(windowed(models), args.bars, variations=16, repeat=1)
    print(f"{args.bars} bars, 3 layer models, CPU, {torch.get_num_threads()} torch threads")
    print(f"  stateful, batch 1     : {one.seconds:7.3f} s")
    ratio = sixteen.seconds / one.seconds
    print(f"  stateful, batch 16    : {sixteen.seconds:7.3f} s  ({ratio:.2f}x the time of one)")
    print(f"  100-step window, b 1  : {win1.seconds:7.3f} s  -> stateful is "
          f"{win1.seconds / one.seconds:.1f}x faster")
    print(f"  100-step window, b 16 : {win16.seconds:7.3f} s  -> stateful is "
          f"{win16.seconds / sixteen.seconds:.1f}x faster")


if __name__ == "__main__":
    main()
