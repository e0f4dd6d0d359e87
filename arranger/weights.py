"""Find and load the three layer models: shipped defaults or a user's trained folder."""

from __future__ import annotations

import hashlib
from pathlib import Path

from arranger.compose.coordinator import MODEL_LAYERS, Models
from tracks import drums as drum_track
from tracks.weights_file import LayerWeights, WeightsError, read_weights

DEFAULT_WEIGHTS = Path(__file__).resolve().parent.parent / "tracks" / "weights"


def weight_files(weights_dir: Path | None = None) -> dict[str, Path]:
    folder = Path(weights_dir) if weights_dir else DEFAULT_WEIGHTS
    return {layer: folder / f"{layer}.safetensors" for layer in MODEL_LAYERS}


def load_models(weights_dir: Path | None = None) -> Models:
    """Load chords, melody and drums models from ``weights_dir`` (default: shipped weights)."""
    files = weight_files(weights_dir)
    loaded: dict[str, LayerWeights] = {}
    for layer, path in files.items():
        if not path.exists():
            hint = "run `lofi train` with this --out" if weights_dir else "reinstall lofi"
            raise WeightsError(f"{path}: missing {layer} weights ({hint})")
        loaded[layer] = read_weights(path, layer)
    try:
        drum_track.DrumVocab.from_list(loaded["drums"].vocab)
    except ValueError as e:
        raise WeightsError(f"{files['drums']}: {e}") from None
    return Models(**loaded)


def weights_hash(weights_dir: Path | None = None) -> str:
    """SHA-256 over the three weights files, to record which models wrote a song."""
    h = hashlib.sha256()
    for _, path in sorted(weight_files(weights_dir).items()):
        h.update(path.read_bytes())
    return h.hexdigest()
