"""Which layers ``lofi eval`` scores: those the corpus holds (POP909 has no drums, GMD only drums).

A layer no training song holds gets no Markov baseline and no bits/step; its LSTM writes that
layer of the Markov songs too, so the two generated sets still compare on the other layers.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from arranger.compose.coordinator import Models
from arranger.evaluation.markov import markov_weights
from arranger.training.train import LayerSplit
from tracks.layers import MODEL_LAYERS


def present_splits(train: Sequence, real: Sequence, models: Models, layer_split: Callable
                   ) -> dict[str, LayerSplit]:
    """:func:`layer_split` of each layer some training song holds (POP909 has no drums)."""
    present = [layer for layer in MODEL_LAYERS if any(layer in s.layers for s in train)]
    if not present:
        raise ValueError("no training song holds chords, melody or drums to count the Markov "
                         "baselines from: give such songs with --corpus or --train-paths")
    return {layer: layer_split(layer, train, real, models) for layer in present}


def baseline_models(splits: dict[str, LayerSplit], models: Models) -> Models:
    """Markov models of the layers in ``splits``; a layer without data keeps the LSTM's."""
    return Models(**{layer: markov_weights(splits[layer]) if layer in splits
                     else getattr(models, layer) for layer in MODEL_LAYERS})


def absent_bits(layer: str) -> dict:
    return {"lstm": None, "markov": None, "unigram": None, "tokens": 0,
            "note": f"no song in the corpus holds a {layer} layer"}
