"""Layer weights files without PyTorch: config, shapes, and loading safetensors into numpy.

CPU generation steps the LSTMs in numpy (:mod:`tracks.inference`), so ``lofi generate`` never
needs to import torch (about a second of start-up, and a few hundred MB). The PyTorch model is
built from the same arrays only when something asks for it: training, evaluation, a CUDA device.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

FORMAT_VERSION = 1


@dataclass(frozen=True)
class ModelConfig:
    """Architecture of a :class:`tracks.model.ConditionedLSTM`."""

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
    def from_dict(cls, d: dict, where: str = "weights: config") -> ModelConfig:
        """Build from a decoded config, its types checked against the annotations.

        ``where`` is ``"FILE: config"``; a missing, unknown or mistyped field raises
        :class:`WeightsError`, one line naming it (a crafted file must not give a TypeError).
        """
        from arranger.errors import InputError
        from arranger.settings import parse, split_where

        try:
            return parse(cls, d, *split_where(where))
        except InputError as e:
            raise WeightsError(str(e)) from None

    @property
    def lstm_input(self) -> int:
        """Width of the first LSTM layer's input: the token and condition embeddings."""
        return self.embed_dim + self.cond_dim * (len(self.cond_sizes) + bool(self.multi_hot))


def tensor_shapes(config: ModelConfig) -> dict[str, tuple[int, ...]]:
    """Name -> shape of every tensor of the model's ``state_dict`` (PyTorch's names)."""
    c, gates = config, 4 * config.hidden
    shapes: dict[str, tuple[int, ...]] = {"token_embed.weight": (c.vocab_size, c.embed_dim)}
    for i, n in enumerate(c.cond_sizes):
        shapes[f"cond_embeds.{i}.weight"] = (n, c.cond_dim)
    if c.multi_hot:
        shapes["multi_proj.weight"] = (c.cond_dim, c.multi_hot)
        shapes["multi_proj.bias"] = (c.cond_dim,)
    for k in range(c.num_layers):
        shapes[f"lstm.weight_ih_l{k}"] = (gates, c.lstm_input if k == 0 else c.hidden)
        shapes[f"lstm.weight_hh_l{k}"] = (gates, c.hidden)
        shapes[f"lstm.bias_ih_l{k}"] = (gates,)
        shapes[f"lstm.bias_hh_l{k}"] = (gates,)
    shapes["head.weight"] = (c.vocab_size, c.hidden)
    shapes["head.bias"] = (c.vocab_size,)
    return shapes


class WeightsError(ValueError):
    """A weights file that cannot be used: wrong format, layer, vocabulary or shapes."""


@dataclass(frozen=True)
class InferenceSettings:
    """How generation must run a model, as its training found out.

    Stored in the weights file's card under the same keys (so every file written so far reads).

    allowed_tokens : the tokens the model may sample (seen often enough in training), sorted;
        None: every token.
    blind_conditions : condition columns training never saw known (e.g. chords for a drum
        corpus): generation feeds them as unknown (0), see ``train.blind_conditions``.
    """

    allowed_tokens: tuple[int, ...] | None = None
    blind_conditions: tuple[int, ...] = ()

    @classmethod
    def from_card(cls, card: Mapping, vocab_size: int, n_conditions: int,
                  where: str = "weights") -> InferenceSettings:
        """The settings a model card holds, checked against the model's sizes."""
        allowed = card.get("allowed_tokens")
        return cls(None if allowed is None else _indices(allowed, vocab_size, where,
                                                         "allowed_tokens"),
                   _indices(card.get("blind_conditions", []), n_conditions, where,
                            "blind_conditions"))

    def to_card(self) -> dict:
        """The card keys holding these settings (``allowed_tokens`` left out when None)."""
        out: dict = {"blind_conditions": list(self.blind_conditions)}
        if self.allowed_tokens is not None:
            out["allowed_tokens"] = list(self.allowed_tokens)
        return out

    def allowed_mask(self, vocab_size: int) -> np.ndarray:
        """Bool [vocab_size]: True where a token may be sampled."""
        if self.allowed_tokens is None:
            return np.ones(vocab_size, bool)
        mask = np.zeros(vocab_size, bool)
        mask[np.asarray(self.allowed_tokens, dtype=np.int64)] = True
        return mask


def _indices(values: Any, size: int, where: str, name: str) -> tuple[int, ...]:
    ok = isinstance(values, list | tuple) and all(
        isinstance(v, int) and not isinstance(v, bool) and 0 <= v < size for v in values)
    if not ok:
        raise WeightsError(f"{where}: card.{name} = {str(values)[:80]}: expected a list of "
                           f"integers in 0..{size - 1}")
    return tuple(sorted(set(values)))


