"""One small conditioned LSTM shared by every layer, and its self-describing weights files.

A layer model reads, at step t, its own previous token and the conditioning inputs of step t
(categorical tokens, 0 meaning "unknown", plus an optional multi-hot vector) and predicts its token
at step t. Weights are stored as safetensors with the config and vocabulary in the metadata, so
loading needs no pickle and no architecture flags.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import save_file
from torch import nn

from tracks.weights_file import (  # noqa: F401 (re-exported: the model's file format)
    FORMAT_VERSION,
    LayerWeights,
    ModelConfig,
    WeightsError,
    read_weights,
)

State = tuple[torch.Tensor, torch.Tensor]


class ConditionedLSTM(nn.Module):
    """Embeddings of own previous token and conditions -> stacked LSTM -> logits."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        c = config
        self.token_embed = nn.Embedding(c.vocab_size, c.embed_dim)
        self.cond_embeds = nn.ModuleList(nn.Embedding(n, c.cond_dim) for n in c.cond_sizes)
        self.multi_proj = nn.Linear(c.multi_hot, c.cond_dim) if c.multi_hot else None
        self.lstm = nn.LSTM(c.lstm_input, c.hidden, c.num_layers, batch_first=True,
                            dropout=c.dropout if c.num_layers > 1 else 0.0)
        self.drop = nn.Dropout(c.dropout)
        self.head = nn.Linear(c.hidden, c.vocab_size)

    def forward(self, prev: torch.Tensor, cond: torch.Tensor, multi: torch.Tensor | None = None,
                state: State | None = None) -> tuple[torch.Tensor, State]:
        """Logits for each step.

        Parameters
        ----------
        prev : long [B, T], own token of the step before (0 = start).
        cond : long [B, T, C], categorical conditions of this step.
        multi : float [B, T, M] or None, multi-hot condition of this step.
        state : LSTM (h, c), each [num_layers, B, hidden], carried between calls.

        Returns
        -------
        logits [B, T, vocab_size] and the new state.
        """
        parts = [self.token_embed(prev)]
        parts += [emb(cond[..., i]) for i, emb in enumerate(self.cond_embeds)]
        if self.multi_proj is not None:
            parts.append(self.multi_proj(multi))
        out, state = self.lstm(torch.cat(parts, dim=-1), state)
        return self.head(self.drop(out)), state


def save_weights(path: Path, weights: LayerWeights) -> None:
    """Write ``weights`` to ``path`` as safetensors, atomically."""
    from arranger.atomic import atomic_path

    meta = {
        "format_version": str(FORMAT_VERSION),
        "config": json.dumps(asdict(weights.model.config)),
        "vocab": json.dumps(weights.vocab),
        "card": json.dumps(weights.card | weights.inference.to_card()),
    }
    tensors = {k: v.detach().cpu().contiguous() for k, v in weights.model.state_dict().items()}
    with atomic_path(Path(path)) as tmp:
        save_file(tensors, str(tmp), metadata=meta)


def model_from_arrays(config: ModelConfig, arrays: dict[str, np.ndarray]) -> ConditionedLSTM:
    """The PyTorch model holding ``arrays`` (as checked by ``tracks.weights_file.read_weights``)."""
    model = ConditionedLSTM(config)
    model.load_state_dict({k: torch.from_numpy(np.array(arrays[k]))
                           for k in model.state_dict()})
    return model.eval()


load_weights = read_weights  # the name training and the tests know
