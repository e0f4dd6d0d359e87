"""Single-step inference of a :class:`ConditionedLSTM` in numpy, for the coordinator's loop.

Generation runs one step at a time at batch 1-16, where PyTorch's per-op overhead costs more
than the arithmetic. Here the first LSTM layer's input projection is folded into lookup tables
(every input is an embedding or a linear map, so ``W_ih @ x`` is a sum of table rows) and each
step is a handful of small numpy matrix products. Built from numpy arrays, so CPU
generation never imports torch. Results match the PyTorch model to float32 rounding.
"""

from __future__ import annotations

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
        """One step in numpy: tokens [B], conds [B, C], multi [B, M] -> logits [B, V], state."""
        x = self.token_table[tokens]
        for i, table in enumerate(self.cond_tables):
            x = x + table[conds[:, i]]
        if self.multi_w is not None:
            x = x + multi @ self.multi_w + self.multi_b
        h, c = state if state is not None else self._zeros(len(tokens))
        h, c = h.copy(), c.copy()
        gates = x + h[0] @ self.w_hh0
        for k in range(self.config.num_layers):
            if k:
                gates = np.concatenate([h[k - 1], h[k]], axis=1) @ self.w_upper[k - 1]
                gates += self.b_upper[k - 1]
            h[k], c[k] = self._cell(gates, c[k])
        return h[-1] @ self.head_w + self.head_b, (h, c)

    def _cell(self, gates: np.ndarray, c: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        hidden = self.config.hidden
        t = np.tanh(gates, out=gates)  # gates are pre-halved: i, f, o = (t + 1) / 2
        sig = t[:, : 3 * hidden] * 0.5 + 0.5
        c = sig[:, hidden : 2 * hidden] * c + sig[:, :hidden] * t[:, 3 * hidden :]
        return sig[:, 2 * hidden :] * np.tanh(c), c

    def _zeros(self, batch: int) -> tuple[np.ndarray, np.ndarray]:
        shape = (self.config.num_layers, batch, self.config.hidden)
        return np.zeros(shape, np.float32), np.zeros(shape, np.float32)


def fast_step(weights: LayerWeights) -> Any:
    """The numpy stepper of an LSTM layer model; any other model (e.g. Markov) as it is."""
    arrays = weights.numpy_arrays()
    return NumpyStep(weights.config, arrays) if arrays is not None else weights.model
