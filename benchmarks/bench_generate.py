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

from arranger.compose.coordinator import Models, compose
from arranger.compose.plan import Plan
from arranger.song_settings import SongSettings
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


def bench_plan(bars: int) -> Plan:
    """The plan timed: default song settings without drum loop or gap pressure (what the
    timings were first measured on: a drum loop forces half the drum steps)."""
    return Plan(SongSettings(bars=bars, drum_loop_bars=0, melody_gap_bars=0.0))


@dataclass
class Timing:
    seconds: float  # best wall time
    runs: int
    cpu_seconds: float = 0.0  # best process time: the figure to compare on a busy machine
    blas_threads: int = 1  # what generation started with then (it follows the load average)


TARGET_B1_SECONDS = 0.35  # issue #15: 64 bars at batch 1, whole
TARGET_B16_RATIO = 2.0  # ... and 16 variations in at most this many times one


def time_compose(models: Models, bars: int, variations: int = 1, repeat: int = 3,
                 device: torch.device | None = None) -> Timing:
    """Best of ``repeat`` runs; ``device`` None is the numpy fast path, else PyTorch there."""
    from arranger.compose.threads import default_blas_threads

    plan = bench_plan(bars)
    compose(models, bench_plan(2), seed=0, device=device)  # warm-up
    threads = default_blas_threads()
    best = cpu = float("inf")
    for r in range(repeat):
        t, c = time.perf_counter(), time.process_time()
        compose(models, plan, seed=r, variations=variations, device=device)
        best, cpu = min(best, time.perf_counter() - t), min(cpu, time.process_time() - c)
    return Timing(best, repeat, cpu, threads)


def model_seconds(models: Models, bars: int, repeat: int = 3) -> float:
    """Best of ``repeat``: seconds inside the numpy LSTM steps of one batch-1 song (the rest of
    the time is sampling, masks and conditions)."""
    from tracks.inference import NumpyStep

    original, spent = NumpyStep.step, [0.0]

    def timed(self, *args, **kwargs):
        start = time.perf_counter()
        out = original(self, *args, **kwargs)
        spent[0] += time.perf_counter() - start
        return out

    best = float("inf")
    NumpyStep.step = timed
    try:
        for r in range(repeat):
            spent[0] = 0.0
            compose(models, bench_plan(bars), seed=r)
            best = min(best, spent[0])
    finally:
        NumpyStep.step = original
    return best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--weights", type=Path, default=None)
    ap.add_argument("--bars", type=int, default=64)
    args = ap.parse_args()
    report(load_models(args.weights), args.bars)


def report(models: Models, bars: int) -> None:
    """Print the four timings side by side, as ratios."""
    cpu = torch.device("cpu")
    one, sixteen = time_compose(models, bars), time_compose(models, bars, 16, repeat=2)
    torch1 = time_compose(models, bars, device=cpu)
    torch16 = time_compose(models, bars, 16, repeat=2, device=cpu)
    win1 = time_compose(windowed(models), bars, repeat=1, device=cpu)
    win16 = time_compose(windowed(models), bars, 16, repeat=1, device=cpu)
    model = model_seconds(models, bars)
    print(f"{bars} bars, 3 layer models, CPU (generation_mode: 1 torch thread, "
          f"{one.blas_threads} and {sixteen.blas_threads} BLAS threads at b1 and b16: they "
          "follow the load average)")
    print(f"  numpy stateful    b1 {one.seconds:6.3f} s   b16 {sixteen.seconds:6.3f} s "
          f"({sixteen.seconds / one.seconds:.2f}x one; targets <= {TARGET_B1_SECONDS} s and "
          f"<= {TARGET_B16_RATIO:g}x)")
    print(f"    process time    b1 {one.cpu_seconds:6.3f} s   b16 {sixteen.cpu_seconds:6.3f} s "
          "(all threads: with 2 BLAS threads on a busy machine, wall time is not the work)")
    print(f"  of which LSTM steps (model time) at b1: {model:.3f} s; sampling, masks and "
          f"conditions: {one.seconds - model:.3f} s")
    print(f"  torch stateful    b1 {torch1.seconds:6.3f} s   b16 {torch16.seconds:6.3f} s")
    print(f"  torch 100-window  b1 {win1.seconds:6.3f} s   b16 {win16.seconds:6.3f} s")
    print(f"  carried state vs re-running the window (same torch model): "
          f"{win1.seconds / torch1.seconds:.1f}x at b1, {win16.seconds / torch16.seconds:.1f}x "
          f"at b16; numpy path vs window: {win1.seconds / one.seconds:.1f}x (target >= 20x)")


if __name__ == "__main__":
    main()
