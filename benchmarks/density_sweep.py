"""Density sweep: melody notes, drum hits and chord changes per bar, and the songs' checks,
as ``[layers.<layer>] density`` rises, over 8 songs per value of a preset as shipped (its
candidates included, its sections left out: the figures are per bar played).

``python benchmarks/density_sweep.py [PRESET] [BARS]``
"""

from __future__ import annotations

import sys
from dataclasses import replace
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from arranger.compose.coordinator import compose
from arranger.evaluation.checks import chords_move, expect_of, groove
from arranger.preset import load_preset
from arranger.weights import load_models

SONGS = 8


def changes_of(score) -> int:
    """Beats whose chord differs from the beat before's."""
    return sum(a != b for a, b in zip(score.chords[:-1], score.chords[1:], strict=True))


def main(name: str = "rainy-night", bars: int = 16) -> None:
    models = load_models()
    plan = load_preset(name).plan(bars, bass_seed=1).with_song(sections=())
    expect = expect_of(plan.song)
    for value in (0.2, 0.5, 0.9):
        steered = replace(plan, density=dict.fromkeys(("melody", "drums", "chords"), value))
        scores = compose(models, steered, seed=100, variations=SONGS)
        notes = np.mean([(s.melody >= 0).sum() / s.bars for s in scores])
        steps = np.mean([(s.drums > 0).sum() / s.bars for s in scores])
        changes = np.mean([changes_of(s) / s.bars for s in scores])
        grooves = sum(groove(s, expect).passed for s in scores)
        moving = sum(chords_move(s, expect).passed for s in scores)
        print(f"{name} density {value}: melody notes/bar {notes:.2f}, drum steps with a hit/bar "
              f"{steps:.2f}, chord changes/bar {changes:.2f}, groove {grooves}/{SONGS}, chords "
              f"move {moving}/{SONGS}")


if __name__ == "__main__":
    main(*(sys.argv[1:2] or ["rainy-night"]), *(int(b) for b in sys.argv[2:3]))
