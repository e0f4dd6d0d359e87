"""Hash the generated tokens of every preset (a batch of 3 and one song alone) and of a
regenerate-style batch.

A refactoring that must not change the music prints the same hashes before and after:
``python benchmarks/token_hashes.py``.
"""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from arranger.compose.coordinator import ending_forced, generate_tokens
from arranger.compose.plan import FREE, Forced
from arranger.compose.threads import generation_mode
from arranger.preset import load_preset, preset_names
from arranger.weights import load_models


def digest(gen) -> str:
    h = hashlib.sha256()
    for part in (gen.chords, gen.melody, gen.drums):
        h.update(np.ascontiguousarray(part, np.int64).tobytes())
    for layer in sorted(gen.forced_logp):
        h.update(np.round(gen.forced_logp[layer], 6).tobytes())
    return h.hexdigest()[:16]


def main() -> None:
    models = load_models()
    lines = []
    with generation_mode():
        for name in preset_names():
            plan = load_preset(name).plan(12, bass_seed=1)
            forced = Forced.free(3, 12)
            ending_forced(forced, plan, models)
            lines.append(f"{name}: {digest(generate_tokens(models, plan, forced, 5))}")
            one = Forced.free(1, 12)
            ending_forced(one, plan, models)
            lines.append(f"{name} (one song): {digest(generate_tokens(models, plan, one, 5))}")
        plan = load_preset("rainy-night").plan(12, bass_seed=1)
        first = Forced.free(1, 12)
        ending_forced(first, plan, models)
        song = generate_tokens(models, plan, first, 3)
        for layer, free in (("drums", slice(64, 128)), ("melody", slice(32, 96)),
                            ("chords", slice(8, 24))):
            forced = Forced.free(8, 12)
            forced.chords[:], forced.melody[:], forced.drums[:] = (song.chords, song.melody,
                                                                   song.drums)
            getattr(forced, layer)[:, free] = FREE
            ending_forced(forced, plan, models)
            lines.append(f"regenerate {layer}: {digest(generate_tokens(models, plan, forced, 9))}")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
