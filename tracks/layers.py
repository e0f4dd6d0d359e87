"""The layer protocol and the one registry of model layers.

Each model layer (chords, melody, drums; the bass has no model, see :mod:`tracks.bass`) is one
:class:`LayerSpec`: how a song becomes its tokens and conditions, the condition sizes its model
is built with, and which conditions a song may lack. Training, evaluation, the coordinator and
the weights loader iterate :data:`LAYER_SPECS` instead of naming layers.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from arranger.score import BEATS_PER_BAR, LAYERS, STEPS_PER_BAR, Score
from tracks import chords, drums, melody
from tracks.common import Context

Conditions = Callable[[Context, int, int], tuple[np.ndarray, np.ndarray | None]]


@dataclass(frozen=True)
class LayerSpec:
    """One model layer.

    name : the layer's name in ``arranger.score.LAYERS``.
    tokens_per_bar : 4 (a token per beat) or 16 (a token per 16th step).
    cond_sizes : vocabulary of each categorical condition (index 0 = unknown).
    multi_hot : width of the multi-hot condition, 0 for none.
    unknowable : conditions whose value 0 means "this song lacks the layer they come from".
    multi_follows : the condition the multi-hot is unknown together with (None: no multi-hot).
    conditions : ``(ctx, start, stop) -> (cond long [B, n, C], multi float [B, n, M] or None)``.
    encode : ``(score, codec) -> tokens int64 [n]``; ``codec`` from :meth:`codec`.
    vocab : the fixed vocabulary, or None where it is learnt from the training songs.
    learn_codec : ``(training scores, min_count) -> codec`` of a learnt vocabulary.
    read_codec : ``(vocabulary as stored with the weights) -> codec`` of a learnt vocabulary.
    """

    name: str
    tokens_per_bar: int
    cond_sizes: tuple[int, ...]
    multi_hot: int
    unknowable: tuple[int, ...]
    multi_follows: int | None
    conditions: Conditions
    encode: Callable[[Score, Any], np.ndarray]
    vocab: tuple[str, ...] | None = None
    learn_codec: Callable[[Sequence[Score], int], Any] | None = None
    read_codec: Callable[[Sequence[str]], Any] | None = None

    def codec(self, vocab: Sequence[str]) -> Any:
        """What :attr:`encode` needs of a model's stored vocabulary (None for a fixed one)."""
        return None if self.read_codec is None else self.read_codec(vocab)

    def vocab_of(self, codec: Any) -> list[str]:
        """The vocabulary stored with a model: the fixed one, else the learnt ``codec``'s."""
        return list(self.vocab) if self.vocab is not None else list(codec.to_list())

    def sequence(self, score: Score, has: frozenset[str], codec: Any = None
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        """(tokens [T], cond [T, C], multi [T, M] or None) of one song; layers not in ``has``
        are heard as unknown."""
        tokens = self.encode(score, codec)
        cond, multi = self.conditions(Context.from_score(score, has), 0, len(tokens))
        return tokens, cond[0], None if multi is None else multi[0]


def _fixed(encode: Callable[[Score], np.ndarray]) -> Callable[[Score, Any], np.ndarray]:
    """``encode`` of a layer with a fixed vocabulary: it needs no codec."""
    return lambda score, _codec: encode(score)


CHORDS = LayerSpec("chords", BEATS_PER_BAR, chords.COND_SIZES, chords.MULTI_HOT, unknowable=(2, 3),
                   multi_follows=2, conditions=chords.conditions, encode=_fixed(chords.encode),
                   vocab=tuple(chords.VOCAB))
MELODY = LayerSpec("melody", STEPS_PER_BAR, melody.COND_SIZES, melody.MULTI_HOT,
                   unknowable=(0, 1), multi_follows=0, conditions=melody.conditions,
                   encode=_fixed(melody.encode), vocab=tuple(melody.VOCAB))
DRUMS = LayerSpec("drums", STEPS_PER_BAR, drums.COND_SIZES, drums.MULTI_HOT, unknowable=(2, 3),
                  multi_follows=None, conditions=drums.conditions, encode=drums.encode,
                  learn_codec=lambda scores, min_count: drums.build_vocab(scores, min_count),
                  read_codec=drums.DrumVocab.from_list)

# In the order of arranger.score.LAYERS, which is also the order the coordinator asks them in.
LAYER_SPECS: dict[str, LayerSpec] = {s.name: s for s in sorted(
    (CHORDS, MELODY, DRUMS), key=lambda s: LAYERS.index(s.name))}
MODEL_LAYERS: tuple[str, ...] = tuple(LAYER_SPECS)


def layer_spec(layer: str) -> LayerSpec:
    """The spec of a model layer; ValueError naming the known ones otherwise."""
    try:
        return LAYER_SPECS[layer]
    except KeyError:
        raise ValueError(f"layer {layer!r}: no model for it (model layers: "
                         f"{', '.join(MODEL_LAYERS)})") from None
