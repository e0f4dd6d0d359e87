"""Single-step inference of a :class:`ConditionedLSTM` in numpy, for the coordinator's loop.

Generation runs one step at a time at batch 1-16, where PyTorch's per-op overhead costs more
than the arithmetic. Here the first LSTM layer's input projection is folded into lookup tables
(every input is an embedding or a linear map, so ``W_ih @ x`` is a sum of table rows) and each
step is a handful of small numpy matrix products. Same call signature as the model, so the
coordinator uses either. Results match the PyTorch model to float32 rounding.
"""

from __future__ import annotations

import numpy as np
import torch

from tracks.model import ConditionedLSTM, ModelConfig


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 0.5 * (np.tanh(0.5 * x) + 1.0)  # one tanh: cheaper than exp and never overflows


class NumpyStep:
    """``step(prev, cond, multi, state) -> (logits [B, 1, V], state)`` for T = 1."""

    def __init__(self, model: ConditionedLSTM) -> None:
        self.config: ModelConfig = model.config
        c = model.config
        sd = {k: v.detach().float().cpu().numpy() for k, v in model.state_dict().items()}
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
        self.w_hh = [sd[f"lstm.weight_hh_l{k}"].T.copy() for k in range(c.num_layers)]
        self.w_ih = [None] + [sd[f"lstm.weight_ih_l{k}"].T.copy() for k in range(1, c.num_layers)]
        self.bias = [None] + [sd[f"lstm.bias_ih_l{k}"] + sd[f"lstm.bias_hh_l{k}"]
                              for k in range(1, c.num_layers)]
        self.head_w, self.head_b = sd["head.weight"].T.copy(), sd["head.bias"]

    def __call__(self, prev: torch.Tensor, cond: torch.Tensor, multi: torch.Tensor | None = None,
                 state=None) -> tuple[torch.Tensor, tuple[np.ndarray, np.ndarray]]:
        tokens, conds = prev.numpy()[:, -1], cond.numpy()[:, -1]
        x = self.token_table[tokens]
        for i, table in enumerate(self.cond_tables):
            x = x + table[conds[:, i]]
        if self.multi_w is not None:
            x = x + multi.numpy()[:, -1] @ self.multi_w + self.multi_b
        h, c = state if state is not None else self._zeros(len(tokens))
        h, c = h.copy(), c.copy()
        hidden = self.config.hidden
        for k in range(self.config.num_layers):
            gates = (x if k == 0 else x @ self.w_ih[k] + self.bias[k]) + h[k] @ self.w_hh[k]
            i_g, f_g = _sigmoid(gates[:, :hidden]), _sigmoid(gates[:, hidden:2 * hidden])
            g_g, o_g = np.tanh(gates[:, 2 * hidden:3 * hidden]), _sigmoid(gates[:, 3 * hidden:])
            c[k] = f_g * c[k] + i_g * g_g
            h[k] = o_g * np.tanh(c[k])
            x = h[k]
        logits = x @ self.head_w + self.head_b
        return torch.from_numpy(logits[:, None, :]), (h, c)

    def _zeros(self, batch: int) -> tuple[np.ndarray, np.ndarray]:
        shape = (self.config.num_layers, batch, self.config.hidden)
        return np.zeros(shape, np.float32), np.zeros(shape, np.float32)


def fast_step(model):
    """The numpy stepper for a ConditionedLSTM; any other model (e.g. Markov) as it is."""
    return NumpyStep(model) if isinstance(model, ConditionedLSTM) else model
