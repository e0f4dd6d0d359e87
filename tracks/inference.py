"""Single-step inference of a :class:`ConditionedLSTM` in numpy, for the coordinator's loop.

Generation runs one step at a time at batch 1-16, where PyTorch's per-op overhead costs more
than the arithmetic. Here the first LSTM layer's input projection is folded into lookup tables
(every input is an embedding or a linear map, so ``W_ih @ x`` is a sum of table rows) and each
step is a handful of small numpy matrix products. Built from numpy arrays, so CPU
generation never imports torch. Results match the PyTorch model to float32 rounding.
"""

from __future__ import annotations

import copy
import weakref
from typing import Any

import numpy as np

from tracks.weights_file import LayerWeights, ModelConfig


class NumpyStep:
    """``step(prev, cond, multi, state) -> (logits [B, 1, V], state)`` for T = 1."""

    def __init__(self, config: ModelConfig, sd: dict[str, np.ndarray]) -> None:
        """``sd``: the model's ``state_dict`` as float32 arrays (``LayerWeights.numpy_arrays``)."""
        self.config = c = config
        w0 = sd["lstm.weight_ih_l0"]  # [4H, width]
        bias0 = sd["lstm.bias_ih_l0"] + sd["lstm.bias_hh_l0"]
        self.token_table = sd["token_embed.weight"] @ w0[:, : c.embed_dim].T + bias0
        self.cond_tables = []
        col = c.embed_dim
        for i in range(len(c.cond_sizes)):
            block = w0[:, col : col + c.cond_dim]
            self.cond_tables.append(sd[f"cond_embeds.{i}.weight"] @ block.T)
            col += c.cond_dim
        self.multi_w = self.multi_b = None
        if c.multi_hot:
            block = w0[:, col : col + c.cond_dim]
            self.multi_w = (block @ sd["multi_proj.weight"]).T  # [M, 4H]
            self.multi_b = block @ sd["multi_proj.bias"]
        h = c.hidden
        # Gate columns reordered from PyTorch's (i, f, g, o) to (i, f, o, g): one sigmoid over
        # the first three quarters, one tanh over the last.
        order = np.r_[0:2 * h, 3 * h:4 * h, 2 * h:3 * h]
        self.token_table = self.token_table[:, order]
        self.cond_tables = [t[:, order] for t in self.cond_tables]
        if self.multi_w is not None:
            self.multi_w, self.multi_b = self.multi_w[:, order], self.multi_b[order]
        self.w_hh0 = sd["lstm.weight_hh_l0"].T[:, order].copy()
        # Upper layers: input and recurrent weights stacked, so [x, h] @ w is one product.
        self.w_upper = [np.concatenate([sd[f"lstm.weight_ih_l{k}"].T, sd[f"lstm.weight_hh_l{k}"].T]
                                       )[:, order].copy() for k in range(1, c.num_layers)]
        self.b_upper = [(sd[f"lstm.bias_ih_l{k}"] + sd[f"lstm.bias_hh_l{k}"])[order]
                        for k in range(1, c.num_layers)]
        self.head_w, self.head_b = sd["head.weight"].T.copy(), sd["head.bias"]
        # sigmoid(x) = (tanh(x / 2) + 1) / 2: with the gate columns halved in advance one tanh
        # covers all four gates. Halving is exact in floating point, so nothing rounds otherwise.
        half = np.where(np.arange(4 * h) < 3 * h, 0.5, 1.0).astype(np.float32)
        self.token_table = self.token_table * half
        self.cond_tables = [t * half for t in self.cond_tables]
        if self.multi_w is not None:
            self.multi_w, self.multi_b = self.multi_w * half, self.multi_b * half
        self.w_hh0 = self.w_hh0 * half
        self.w_upper = [w * half for w in self.w_upper]
        self.b_upper = [b * half for b in self.b_upper]
        # The first layer's inputs as one table: a step gathers its rows with one take.
        # (C order: the products above leave them column-major, and a row gather is 100x
        # slower then.)
        self.inputs = np.ascontiguousarray(np.concatenate([self.token_table, *self.cond_tables]))
        sizes = [len(self.token_table)] + [len(t) for t in self.cond_tables]
        self.offsets = np.cumsum(sizes)[:-1, None]  # [C, 1]: where each cond's rows start
        self._rows: _Scratch | None = None
        self._multi_key, self._multi_value = b"", None

    def fresh(self) -> NumpyStep:
        """A stepper sharing these (read-only) tables, with work arrays of its own."""
        step = copy.copy(self)
        step._rows, step._multi_key, step._multi_value = None, b"", None
        return step

    @classmethod
    def of(cls, model: Any) -> NumpyStep:
        """The numpy stepper of a PyTorch ``ConditionedLSTM``."""
        return cls(model.config, {k: v.detach().float().cpu().numpy()
                                  for k, v in model.state_dict().items()})

    def __call__(self, prev: Any, cond: Any, multi: Any = None, state=None) -> tuple[Any, Any]:
        """The PyTorch model's signature (tensors [B, T, ...]; the last step is used)."""
        import torch

        m = None if multi is None else multi.numpy()[:, -1]
        logits, state = self.step(prev.numpy()[:, -1], cond.numpy()[:, -1], m, state)
        return torch.from_numpy(logits[:, None, :]), state

    def step(self, tokens: np.ndarray, conds: np.ndarray, multi: np.ndarray | None = None,
             state=None) -> tuple[np.ndarray, tuple[np.ndarray, np.ndarray]]:
        """One step in numpy: tokens [B], conds [B, C], multi [B, M] -> logits [B, V], state.

        Every sum is added in the order the PyTorch-shaped formula
        ``token + cond_0 + ... + multi @ W + b + h @ W_hh`` gives it, so the logits are the
        same bits as step-by-step arithmetic; what is saved is numpy calls, not arithmetic.
        """
        batch = len(tokens)
        h, c = state if state is not None else self._zeros(batch)
        rows = self._scratch(batch)
        n = len(self.cond_tables)
        rows.index[0] = tokens
        # Conditions a model was not trained with (e.g. the drums' style for 4-condition weights)
        # are not read: only its own first n columns.
        np.add(conds[:, :n].T, self.offsets, out=rows.index[1 : n + 1])
        self.inputs.take(rows.index, axis=0, out=rows.terms[: n + 1], mode="clip")
        if self.multi_w is not None:
            rows.terms[n + 1] = self._multi_term(multi)  # terms[n + 2] holds multi_b
        np.matmul(h[0], self.w_hh0, out=rows.terms[-1])
        gates = np.add.reduce(rows.terms, axis=0, out=rows.gates)  # in order, see above
        new_h, new_c = np.empty_like(h), np.empty_like(c)
        self._cell(gates, c[0], new_h[0], new_c[0], rows.tanh_c)
        for k in range(1, self.config.num_layers):
            np.concatenate([new_h[k - 1], h[k]], axis=1, out=rows.below)
            np.matmul(rows.below, self.w_upper[k - 1], out=gates)
            np.add(gates, self.b_upper[k - 1], out=gates)
            self._cell(gates, c[k], new_h[k], new_c[k], rows.tanh_c)
        logits = new_h[-1] @ self.head_w
        logits += self.head_b
        return logits, (new_h, new_c)

    def _cell(self, gates: np.ndarray, c: np.ndarray, h_out: np.ndarray, c_out: np.ndarray,
              tanh_c: np.ndarray) -> None:
        """The LSTM cell, written into ``h_out`` and ``c_out``; ``gates`` is used up."""
        hidden = self.config.hidden
        t = np.tanh(gates, out=gates)  # gates are pre-halved: i, f, o = (t + 1) / 2
        sig = t[:, : 3 * hidden]
        np.multiply(sig, 0.5, out=sig)
        np.add(sig, 0.5, out=sig)
        np.multiply(sig[:, hidden : 2 * hidden], c, out=c_out)
        ig = np.multiply(sig[:, :hidden], t[:, 3 * hidden :], out=sig[:, :hidden])
        np.add(c_out, ig, out=c_out)
        np.multiply(sig[:, 2 * hidden :], np.tanh(c_out, out=tanh_c), out=h_out)

    def _multi_term(self, multi: np.ndarray) -> np.ndarray:
        """``multi @ multi_w``, kept while the multi-hot stays the same (a beat's chord)."""
        key = multi.tobytes()
        if key != self._multi_key:
            self._multi_key, self._multi_value = key, multi @ self.multi_w
        return self._multi_value

    def _scratch(self, batch: int) -> _Scratch:
        if self._rows is None or self._rows.batch != batch:
            self._rows = _Scratch(self, batch)
        return self._rows

    def _zeros(self, batch: int) -> tuple[np.ndarray, np.ndarray]:
        shape = (self.config.num_layers, batch, self.config.hidden)
        return np.zeros(shape, np.float32), np.zeros(shape, np.float32)


