"""Ensembles of layer models: at each step the members' probabilities are averaged.

``--weights A --weights B`` gives every layer two models trained apart (other seeds, other
corpora): the coordinator samples from ``p = (p_A + p_B) / 2``. :class:`EnsembleStep` does it in
numpy with :class:`tracks.inference.NumpyStep`'s interface (``step`` returns log ``p`` as the
logits, so temperature and nucleus sampling work unchanged); :class:`EnsembleModule` does the
same in PyTorch (``--device cuda``, and held-out bits/step in ``lofi eval``). Members must share
the vocabulary and the conditions; each keeps its own blind conditions and allowed tokens.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

import numpy as np

from tracks.inference import NumpyStep, fast_step
from tracks.weights_file import InferenceSettings, LayerWeights, WeightsError

_TINY = 1e-30  # keeps log p finite where every member gives a token no probability


class EnsembleWeights:
    """Several :class:`LayerWeights` of one layer used as one (what the coordinator reads).

    ``inference``: tokens any member may sample; no blind conditions (each member blanks its own).
    """

    def __init__(self, members: Sequence[LayerWeights], where: Sequence[str] = ()) -> None:
        if len(members) < 2:
            raise ValueError("an ensemble needs at least two models")
        check_compatible(members, where)
        self.members = list(members)
        first = self.members[0]
        self.config, self.vocab = first.config, list(first.vocab)
        # The first member's facts (e.g. train_config: eval cuts windows by its seq_len).
        self.card = dict(first.card) | {"ensemble": [m.card for m in self.members]}
        self.inference = InferenceSettings(_union_allowed(self.members), ())
        self._module = None

    @property
    def model(self) -> Any:
        """The PyTorch :class:`EnsembleModule` of the members (imports torch)."""
        if self._module is None:
            self._module = EnsembleModule(self.members)
        return self._module

    def numpy_arrays(self) -> None:
        return None  # no single set of weights: see :func:`stepper`


def check_compatible(members: Sequence[LayerWeights], where: Sequence[str] = ()) -> None:
    """Raise :class:`WeightsError` (one line) unless the members share vocabulary and inputs."""
    first = members[0]
    for i, m in enumerate(members[1:], 1):
        a, b = first.config, m.config
        same = (m.vocab == first.vocab and a.layer == b.layer and a.vocab_size == b.vocab_size
                and a.cond_sizes == b.cond_sizes and a.multi_hot == b.multi_hot)
        if not same:
            names = (list(where) + ["first", f"member {i}"])[:i + 1]
            raise WeightsError(f"{names[i]}: its {b.layer} model has another vocabulary or other "
                               f"inputs than {names[0]}'s ({b.vocab_size} vs {a.vocab_size} "
                               "tokens): an ensemble needs models with the same vocabulary")


def _union_allowed(members: Sequence[LayerWeights]) -> tuple[int, ...] | None:
    sets = [m.inference.allowed_tokens for m in members]
    if any(s is None for s in sets):
        return None
    return tuple(sorted(set().union(*sets)))


def _blanked(cond, multi, settings: InferenceSettings, multi_follows: int | None):
    """``cond``/``multi`` with a member's blind conditions set to unknown (copies)."""
    blind = list(settings.blind_conditions)
    if not blind:
        return cond, multi
    cond = cond.copy()
    cond[..., blind] = 0
    if multi is not None and multi_follows in blind:
        multi = multi * 0
    return cond, multi


def _multi_follows(layer: str) -> int | None:
    from tracks.layers import LAYER_SPECS

    return LAYER_SPECS[layer].multi_follows


class EnsembleStep:
    """``step(tokens [B], conds [B, C], multi [B, M], state) -> (log p [B, V], state)``.

    ``p`` is the mean of the members' softmax; ``state`` is the tuple of the members' states.
    """

    def __init__(self, weights: EnsembleWeights) -> None:
        self.config = weights.config
        self.members = [fast_step(m) for m in weights.members]
        self.settings = [m.inference for m in weights.members]
        self.multi_follows = _multi_follows(weights.config.layer)

    def step(self, tokens: np.ndarray, conds: np.ndarray, multi: np.ndarray | None = None,
             state=None) -> tuple[np.ndarray, tuple]:
        states = state if state is not None else (None,) * len(self.members)
        total, new = None, []
        for member, settings, s in zip(self.members, self.settings, states, strict=True):
            c, m = _blanked(conds, multi, settings, self.multi_follows)
            logits, s = member.step(tokens, c, m, s)
            p = _softmax(logits)
            total = p if total is None else total + p
            new.append(s)
        return np.log(total / len(self.members) + _TINY).astype(np.float32), tuple(new)


def _softmax(logits: np.ndarray) -> np.ndarray:
    z = np.exp(logits - logits.max(axis=-1, keepdims=True))
    return z / z.sum(axis=-1, keepdims=True)


def stepper(weights: Any, device: Any = None) -> Any:
    """The stepper the coordinator runs for ``weights``: numpy (one model or an ensemble) on
    the CPU, the PyTorch module on ``device``."""
    if device is not None:
        return weights.model.to(device)
    if isinstance(weights, EnsembleWeights):
        return EnsembleStep(weights)
    return fast_step(weights)


is_numpy_stepper = (NumpyStep, EnsembleStep)  # what the coordinator steps without tensors


@functools.cache
def _module_class():
    import torch
    from torch import nn

    class _EnsembleModule(nn.Module):
        """``forward(prev, cond, multi, state) -> (log p [B, T, V], state)``, p the members'
        mean softmax: ``ConditionedLSTM``'s signature, so evaluation scores it unchanged."""

        def __init__(self, members: Sequence[LayerWeights]) -> None:
            super().__init__()
            self.config = members[0].config
            self.nets = nn.ModuleList(m.model for m in members)
            self.settings = [m.inference for m in members]
            self.multi_follows = _multi_follows(self.config.layer)

        def forward(self, prev, cond, multi=None, state=None):
            states = state if state is not None else (None,) * len(self.nets)
            probs, new = [], []
            for net, settings, s in zip(self.nets, self.settings, states, strict=True):
                c, m = _blanked(cond, multi, settings, self.multi_follows)
                logits, s = net(prev, c, m, s)
                probs.append(torch.softmax(logits.float(), dim=-1))
                new.append(s)
            return torch.log(torch.stack(probs).mean(0) + _TINY), tuple(new)

    return _EnsembleModule


def EnsembleModule(members: Sequence[LayerWeights]):  # noqa: N802 (a class, built lazily)
    """The PyTorch ensemble of ``members`` (a ``torch.nn.Module``; torch imported here)."""
    return _module_class()(members)