class LayerWeights:
    """A trained layer model with everything needed to use it.

    Built either from a model (training, tests, the Markov baseline) or, when read from a file,
    from numpy arrays; then ``model`` builds the PyTorch module on first use. ``inference``
    defaults to the settings the card holds.
    """

    def __init__(self, model: Any = None, vocab: list | None = None, card: dict | None = None,
                 *, config: ModelConfig | None = None,
                 arrays: dict[str, np.ndarray] | None = None,
                 inference: InferenceSettings | None = None) -> None:
        if model is None and (config is None or arrays is None):
            raise ValueError("LayerWeights needs a model, or a config and its arrays")
        self._model, self._arrays = model, arrays
        self.config: ModelConfig = config if config is not None else model.config
        self.vocab = list(vocab or [])
        self.card = dict(card or {})
        self.inference = inference or InferenceSettings.from_card(
            self.card, self.config.vocab_size, len(self.config.cond_sizes))

    @property
    def model(self) -> Any:
        """The PyTorch model (or the drop-in it was built with); imports torch if needed."""
        if self._model is None:
            from tracks.model import model_from_arrays

            self._model = model_from_arrays(self.config, self._arrays)
        return self._model

    def numpy_arrays(self) -> dict[str, np.ndarray] | None:
        """The current weights as float32 arrays; None for a model without any (Markov)."""
        if self._model is None:
            return self._arrays
        state_dict = getattr(self._model, "state_dict", None)
        if state_dict is None or not hasattr(self._model, "lstm"):
            return None
        return {k: v.detach().float().cpu().numpy() for k, v in state_dict().items()}


MAX_MODEL_BYTES = 256 * 2**20  # a lofi layer model is ~4 MB; a file declaring more is not one
_DTYPES = {"F16": 2, "F32": 4, "F64": 8}  # what numpy reads, bytes per value


def read_weights(path: Path, layer: str | None = None) -> LayerWeights:
    """Read a safetensors weights file into numpy (never unpickles), checking layer and shapes.

    Everything the header declares (config, tensor names, shapes, dtypes, total size) is checked
    before a single tensor is read, so a crafted file cannot make us allocate gigabytes.
    """
    from safetensors import SafetensorError, safe_open

    path = Path(path)
    try:
        with safe_open(str(path), "np") as f:
            meta = f.metadata() or {}
            config = _config_of(meta, path, layer)
            _check_header(f, config, path)
            arrays = {name: f.get_tensor(name) for name in f.keys()}  # noqa: SIM118 (no iter)
    except WeightsError:
        raise
    except (SafetensorError, OSError, ValueError, TypeError) as e:
        raise WeightsError(f"{path}: not a safetensors weights file ({_first_line(e)})") from None
    vocab = _json(meta, "vocab", [], path)
    if not isinstance(vocab, list) or (len(vocab) and len(vocab) != config.vocab_size):
        raise WeightsError(f"{path}: vocabulary has {len(vocab)} tokens, the model "
                           f"{config.vocab_size}")
    arrays = {k: np.ascontiguousarray(v, dtype=np.float32) for k, v in arrays.items()}
    card = _json(meta, "card", {}, path)
    inference = InferenceSettings.from_card(card, config.vocab_size, len(config.cond_sizes),
                                            str(path))
    return LayerWeights(None, vocab, card, config=config, arrays=arrays, inference=inference)


def _json(meta: Mapping[str, str], key: str, default: Any, path: Path) -> Any:
    try:
        return json.loads(meta[key]) if key in meta else default
    except (ValueError, RecursionError):
        raise WeightsError(f"{path}: metadata {key!r} is not valid JSON") from None


def _config_of(meta: Mapping[str, str], path: Path, layer: str | None) -> ModelConfig:
    if "config" not in meta:
        raise WeightsError(f"{path}: missing 'config' metadata; not a lofi weights file")
    raw = _json(meta, "config", None, path)
    if not isinstance(raw, dict):
        raise WeightsError(f"{path}: config = {raw!r:.60}: expected a table")
    config = ModelConfig.from_dict(raw, f"{path}: config")
    if layer is not None and config.layer != layer:
        raise WeightsError(f"{path}: holds a {config.layer!r} model, expected {layer!r}")
    return config


def _check_header(f: Any, config: ModelConfig, path: Path) -> None:
    """Names, shapes, dtypes and total size as the header declares them, read no tensor."""
    expected = tensor_shapes(config)
    names = set(f.keys())
    if names != set(expected):
        odd = sorted(names ^ set(expected))[:3]
        raise WeightsError(f"{path}: tensors {odd} do not match the config")
    total = 0
    for name, shape in expected.items():
        piece = f.get_slice(name)
        found, dtype = tuple(piece.get_shape()), piece.get_dtype()
        if found != shape:
            raise WeightsError(f"{path}: tensor {name} has shape {found}, the config needs "
                               f"{shape}")
        if dtype not in _DTYPES:
            raise WeightsError(f"{path}: tensor {name} has dtype {dtype}: expected one of "
                               f"{', '.join(_DTYPES)}")
        total += int(np.prod(shape, dtype=np.float64)) * _DTYPES[dtype]
    if total > MAX_MODEL_BYTES:
        raise WeightsError(f"{path}: declares {total / 2**20:.0f} MB of tensors: expected at "
                           f"most {MAX_MODEL_BYTES // 2**20} MB")


def _first_line(e: Exception) -> str:
    return (str(e).splitlines() or [type(e).__name__])[0]
