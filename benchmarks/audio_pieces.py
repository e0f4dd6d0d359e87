"""Where the audio stage's CPU goes: each piece of it alone, one after another, in CPU seconds.

``bench_audio.py`` times the stage as it runs (threads overlapping); this script runs the
same song's pieces one at a time (FluidSynth per layer, each effect of each layer chain, the
stem files, the master bus's noise, each master effect, the normalisation), through the
functions ``produce`` calls with each effect timed on its way, and prints their
process time beside the budget a real-time factor leaves on this machine's cores. With
``--preset`` the song is that preset's, composed at ``--seed`` for ``--bars`` and produced with
its own layers, master and render settings (its sections' added effects left out).

    .venv/bin/python benchmarks/audio_pieces.py [--seconds 180] [--target 60]
    .venv/bin/python benchmarks/audio_pieces.py --preset rainy-night --seed 1 --bars 56
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # runnable from a plain checkout
sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_audio import lofi_preset, synthetic_song  # noqa: E402

from arranger.audio import mix  # noqa: E402
from arranger.audio.ahead import open_soundfont  # noqa: E402
from arranger.audio.config import EffectSpec, RenderSettings  # noqa: E402
from arranger.audio.files import read_audio  # noqa: E402
from arranger.audio.fx import Effect  # noqa: E402
from arranger.audio.render import render_layer, song_length_samples  # noqa: E402
from arranger.audio.soundfont import find_soundfont  # noqa: E402
from arranger.audio.tags import song_tags, write_tagged_wav  # noqa: E402

SWING, SEED = 0.15, 0  # the benchmark song's (bench_audio.run)


class Pieces:
    """Process seconds per named piece, summed when a name comes back. A piece timed inside
    another (an effect inside ``process_stem``) is counted as itself only: the outer piece
    keeps the rest of its time."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = defaultdict(float)
        self._inner = 0.0  # seconds of the pieces timed inside the one running

    def __call__(self, name: str, fn, *args, **kwargs):
        outer, self._inner = self._inner, 0.0
        start = time.process_time()
        result = fn(*args, **kwargs)
        spent = time.process_time() - start
        self.seconds[name] += spent - self._inner
        self._inner = outer + spent
        return result

    def timed(self, name: str, effect: Effect) -> Effect:
        """``effect``, its calls timed as the piece ``name``."""
        return lambda audio, rate: self(name, effect, audio, rate)


@contextmanager
def timed_layer_chain(pieces: Pieces, layer: str) -> Iterator[None]:
    """The layer chains that ``mix`` builds meanwhile have each effect timed on its own."""
    build = mix.build_chain

    def timed_build(specs: Sequence[EffectSpec], seed: int = 0) -> list[Effect]:
        return [pieces.timed(f"{layer} {spec.type}", effect)
                for spec, effect in zip(specs, build(specs, seed), strict=True)]

    mix.build_chain = timed_build
    try:
        yield
    finally:
        mix.build_chain = build


def layer_stems(pieces: Pieces, midi, sounds, render: RenderSettings, n: int, folder: Path,
                swing: float = SWING) -> np.ndarray:
    """Render, process (``mix.process_stem``), write and read back every layer; the stems'
    sum, (2, n)."""
    total, tags = np.zeros((2, n), np.float32), song_tags(midi, "pieces")
    with open_soundfont(find_soundfont(render.soundfont or None), render.sample_rate) as font:
        for name, sound in sounds.items():
            raw = pieces(f"render {name}", render_layer, font, midi, name, n, swing=swing,
                         humanize_ms=render.humanize_ms,
                         humanize_velocity=render.humanize_velocity, seed=SEED,
                         program=sound.program)
            with timed_layer_chain(pieces, name):
                stem = pieces("stems: pan, level, ceiling", mix.process_stem, raw, sound,
                              render.sample_rate, SEED, name)
            path = folder / f"{name}.wav"
            pieces("stems: write", write_tagged_wav, path, stem, render.sample_rate, tags)
            total += pieces("stems: read back", read_audio, path)[0]
    return total


def master(pieces: Pieces, total: np.ndarray, master_sound, rate: int) -> None:
    """The master bus's noise, each master effect on each channel, the normalisation
    (``mix.master_measured``)."""
    noise = pieces("master: noise", mix.master_noise, master_sound, SEED, total.shape, rate)
    chains = [[pieces.timed(f"master: {type(effect).__name__}", effect) for effect in chain]
              for chain in mix.master_chains(master_sound, SEED, total.shape, rate)]
    with ThreadPoolExecutor(1) as one:  # the channels in turn: each effect's time its own
        pieces("master: sum, checks, normalise", mix.master_measured, total, master_sound, rate,
               SEED, chains, one, noise)


def preset_song(name: str, seed: int, bars: int):
    """(midi, layer sounds, master, render settings, swing) of ``name``'s song at ``seed``."""
    from arranger.compose.generate import compose_songs
    from arranger.midi_io import to_midi
    from arranger.preset import load_preset

    preset = load_preset(name)
    score = compose_songs(preset, seed=seed, bars=bars)[0]
    return (to_midi(score, preset.programs()), preset.layers, preset.master, preset.render,
            score.swing)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=180.0, help="benchmark song length")
    parser.add_argument("--preset", default="", help="a preset's song instead of the benchmark's")
    parser.add_argument("--seed", type=int, default=1, help="the preset song's seed")
    parser.add_argument("--bars", type=int, default=56, help="the preset song's bars")
    parser.add_argument("--target", type=float, default=60.0, help="real-time factor asked")
    args = parser.parse_args()
    if args.preset:
        midi, sounds, master_sound, render, swing = preset_song(args.preset, args.seed, args.bars)
    else:
        (sounds, master_sound), render = lofi_preset(), RenderSettings()
        midi, swing = synthetic_song(args.seconds), SWING
    pieces = Pieces()
    n = song_length_samples(midi, render.sample_rate, swing=swing,
                            humanize_ms=render.humanize_ms, tail_seconds=render.tail_seconds)
    with tempfile.TemporaryDirectory() as folder:
        total = layer_stems(pieces, midi, sounds, render, n, Path(folder), swing)
    master(pieces, total, master_sound, render.sample_rate)
    report(pieces.seconds, n / render.sample_rate, args.target, len(sounds))


def report(seconds: dict[str, float], length_s: float, target: float, layers: int) -> None:
    cores, spent = len(os.sched_getaffinity(0)), sum(seconds.values())
    print(f"{length_s:.0f} s song, {layers} layers; pieces one at a time, process seconds")
    for name, value in sorted(seconds.items(), key=lambda item: -item[1]):
        if value < 0.0005:  # (a piece this preset does not use, e.g. a stem's loudness)
            continue
        print(f"  {name:<32} {value:6.3f} s  {100 * value / spent:5.1f} %")
    budget = cores * length_s / target
    print(f"total {spent:.2f} CPU s: at best {length_s * cores / spent:.1f}x real time on "
          f"{cores} cores with nothing serial; {target:g}x leaves {budget:.2f} CPU s")


if __name__ == "__main__":
    main()
