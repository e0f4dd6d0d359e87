"""Train the layer models: cross-entropy, held-out bits/step, atomic checkpoints, resume.

Each layer trains on its own. A checkpoint (``<layer>.ckpt.pt``, tensors and plain values only,
loaded with ``weights_only=True``) is written at the end of every epoch; the best model so far is
exported as ``<layer>.safetensors``, which is what ``lofi generate --weights`` reads.
"""

from __future__ import annotations

import math
import os
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import torch
from torch import nn

from arranger.atomic import atomic_path
from arranger.training.layer_data import (
    IGNORE,
    Windows,
    is_validation,
    make_windows,
    song_sequence,
    unigram_bits,
)
from tracks import chords as chord_track
from tracks import drums as drum_track
from tracks import melody as melody_track
from tracks.model import ConditionedLSTM, LayerWeights, ModelConfig, save_weights

OPTIMIZERS = {"adamw": torch.optim.AdamW, "adam": torch.optim.Adam, "rmsprop": torch.optim.RMSprop,
              "adamax": torch.optim.Adamax}
LAYER_MODULES = {"chords": chord_track, "melody": melody_track, "drums": drum_track}


@dataclass(frozen=True)
class TrainConfig:
    """How to train one layer model."""

    epochs: int = 20  # upper bound; early stopping usually ends sooner
    batch_size: int = 64  # windows per optimiser step
    seq_len: int = 128  # tokens per window (steps for melody/drums, beats for chords)
    lr: float = 2e-3  # learning rate
    weight_decay: float = 0.01  # AdamW only
    optimizer: str = "adamw"  # adamw, adam, rmsprop or adamax
    patience: int = 3  # epochs without validation gain before stopping
    min_count: int = 2  # rare-token filter: tokens seen fewer times are never sampled
    val_fraction: float = 0.1  # share of songs held out for validation
    hidden: int = 256  # LSTM units
    num_layers: int = 2  # LSTM layers
    embed_dim: int = 64  # own-token embedding width
    dropout: float = 0.2  # LSTM/output dropout
    seed: int = 0  # shuffling and initialisation
    max_minutes: float = 0.0  # wall-clock budget per layer (0 = none)
    threads: int = 0  # CPU threads for training (0 = every core this process may use)

    def __post_init__(self) -> None:
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"optimizer {self.optimizer!r}: choose one of {', '.join(OPTIMIZERS)}")


