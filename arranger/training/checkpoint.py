"""Training checkpoints (``<layer>.ckpt.pt``): model, optimiser, epoch state and RNG streams.

Tensors and plain values only, read back with ``weights_only=True``: a checkpoint is never a
way to run code. The random streams are saved too, so ``--resume`` continues exactly the run
that was interrupted.
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from torch import nn

from arranger.atomic import atomic_path
from tracks.model import ModelConfig

if TYPE_CHECKING:  # train imports this module
    from arranger.training.train import LayerSplit


def save_checkpoint(path: Path, model: nn.Module, opt: torch.optim.Optimizer, state: dict,
                    split: LayerSplit) -> None:
    payload = {"model": model.state_dict(), "optimizer": opt.state_dict(), "state": state,
               "config": asdict(split.config), "vocab": split.vocab, "rng": _rng_state(model)}
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)


def load_checkpoint(path: Path, model: nn.Module, opt: torch.optim.Optimizer,
                    split: LayerSplit) -> dict:
    """Restore ``model`` and ``opt`` from a checkpoint; returns the epoch state.

    ``weights_only=True``: tensors and plain values only, no code runs. A truncated, foreign or
    pickle-bearing file is a one-line ``ValueError``, and the file is left as it is.
    """
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
        saved = ModelConfig.from_dict(payload["config"])
        same = saved == split.config and payload["vocab"] == split.vocab
    except Exception as e:  # noqa: BLE001 (any failure of an untrusted file is the same answer)
        raise _bad_checkpoint(path, e) from None
    if not same:
        raise ValueError(f"{path}: checkpoint was trained with another config or vocabulary; "
                         "start without --resume or use another --out")
    try:
        model.load_state_dict(payload["model"])
        opt.load_state_dict(payload["optimizer"])
        state = dict(payload["state"])
        state = {"epoch": int(state["epoch"]), "best": float(state["best"]),
                 "bad": int(state["bad"]), "history": list(state["history"])}
        _set_rng_state(model, payload.get("rng"))  # older checkpoints hold none
    except Exception as e:  # noqa: BLE001
        raise _bad_checkpoint(path, e) from None
    return state


def _rng_state(model: nn.Module) -> dict:
    """The random streams dropout draws from, so that a resumed run goes on exactly as an
    uninterrupted one would (same seed, same weights)."""
    device = next(model.parameters()).device
    out = {"cpu": torch.random.get_rng_state()}
    if device.type == "cuda":
        out["cuda"] = torch.cuda.get_rng_state(device)
    return out


def _set_rng_state(model: nn.Module, rng: dict | None) -> None:
    if not rng:
        return
    torch.random.set_rng_state(rng["cpu"])
    device = next(model.parameters()).device
    if device.type == "cuda" and "cuda" in rng:
        torch.cuda.set_rng_state(rng["cuda"], device)


def _bad_checkpoint(path: Path, e: Exception) -> ValueError:
    detail = (str(e).strip().splitlines() or [type(e).__name__])[0][:100]
    return ValueError(f"{path}: this checkpoint cannot be read ({detail}); --resume needs one "
                      "written by `lofi train`: delete it or train without --resume")
