"""Order-3 Markov baselines: same vocabulary, conditions and call signature as the layer LSTMs.

A :class:`MarkovModel` predicts a layer's token at step t from a chain of contexts, from the
least to the most specific, each the previous one plus more features. Features are the layer's
own previous tokens (``h1`` the token before t, ``h2`` the one before that) and its categorical
conditions (``c0``, ``c1``, ...: the columns of the ``cond`` the LSTM reads). The estimates are
interpolated with Witten-Bell smoothing (Witten & Bell 1991; Chen & Goodman 1998, sec. 2.5)::

    P_0(w)     = (c(w) + b T * 1/V) / (N + b T)
    P_k(w | x) = (c(x, w) + b T(x) * P_{k-1}(w | x')) / (c(x) + b T(x))

where ``x'`` is context ``x`` less the features level k adds, ``c`` counts training tokens,
``T(x)`` the distinct tokens seen after ``x``, and a context never seen uses ``P_{k-1}``. Every
token keeps a non-zero probability, so held-out bits/step are finite. ``b = 1`` is plain
Witten-Bell, which trusts rarely seen contexts too much on these corpora (a context seen once
gets half the mass); :func:`train_markov` picks ``b`` from :data:`UNSEEN_WEIGHTS` by the bits/step
on a slice of the training windows counted without it (deleted interpolation, as Jelinek-Mercer
weights are set), then counts all the training windows.

The default chains (:data:`CONTEXTS`) put the condition that matters most in every context and
the trigram history next:

- chords (per beat): beat in bar, then + previous chord, + the chord before, + the key's mode.
- melody (per step): step in bar, then + previous token, + the token before, + the chord (root
  and quality).
- drums (per step): step in bar, then + previous token, + the token before, + bar in the 4-bar
  phrase. The drum conditions on chords and melody are left out: the drum corpus has neither,
  so they are constant in training.

On the shared corpus (pop909 + groove-gmd + openewld, 10% of songs held out) the chains and ``b``
were compared on held-out bits/step: richer contexts only pay off once ``b`` is tuned (it ends
near 8; chords 1.95, melody 1.64, drums 3.90 bits/step against 2.01, 1.86, 4.13 with ``b = 1``);
the chord adds 0.05 bits/step to the melody model, and the multi-hot melody pitch classes
(feature ``m``) did not help the chord model.

The model is a ``torch.nn.Module`` whose ``forward(prev, cond, multi, state)`` matches
:class:`tracks.model.ConditionedLSTM`, with ``state`` the token before ``prev`` (long [B, 1]), so
the coordinator and :func:`arranger.training.train.evaluate_bits` use it unchanged.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

import numpy as np
import torch
from torch import nn

from arranger.training.layer_data import IGNORE
from tracks.common import BOS
from tracks.layers import MODEL_LAYERS
from tracks.model import LayerWeights

CONTEXTS: dict[str, tuple[tuple[str, ...], ...]] = {
    "chords": (("c0",), ("c0", "h1"), ("c0", "h1", "h2"), ("c0", "h1", "h2", "c3")),
    "melody": (("c2",), ("c2", "h1"), ("c2", "h1", "h2"), ("c2", "h1", "h2", "c0", "c1")),
    "drums": (("c0",), ("c0", "h1"), ("c0", "h1", "h2"), ("c0", "h1", "h2", "c1")),
}
UNSEEN_WEIGHTS = (1.0, 2.0, 4.0, 8.0, 16.0, 32.0)  # candidates for b
_CHUNK = 8192  # positions per block when filling [positions, vocab] probabilities


@dataclass(frozen=True)
class MarkovConfig:
    """What a :class:`MarkovModel` predicts and from which contexts."""

    layer: str  # "chords", "melody" or "drums"
    vocab_size: int  # tokens, as the LSTM's
    cond_sizes: tuple[int, ...]  # vocabulary of each categorical condition
    multi_hot: int = 0  # width of the multi-hot condition (feature ``m``: its bit pattern)
    contexts: tuple[tuple[str, ...], ...] = ()  # back-off chain, least to most specific
    unseen_weight: float = 1.0  # b: weight of the unseen-event mass, 1 = plain Witten-Bell

    def __post_init__(self) -> None:
        for level in self.contexts:
            for name in level:
                self.radix(name)  # validates the feature name
            if np.prod([float(self.radix(f)) for f in level]) * self.vocab_size > 2.0 ** 62:
                raise ValueError(f"context {level} has too many values to index")

    @property
    def history(self) -> int:
        """Own tokens read (2 for a trigram model)."""
        return max([int(f[1:]) for lv in self.contexts for f in lv if f[0] == "h"] + [1])

    def radix(self, feature: str) -> int:
        """Number of values of a feature (``h<k>``, ``c<i>`` or ``m``)."""
        kind, index = feature[0], feature[1:]
        if kind == "h" and index.isdigit() and int(index) >= 1:
            return self.vocab_size
        if kind == "c" and index.isdigit() and int(index) < len(self.cond_sizes):
            return self.cond_sizes[int(index)]
        if feature == "m" and 0 < self.multi_hot <= 16:
            return 2 ** self.multi_hot
        raise ValueError(f"unknown context feature {feature!r} (use h1, h2, ..., c0, c1, ... "
                         "or m for a multi-hot condition)")


@dataclass
class _Level:
    """Witten-Bell statistics of one context level, as sorted arrays (CSR over contexts)."""

    keys: np.ndarray  # int64 [contexts], sorted context keys
    indptr: np.ndarray  # int64 [contexts + 1], each context's slice of tokens/weights
    tokens: np.ndarray  # int64 [pairs], tokens seen after the context
    weights: np.ndarray  # float64 [pairs], c(x, w) / (c(x) + b T(x))
    backoff: np.ndarray  # float64 [contexts], b T(x) / (c(x) + b T(x))


class MarkovModel(nn.Module):
    """Interpolated Witten-Bell Markov model of one layer (see the module docstring)."""

    def __init__(self, config: MarkovConfig, base: np.ndarray, levels: Sequence[_Level]) -> None:
        super().__init__()
        self.config = config
        self.base = np.asarray(base, dtype=np.float64)
        self.levels = list(levels)

    def forward(self, prev: torch.Tensor, cond: torch.Tensor, multi: torch.Tensor | None = None,
                state: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Log-probabilities of each step's token.

        Parameters
        ----------
        prev : long [B, T], own token of the step before (0 = start).
        cond : long [B, T, C], categorical conditions of this step.
        multi : float [B, T, M] or None, the multi-hot condition (read only by feature ``m``).
        state : long [B, history - 1], the tokens before ``prev[:, 0]`` (None: start tokens).

        Returns
        -------
        log-probabilities float [B, T, vocab_size] (usable as logits) and the new state.
        """
        p = prev.detach().cpu().numpy().astype(np.int64)
        batch, steps = p.shape
        keep = self.config.history - 1
        before = (np.full((batch, keep), BOS, np.int64) if state is None
                  else state.detach().cpu().numpy().astype(np.int64).reshape(batch, keep))
        hist = np.concatenate([before, p], axis=1)
        feats = _features(self.config, hist, cond.detach().cpu().numpy().astype(np.int64),
                          None if multi is None else multi.detach().cpu().numpy())
        keys = [_keys(self.config, level, feats).ravel() for level in self.config.contexts]
        logp = self._log_probs(keys, batch * steps).reshape(batch, steps, -1)
        new_state = torch.from_numpy(hist[:, hist.shape[1] - keep:].copy())
        return torch.from_numpy(logp).to(prev.device), new_state.to(prev.device)

    def _log_probs(self, keys: list[np.ndarray], n: int) -> np.ndarray:
        out = np.empty((n, self.config.vocab_size), dtype=np.float32)
        for lo in range(0, n, _CHUNK):
            hi = min(lo + _CHUNK, n)
            out[lo:hi] = np.log(self._probs([k[lo:hi] for k in keys], hi - lo))
        return out

    def _probs(self, keys: list[np.ndarray], n: int) -> np.ndarray:
        """Interpolated probabilities float64 [n, vocab] given each level's context keys [n]."""
        probs = np.tile(self.base, (n, 1))
        for level, key in zip(self.levels, keys, strict=True):
            j = np.minimum(np.searchsorted(level.keys, key), len(level.keys) - 1)
            rows = np.flatnonzero(level.keys[j] == key)
            ctx = j[rows]
            probs[rows] *= level.backoff[ctx, None]
            starts, lengths = level.indptr[ctx], np.diff(level.indptr)[ctx]
            pos = np.repeat(rows, lengths)
            entry = np.repeat(starts - np.cumsum(lengths) + lengths, lengths) + np.arange(len(pos))
            probs[pos, level.tokens[entry]] += level.weights[entry]
        return probs


