"""Find and load the three layer models: shipped defaults or a user's trained folder."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from pathlib import Path

from arranger.compose.coordinator import Models
from tracks.layers import LAYER_SPECS, MODEL_LAYERS
from tracks.weights_file import LayerWeights, WeightsError, read_weights

DEFAULT_WEIGHTS = Path(__file__).resolve().parent.parent / "tracks" / "weights"


def folders(weights: Path | str | Sequence[Path] | None) -> list[Path | None]:
    """The weights folders ``weights`` names: one, several (an ensemble), or [None] (shipped).

    Several may come as a sequence or as one value joined by ``os.pathsep`` (as in ``PATH``:
    what a manifest records for an ensemble, see :func:`joined`).
    """
    if weights is None or isinstance(weights, str | Path):
        text = str(weights or "")
        if not text:
            return [None]
        if os.pathsep in text and not Path(text).exists():
            return [Path(p) for p in text.split(os.pathsep) if p]
        return [Path(text)]
    found = [Path(p) if p else None for p in weights]  # None: the shipped weights
    return found if found else [None]


def joined(weights: Sequence[Path] | None) -> Path | None:
    """One value for several ``--weights`` folders (absolute, ``os.pathsep``-joined); None or
    the folder itself when there are fewer than two."""
    if not weights:
        return None
    if len(weights) == 1:
        return Path(weights[0])
    return Path(os.pathsep.join(str(Path(p).resolve()) for p in weights))


def weight_files(weights_dir: Path | None = None) -> dict[str, Path]:
    folder = Path(weights_dir) if weights_dir else DEFAULT_WEIGHTS
    return {layer: folder / f"{layer}.safetensors" for layer in MODEL_LAYERS}


def load_models(weights_dir: Path | str | Sequence[Path] | None = None) -> Models:
    """Load chords, melody and drums models from ``weights_dir`` (default: shipped weights).

    Several folders make an ensemble per layer (:class:`tracks.ensemble.EnsembleWeights`).
    """
    found = folders(weights_dir)
    if len(found) == 1:
        return _load_folder(found[0])
    from tracks.ensemble import EnsembleWeights

    sets = [_load_folder(f) for f in found]
    return Models(**{layer: EnsembleWeights([getattr(m, layer) for m in sets],
                                            [str(f or DEFAULT_WEIGHTS) for f in found])
                     for layer in MODEL_LAYERS})


def _load_folder(weights_dir: Path | None) -> Models:
    files = weight_files(weights_dir)
    loaded: dict[str, LayerWeights] = {}
    for layer, path in files.items():
        if not path.exists():
            hint = "run `lofi train` with this --out" if weights_dir else "reinstall lofi"
            raise WeightsError(f"{path}: missing {layer} weights ({hint})")
        loaded[layer] = read_weights(path, layer)
    for layer, weights in loaded.items():  # a learnt vocabulary must read
        try:
            LAYER_SPECS[layer].codec(weights.vocab)
        except ValueError as e:
            raise WeightsError(f"{files[layer]}: {e}") from None
    return Models(**loaded)


def weights_hash(weights_dir: Path | str | Sequence[Path] | None = None) -> str:
    """SHA-256 over the three weights files (of every folder, in order), to record which models
    wrote a song."""
    h = hashlib.sha256()
    for folder in folders(weights_dir):
        for _, path in sorted(weight_files(folder).items()):
            h.update(path.read_bytes())
    return h.hexdigest()