def resolve_device(name: str) -> torch.device:
    """``auto`` picks CUDA when present, else CPU; ``cuda`` without a GPU is an error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ValueError("--device cuda: no CUDA GPU is available (use --device auto or cpu)")
    if name not in ("cpu", "cuda"):
        raise ValueError(f"--device {name!r}: choose auto, cpu or cuda")
    return torch.device(name)


@dataclass
class LayerSplit:
    train: Windows
    val: Windows
    vocab: list[str]
    config: ModelConfig
    songs: dict[str, int]  # dataset name -> songs used


def prepare_layer(songs: Sequence, layer: str, cfg: TrainConfig,
                  init: LayerWeights | None = None) -> LayerSplit:
    """Windows for ``layer`` from every song that holds it, split by song.

    With ``init`` (weights to fine-tune) its vocabulary and architecture are kept.
    """
    mod = LAYER_MODULES[layer]
    holding = [s for s in songs if layer in s.layers]
    if not holding:
        raise ValueError(f"no song in the corpus holds a {layer} layer")
    drum_vocab = None
    if layer == "drums" and init is not None:
        drum_vocab = drum_track.DrumVocab.from_list(init.vocab)
    elif layer == "drums":
        train_scores = [s.score for s in holding if not is_validation(s.source, cfg.val_fraction)]
        drum_vocab = drum_track.build_vocab(train_scores, min_count=max(cfg.min_count, 1))
    vocab = drum_vocab.to_list() if drum_vocab else list(mod.VOCAB)
    seqs = {True: [], False: []}
    for s in holding:
        seqs[is_validation(s.source, cfg.val_fraction)].append(
            song_sequence(layer, s.score, s.layers, drum_vocab))
    if not seqs[True]:  # tiny corpora: hold out the last song anyway
        seqs[True].append(seqs[False].pop())
    multi = mod.MULTI_HOT
    config = init.model.config if init is not None else ModelConfig(
        layer, len(vocab), tuple(mod.COND_SIZES), multi, cfg.embed_dim, 16, cfg.hidden,
        cfg.num_layers, cfg.dropout)
    datasets = Counter(getattr(s, "dataset", "") or "user" for s in holding)
    return LayerSplit(make_windows(seqs[False], cfg.seq_len, multi),
                      make_windows(seqs[True], cfg.seq_len, multi), vocab, config, dict(datasets))


@torch.no_grad()
def evaluate_bits(model: ConditionedLSTM, data: Windows, device: torch.device,
                  batch_size: int = 256) -> float:
    """Mean bits per (non-padding) token of ``model`` on ``data``."""
    model.eval()
    total, count = 0.0, 0
    for i in range(0, len(data), batch_size):
        prev, cond, multi, target = data.batch(torch.arange(i, min(i + batch_size, len(data))),
                                               device)
        with _autocast(device):
            logits, _ = model(prev, cond, multi if multi.shape[-1] else None)
        loss = nn.functional.cross_entropy(logits.float().flatten(0, 1), target.flatten(),
                                           ignore_index=IGNORE, reduction="sum")
        total += float(loss)
        count += int((target != IGNORE).sum())
    return total / max(count, 1) / math.log(2)


def _autocast(device: torch.device):
    return torch.autocast("cuda", dtype=torch.bfloat16, enabled=device.type == "cuda")


ProgressFn = Callable[[str, int, int, dict], None]


def train_layer(split: LayerSplit, cfg: TrainConfig, out_dir: Path, device: torch.device, *,
                resume: bool = False, progress: ProgressFn | None = None,
                init: LayerWeights | None = None, extra: dict | None = None) -> dict:
    """Train one layer; returns its model card (also stored in the exported weights).

    ``init``: weights to start from (fine-tuning), e.g. a model trained on a larger corpus.
    ``extra``: more facts for the model card (e.g. how the songs were selected).
    """
    layer = split.config.layer
    if device.type == "cpu":
        # Set explicitly: left at its default, this torch build trains ~5-10x slower here.
        torch.set_num_threads(cfg.threads or len(os.sched_getaffinity(0)))
    torch.manual_seed(cfg.seed)
    model = ConditionedLSTM(split.config)
    if init is not None:
        model.load_state_dict(init.model.state_dict())
    model = model.to(device)
    opt = _optimizer(model, cfg)
    ckpt_path = out_dir / f"{layer}.ckpt.pt"
    state = {"epoch": 0, "best": float("inf"), "bad": 0, "history": []}
    if resume and ckpt_path.exists():
        state = _load_checkpoint(ckpt_path, model, opt, split)
    counts = torch.bincount(split.train.target[split.train.target != IGNORE],
                            minlength=split.config.vocab_size)
    allowed = torch.nonzero(counts >= cfg.min_count).flatten().tolist()
    card = _card(split, cfg, allowed, device) | (extra or {})
    if init is not None:
        card["fine_tuned_from"] = {k: init.card.get(k) for k in
                                   ("datasets", "epochs", "val_bits_per_step", "train_tokens")}
    started = time.monotonic()
    gen = torch.Generator().manual_seed(cfg.seed + state["epoch"])
    try:
        while state["epoch"] < cfg.epochs and state["bad"] < cfg.patience:
            rate = _run_epoch(model, opt, split.train, cfg, device, gen, progress, state["epoch"])
            val = evaluate_bits(model, split.val, device)
            state["epoch"] += 1
            state["history"].append({"epoch": state["epoch"], "val_bits": round(val, 4),
                                     "tokens_per_s": round(rate)})
            improved = val < state["best"] - 1e-4
            state["bad"] = 0 if improved else state["bad"] + 1
            state["best"] = min(val, state["best"])
            card |= {"epochs": state["epoch"], "val_bits_per_step": round(state["best"], 4),
                     "history": state["history"], "train_tokens_per_s": round(rate)}
            if improved:
                save_weights(out_dir / f"{layer}.safetensors", _export(model, split, card))
            _save_checkpoint(ckpt_path, model, opt, state, split)
            if progress:
                progress(layer, state["epoch"], cfg.epochs, {"val_bits": val, "tok/s": rate})
            if cfg.max_minutes and time.monotonic() - started > cfg.max_minutes * 60:
                break
    except KeyboardInterrupt:
        _save_checkpoint(ckpt_path, model, opt, state, split)
        raise
    return card


def _optimizer(model: nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    kwargs = {"lr": cfg.lr}
    if cfg.optimizer == "adamw":
        kwargs["weight_decay"] = cfg.weight_decay
    return OPTIMIZERS[cfg.optimizer](model.parameters(), **kwargs)


def _run_epoch(model, opt, data: Windows, cfg: TrainConfig, device, gen, progress, epoch) -> float:
    model.train()
    order = torch.randperm(len(data), generator=gen)
    started, tokens = time.perf_counter(), 0
    n_batches = math.ceil(len(data) / cfg.batch_size)
    for i in range(n_batches):
        prev, cond, multi, target = data.batch(order[i * cfg.batch_size:(i + 1) * cfg.batch_size],
                                               device)
        with _autocast(device):
            logits, _ = model(prev, cond, multi if multi.shape[-1] else None)
        loss = nn.functional.cross_entropy(logits.float().flatten(0, 1), target.flatten(),
                                           ignore_index=IGNORE)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        tokens += int((target != IGNORE).sum())
        if progress and i % 20 == 0:
            progress(model.config.layer, epoch, cfg.epochs,
                     {"batch": i + 1, "batches": n_batches, "loss": loss.item()})
    return tokens / max(time.perf_counter() - started, 1e-9)


def _card(split: LayerSplit, cfg: TrainConfig, allowed: list[int], device) -> dict:
    params = sum(p.numel() for p in ConditionedLSTM(split.config).parameters())
    return {
        "layer": split.config.layer,
        "datasets": split.songs,
        "train_tokens": split.train.tokens,
        "val_tokens": split.val.tokens,
        "parameters": params,
        "unigram_val_bits_per_step": round(unigram_bits(split.train.target, split.val.target,
                                                        split.config.vocab_size), 4),
        "allowed_tokens": allowed,
        "blind_conditions": blind_conditions(split),
        "train_config": asdict(cfg),
        "device": device.type,
    }


def blind_conditions(split: LayerSplit) -> list[int]:
    """Conditions the training data never gave a known value (e.g. chords for drum-only songs).

    The coordinator feeds those as "unknown" at generation too: a value the model never saw
    would reach an embedding that was never trained.
    """
    mod = LAYER_MODULES[split.config.layer]
    real = split.train.target != IGNORE
    return [i for i in mod.UNKNOWABLE if not (split.train.cond[..., i][real] != 0).any()]


def _export(model: ConditionedLSTM, split: LayerSplit, card: dict) -> LayerWeights:
    cpu = ConditionedLSTM(split.config)
    cpu.load_state_dict({k: v.detach().float().cpu() for k, v in model.state_dict().items()})
    return LayerWeights(cpu, split.vocab, dict(card))


def _save_checkpoint(path: Path, model, opt, state: dict, split: LayerSplit) -> None:
    payload = {"model": model.state_dict(), "optimizer": opt.state_dict(), "state": state,
               "config": asdict(split.config), "vocab": split.vocab}
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)


def _load_checkpoint(path: Path, model, opt, split: LayerSplit) -> dict:
    payload = torch.load(path, map_location="cpu", weights_only=True)
    saved = ModelConfig.from_dict(payload["config"])
    if saved != split.config or payload["vocab"] != split.vocab:
        raise ValueError(f"{path}: checkpoint was trained with another config or vocabulary; "
                         "start without --resume or use another --out")
    model.load_state_dict(payload["model"])
    opt.load_state_dict(payload["optimizer"])
    return payload["state"]


def with_overrides(cfg: TrainConfig, **changes) -> TrainConfig:
    return replace(cfg, **{k: v for k, v in changes.items() if v is not None})