def _features(config: MarkovConfig, hist: np.ndarray, cond: np.ndarray,
              multi: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """Feature arrays int64 [B, T]: ``h<k>`` from the history, ``c<i>`` from the conditions,
    ``m`` the multi-hot condition's bit pattern."""
    keep = config.history - 1
    steps = hist.shape[1] - keep
    feats = {f"h{k}": hist[:, keep - k + 1: keep - k + 1 + steps]
             for k in range(1, config.history + 1)}
    feats |= {f"c{i}": np.clip(cond[..., i], 0, size - 1)
              for i, size in enumerate(config.cond_sizes)}
    if multi is not None and 0 < config.multi_hot <= 16:
        bits = 1 << np.arange(config.multi_hot, dtype=np.int64)
        feats["m"] = (np.asarray(multi)[..., :config.multi_hot] > 0.5).astype(np.int64) @ bits
    return feats


def _keys(config: MarkovConfig, level: tuple[str, ...], feats: dict[str, np.ndarray]
          ) -> np.ndarray:
    """Mixed-radix int64 key of a context level at every position."""
    key = np.zeros_like(feats["h1"])
    for name in level:
        key = key * config.radix(name) + feats[name]
    return key


def _fit_level(keys: np.ndarray, targets: np.ndarray, vocab: int, unseen_weight: float
               ) -> _Level:
    pairs, counts = np.unique(keys * vocab + targets, return_counts=True)
    ctx, starts = np.unique(pairs // vocab, return_index=True)
    indptr = np.append(starts, len(pairs)).astype(np.int64)
    types = np.diff(indptr)
    unseen = unseen_weight * types
    denom = np.add.reduceat(counts, starts) + unseen
    return _Level(ctx, indptr, pairs % vocab, counts / np.repeat(denom, types), unseen / denom)


def fit_markov(config: MarkovConfig, prev: np.ndarray, cond: np.ndarray, target: np.ndarray,
               multi: np.ndarray | None = None) -> MarkovModel:
    """Count a :class:`MarkovModel` from windows.

    Parameters
    ----------
    config : what to model.
    prev, target : long [N, T] previous and target tokens (``IGNORE`` targets are skipped);
        each window starts from the start token, as the LSTM's windows do.
    cond : long [N, T, C] conditions.
    multi : float [N, T, M] multi-hot condition, needed by feature ``m``.
    """
    prev, target = np.asarray(prev, np.int64), np.asarray(target, np.int64)
    before = np.full((prev.shape[0], config.history - 1), BOS, np.int64)
    feats = _features(config, np.concatenate([before, prev], 1), np.asarray(cond, np.int64),
                      multi)
    real = target != IGNORE
    tokens = target[real]
    if not len(tokens):
        raise ValueError(f"no {config.layer} tokens to count a Markov model from")
    counts = np.bincount(tokens, minlength=config.vocab_size).astype(np.float64)
    unseen = config.unseen_weight * float((counts > 0).sum())
    base = (counts + unseen / config.vocab_size) / (counts.sum() + unseen)
    levels = [_fit_level(_keys(config, lv, feats)[real], tokens, config.vocab_size,
                         config.unseen_weight) for lv in config.contexts]
    return MarkovModel(config, base, levels)


def train_markov(split, contexts: Sequence[tuple[str, ...]] | None = None,
                 unseen_weights: Sequence[float] = UNSEEN_WEIGHTS) -> MarkovModel:
    """A Markov model of ``split.config.layer`` counted on ``split.train`` (the LSTM's windows).

    Parameters
    ----------
    split : :class:`arranger.training.train.LayerSplit`; only its training windows are read.
    contexts : back-off chain; default :data:`CONTEXTS` of the layer.
    unseen_weights : candidates for ``b``, chosen on every tenth block of training windows
        (blocks of about a hundredth of them, so mostly whole songs) counted without it.
    """
    lstm = split.config
    config = MarkovConfig(lstm.layer, lstm.vocab_size, tuple(lstm.cond_sizes), lstm.multi_hot,
                          tuple(tuple(lv) for lv in (contexts or CONTEXTS[lstm.layer])))
    data = [t.numpy() for t in (split.train.prev, split.train.cond, split.train.target,
                                split.train.multi)]
    n = len(data[0])
    aside = (np.arange(n) // max(n // 100, 1)) % 10 == 9
    if len(unseen_weights) > 1 and aside.any() and not aside.all():
        scores = [_held_bits(replace(config, unseen_weight=float(b)), data, aside)
                  for b in unseen_weights]
        config = replace(config, unseen_weight=float(unseen_weights[int(np.argmin(scores))]))
    elif unseen_weights:
        config = replace(config, unseen_weight=float(unseen_weights[0]))
    prev, cond, target, multi = data
    return fit_markov(config, prev, cond, target, multi)


def _held_bits(config: MarkovConfig, data: list[np.ndarray], aside: np.ndarray) -> float:
    """Bits/step on the windows ``aside`` of a model counted on the others."""
    prev, cond, target, multi = data
    model = fit_markov(config, prev[~aside], cond[~aside], target[~aside], multi[~aside])
    logp, _ = model(torch.from_numpy(prev[aside]), torch.from_numpy(cond[aside]),
                    torch.from_numpy(multi[aside]))
    real = target[aside] != IGNORE
    picked = np.take_along_axis(logp.numpy(), np.where(real, target[aside], 0)[..., None], -1)
    return float(-picked[..., 0][real].mean() / np.log(2)) if real.any() else 0.0


def markov_weights(split, min_count: int = 2) -> LayerWeights:
    """:func:`train_markov` wrapped as the coordinator's :class:`LayerWeights`.

    As for the LSTM, tokens seen fewer than ``min_count`` times in training are never sampled.
    """
    model = train_markov(split)
    target = split.train.target
    counts = np.bincount(target[target != IGNORE].numpy(), minlength=model.config.vocab_size)
    allowed = np.flatnonzero(counts >= min_count).tolist()
    card = {"layer": model.config.layer, "model": "markov", "contexts": model.config.contexts,
            "unseen_weight": model.config.unseen_weight, "train_tokens": split.train.tokens,
            "allowed_tokens": allowed}
    return LayerWeights(model, list(split.vocab), card)


def markov_models(splits: Mapping[str, object], min_count: int = 2):
    """:class:`arranger.compose.coordinator.Models` of Markov baselines, one per layer split."""
    from arranger.compose.coordinator import Models

    return Models(**{layer: markov_weights(splits[layer], min_count)
                     for layer in MODEL_LAYERS})