class _Scratch:
    """Per-batch-size work arrays of one stepper; nothing in them outlives a step."""

    def __init__(self, step: NumpyStep, batch: int) -> None:
        four_h, n = 4 * step.config.hidden, len(step.cond_tables)
        self.batch = batch
        self.index = np.zeros((n + 1, batch), np.int64)  # token row, then each cond's row
        # The terms of the first layer's gates, summed in this order: token, conds,
        # (multi @ W, multi bias), h @ W_hh.
        self.terms = np.zeros((n + 2 + 2 * (step.multi_w is not None), batch, four_h),
                              np.float32)
        if step.multi_w is not None:
            self.terms[n + 2] = step.multi_b
        self.gates = np.empty((batch, four_h), np.float32)
        self.below = np.empty((batch, 2 * step.config.hidden), np.float32)  # [h below, h]
        self.tanh_c = np.empty((batch, step.config.hidden), np.float32)


# Weights read from a file keep one dict of arrays: their stepper's tables (~10 ms to build)
# are built once, and each caller gets a copy with work arrays of its own.
_BUILT: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def fast_step(weights: LayerWeights) -> Any:
    """The numpy stepper of an LSTM layer model; any other model (e.g. Markov) as it is."""
    arrays = weights.numpy_arrays()
    if arrays is None:
        return weights.model
    arrays_then, built = _BUILT.get(weights, (None, None))
    if arrays_then is not arrays:  # a model's weights come as a new dict: they may have moved
        built = NumpyStep(weights.config, arrays)
        _BUILT[weights] = arrays, built
    return built.fresh()
