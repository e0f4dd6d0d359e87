"""One small conditioned LSTM shared by every layer, and its self-describing weights files.

A layer model reads, at step t, its own previous token and the conditioning inputs of step t
(categorical tokens, 0 meaning "unknown", plus an optional multi-hot vector) and predicts its token
at step t. Weights are stored as safetensors with the config and vocabulary in the metadata, so
loading needs no pickle and no architecture flags.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

FORMAT_VERSION = 1


@dataclass(frozen=True)
class ModelConfig:
    """Architecture of a :class:`ConditionedLSTM`."""

    layer: str  # which layer this model writes: "chords", "melody" or "drums"
    vocab_size: int  # output / own-history tokens
    cond_sizes: tuple[int, ...]  # vocabulary of each categorical condition (index 0 = unknown)
    multi_hot: int = 0  # width of the multi-hot condition (e.g. 12 pitch classes), 0 for none
    embed_dim: int = 64  # own-token embedding width
    cond_dim: int = 16  # width of each condition's embedding
    hidden: int = 256  # LSTM hidden units
    num_layers: int = 2  # stacked LSTM layers
    dropout: float = 0.2  # between LSTM layers and before the output projection

    @classmethod
    def from_dict(cls, d: dict) -> ModelConfig:
        d = dict(d)
        d["cond_sizes"] = tuple(d["cond_sizes"])
        return cls(**d)


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
        width = c.embed_dim + c.cond_dim * (len(c.cond_sizes) + (1 if c.multi_hot else 0))
        self.lstm = nn.LSTM(width, c.hidden, c.num_layers, batch_first=True,
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


@dataclass
class LayerWeights:
    """A trained layer model with everything needed to use it."""

    model: ConditionedLSTM
    vocab: list = field(default_factory=list)  # layer-specific vocabulary description
    card: dict = field(default_factory=dict)  # training facts: data, epochs, bits/step


def save_weights(path: Path, weights: LayerWeights) -> None:
    """Write ``weights`` to ``path`` as safetensors, atomically."""
    from arranger.atomic import atomic_path

    meta = {
        "format_version": str(FORMAT_VERSION),
        "config": json.dumps(asdict(weights.model.config)),
        "vocab": json.dumps(weights.vocab),
        "card": json.dumps(weights.card),
    }
    tensors = {k: v.detach().cpu().contiguous() for k, v in weights.model.state_dict().items()}
    with atomic_path(Path(path)) as tmp:
        save_file(tensors, str(tmp), metadata=meta)


class WeightsError(ValueError):
    """A weights file that cannot be used: wrong format, layer, vocabulary or shapes."""


def load_weights(path: Path, layer: str | None = None) -> LayerWeights:
    """Load a safetensors weights file (never unpickles), checking layer and tensor shapes."""
    path = Path(path)
    try:
        tensors = load_file(str(path))
        from safetensors import safe_open

        with safe_open(str(path), "pt") as f:
            meta = f.metadata() or {}
    except (SafetensorError, OSError, ValueError) as e:
        raise WeightsError(f"{path}: not a safetensors weights file ({_first_line(e)})") from None
    if "config" not in meta:
        raise WeightsError(f"{path}: missing 'config' metadata; not a lofi weights file")
    config = ModelConfig.from_dict(json.loads(meta["config"]))
    if layer is not None and config.layer != layer:
        raise WeightsError(f"{path}: holds a {config.layer!r} model, expected {layer!r}")
    model = ConditionedLSTM(config)
    expected = model.state_dict()
    for name, tensor in expected.items():
        got = tensors.get(name)
        if got is None or tuple(got.shape) != tuple(tensor.shape):
            shape = None if got is None else tuple(got.shape)
            raise WeightsError(f"{path}: tensor {name} has shape {shape}, the config needs "
                               f"{tuple(tensor.shape)}")
    model.load_state_dict(tensors)
    model.eval()
    vocab = json.loads(meta.get("vocab", "[]"))
    if len(vocab) and len(vocab) != config.vocab_size:
        raise WeightsError(f"{path}: vocabulary has {len(vocab)} tokens, the model "
                           f"{config.vocab_size}")
    return LayerWeights(model, vocab, json.loads(meta.get("card", "{}")))


def _first_line(e: Exception) -> str:
    return (str(e).splitlines() or [type(e).__name__])[0]
