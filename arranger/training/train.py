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

from arranger.training import distributed
from arranger.training.checkpoint import load_checkpoint, save_checkpoint
from arranger.training.distributed import SOLO, World
from arranger.training.layer_data import (
    IGNORE,
    Windows,
    is_validation,
    make_windows,
    song_sequence,
    unigram_bits,
)
from arranger.training.unseen import fill_unseen_conditions
from tracks.layers import layer_spec
from tracks.model import ConditionedLSTM, LayerWeights, ModelConfig, save_weights

OPTIMIZERS = {"adamw": torch.optim.AdamW, "adam": torch.optim.Adam, "rmsprop": torch.optim.RMSprop,
              "adamax": torch.optim.Adamax}
SCHEDULES = ("constant", "cosine")


@dataclass(frozen=True)
class TrainConfig:
    """How to train one layer model."""

    epochs: int = 20  # upper bound; early stopping usually ends sooner
    batch_size: int = 64  # windows per optimiser step
    seq_len: int = 128  # tokens per window (steps for melody/drums, beats for chords)
    lr: float = 2e-3  # learning rate (the peak one under a schedule)
    lr_schedule: str = "constant"  # constant, or cosine: from lr down to 0 over `epochs`
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
        if self.lr_schedule not in SCHEDULES:
            raise ValueError(f"lr_schedule {self.lr_schedule!r}: choose one of "
                             f"{', '.join(SCHEDULES)}")


def lr_at(cfg: TrainConfig, progress: float) -> float:
    """The learning rate after ``progress`` epochs (fractional: it moves every step).

    A pure function of the position, so a resumed run continues the same curve without
    scheduler state in the checkpoint. Cosine spans ``cfg.epochs``: set ``max_minutes`` so that
    they all fit, or the run stops before the rate has come down.
    """
    if cfg.lr_schedule == "cosine":
        return cfg.lr * 0.5 * (1.0 + math.cos(math.pi * min(progress / max(cfg.epochs, 1), 1.0)))
    return cfg.lr


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
    spec = layer_spec(layer)
    holding = [s for s in songs if layer in s.layers]
    if not holding:
        raise ValueError(f"no song in the corpus holds a {layer} layer")
    codec = None  # a learnt vocabulary: the fine-tuned model's, else the training songs'
    if init is not None:
        codec = spec.codec(init.vocab)
    elif spec.learn_codec is not None:
        train_scores = [s.score for s in holding if not is_validation(s.source, cfg.val_fraction)]
        codec = spec.learn_codec(train_scores, max(cfg.min_count, 1))
    vocab = spec.vocab_of(codec)
    seqs = {True: [], False: []}
    for s in holding:
        seqs[is_validation(s.source, cfg.val_fraction)].append(
            song_sequence(layer, s.score, s.layers, codec))
    if not seqs[True]:  # tiny corpora: hold out the last song anyway
        seqs[True].append(seqs[False].pop())
    multi = spec.multi_hot
    config = init.model.config if init is not None else ModelConfig(
        layer, len(vocab), spec.cond_sizes, multi, cfg.embed_dim, 16, cfg.hidden,
        cfg.num_layers, cfg.dropout)
    datasets = Counter(getattr(s, "dataset", "") or "user" for s in holding)
    return LayerSplit(make_windows(seqs[False], cfg.seq_len, multi),
                      make_windows(seqs[True], cfg.seq_len, multi), vocab, config, dict(datasets))


@torch.no_grad()
def evaluate_bits(model: ConditionedLSTM, data: Windows, device: torch.device,
                  batch_size: int = 256, world: World = SOLO) -> float:
    """Mean bits per (non-padding) token of ``model`` on ``data``.

    With several workers each scores every ``world.size``-th window and the sums are combined,
    so every worker gets the same figure.
    """
    model.eval()
    total, count = 0.0, 0
    for idx in torch.arange(world.rank, len(data), world.size).split(batch_size):
        prev, cond, multi, target = data.batch(idx, device)
        with _autocast(device):
            logits, _ = model(prev, cond, multi if multi.shape[-1] else None)
        loss = nn.functional.cross_entropy(logits.float().flatten(0, 1), target.flatten(),
                                           ignore_index=IGNORE, reduction="sum")
        total += float(loss)
        count += int((target != IGNORE).sum())
    total, count = distributed.all_sum([total, count], world, device)
    return total / max(count, 1) / math.log(2)


def _autocast(device: torch.device):
    return torch.autocast("cuda", dtype=torch.bfloat16, enabled=device.type == "cuda")


ProgressFn = Callable[[str, int, int, dict], None]


def per_rank_batch(cfg: TrainConfig, world: World) -> int:
    """Windows per worker and step: ``batch_size`` is the global batch, split over the workers
    (so N workers take the same optimiser steps as one)."""
    return max(1, math.ceil(cfg.batch_size / world.size))


def train_layer(split: LayerSplit, cfg: TrainConfig, out_dir: Path, device: torch.device, *,
                resume: bool = False, progress: ProgressFn | None = None,
                init: LayerWeights | None = None, extra: dict | None = None,
                world: World = SOLO) -> dict:
    """Train one layer; returns its model card (also stored in the exported weights).

    ``init``: weights to start from (fine-tuning), e.g. a model trained on a larger corpus.
    ``extra``: more facts for the model card (e.g. how the songs were selected).
    ``world``: this worker's place among several (DistributedDataParallel); only rank 0 writes.
    """
    _set_threads(cfg, device, world)
    torch.manual_seed(cfg.seed)
    model = ConditionedLSTM(split.config)
    if init is not None:
        model.load_state_dict(init.model.state_dict())
    model = model.to(device)
    opt = _optimizer(model, cfg)
    ckpt_path = out_dir / f"{layer_of(split)}.ckpt.pt"
    state = {"epoch": 0, "best": float("inf"), "bad": 0, "history": []}
    if resume and ckpt_path.exists():
        state = load_checkpoint(ckpt_path, model, opt, split)
    card = _card(split, cfg, model, device, world) | (extra or {})
    if init is not None:
        card["fine_tuned_from"] = {k: init.card.get(k) for k in
                                   ("datasets", "epochs", "val_bits_per_step", "train_tokens")}
    net = distributed.wrap(model, world, device)
    try:
        _epochs(net, model, opt, split, cfg, device, world, state, card, out_dir, progress)
    except KeyboardInterrupt:
        if world.main:
            save_checkpoint(ckpt_path, model, opt, state, split)
        raise
    return card


def layer_of(split: LayerSplit) -> str:
    return split.config.layer


def _set_threads(cfg: TrainConfig, device: torch.device, world: World) -> None:
    if device.type == "cpu":
        # Set explicitly: left at its default, this torch build trains ~5-10x slower here.
        # The workers of one node share its cores.
        cores = len(os.sched_getaffinity(0))
        torch.set_num_threads(cfg.threads or max(1, cores // world.local_size))


def _epochs(net, model, opt, split, cfg, device, world, state, card, out_dir, progress) -> None:
    """The epoch loop: train, score, export the best, checkpoint; every worker stops together."""
    layer, started = layer_of(split), time.monotonic()
    while state["epoch"] < cfg.epochs and state["bad"] < cfg.patience:
        rate = _run_epoch(net, opt, split.train, cfg, device, progress, state["epoch"], world)
        val = evaluate_bits(model, split.val, device, world=world)
        state["epoch"] += 1
        state["history"].append({"epoch": state["epoch"], "val_bits": round(val, 4),
                                 "tokens_per_s": round(rate)})
        improved = val < state["best"] - 1e-4
        state["bad"] = 0 if improved else state["bad"] + 1
        state["best"] = min(val, state["best"])
        card |= {"epochs": state["epoch"], "val_bits_per_step": round(state["best"], 4),
                 "history": state["history"], "train_tokens_per_s": round(rate)}
        if world.main:
            if improved:
                save_weights(out_dir / f"{layer}.safetensors", _export(model, split, card))
            save_checkpoint(out_dir / f"{layer}.ckpt.pt", model, opt, state, split)
            if progress:
                progress(layer, state["epoch"], cfg.epochs, {"val_bits": val, "tok/s": rate})
        late = bool(cfg.max_minutes) and time.monotonic() - started > cfg.max_minutes * 60
        if distributed.any_true(late and world.main, world, device):  # rank 0's clock decides
            break


def _optimizer(model: nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    kwargs = {"lr": cfg.lr}
    if cfg.optimizer == "adamw":
        kwargs["weight_decay"] = cfg.weight_decay
    return OPTIMIZERS[cfg.optimizer](model.parameters(), **kwargs)


def epoch_order(n: int, cfg: TrainConfig, epoch: int, world: World) -> torch.Tensor:
    """This worker's windows of ``epoch``, shuffled: its shard of one permutation for all.

    torch's DistributedSampler: the same seed and epoch give every worker the same permutation;
    each takes every ``world.size``-th entry (padded so that all take as many steps).
    """
    from torch.utils.data import DistributedSampler

    sampler = DistributedSampler(range(n), num_replicas=world.size, rank=world.rank,
                                 shuffle=True, seed=cfg.seed)
    sampler.set_epoch(epoch)
    return torch.tensor(list(sampler), dtype=torch.long)


def _run_epoch(net, opt, data: Windows, cfg: TrainConfig, device, progress, epoch,
               world: World) -> float:
    """One pass over this worker's shard; returns the tokens/s of all workers together."""
    net.train()
    order, batch = epoch_order(len(data), cfg, epoch, world), per_rank_batch(cfg, world)
    started, tokens = time.perf_counter(), 0
    n_batches = math.ceil(len(order) / batch)
    for i in range(n_batches):
        for group in opt.param_groups:
            group["lr"] = lr_at(cfg, epoch + i / n_batches)
        prev, cond, multi, target = data.batch(order[i * batch:(i + 1) * batch], device)
        with _autocast(device):
            logits, _ = net(prev, cond, multi if multi.shape[-1] else None)
        loss = nn.functional.cross_entropy(logits.float().flatten(0, 1), target.flatten(),
                                           ignore_index=IGNORE)
        opt.zero_grad(set_to_none=True)
        loss.backward()  # DistributedDataParallel averages the gradients over the workers here
        nn.utils.clip_grad_norm_(net.parameters(), 1.0)
        opt.step()
        tokens += int((target != IGNORE).sum())
        if progress and i % 20 == 0:
            progress(layer_of_net(net), epoch, cfg.epochs,
                     {"batch": i + 1, "batches": n_batches, "loss": loss.item()})
    tokens = distributed.all_sum([tokens], world, device)[0]
    return tokens / max(time.perf_counter() - started, 1e-9)


def layer_of_net(net: nn.Module) -> str:
    return getattr(net, "module", net).config.layer


def _card(split: LayerSplit, cfg: TrainConfig, model: nn.Module, device: torch.device,
          world: World) -> dict:
    params = sum(p.numel() for p in model.parameters())
    counts = torch.bincount(split.train.target[split.train.target != IGNORE],
                            minlength=split.config.vocab_size)
    allowed = torch.nonzero(counts >= cfg.min_count).flatten().tolist()
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
        "distributed": {"world_size": world.size, "backend": distributed.backend(world, device),
                        "devices": f"{world.size} x {_device_name(device)}",
                        "per_rank_batch": per_rank_batch(cfg, world),
                        "global_batch": per_rank_batch(cfg, world) * world.size},
    }


def _device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return f"cuda ({torch.cuda.get_device_name(device)})"
    return device.type


def blind_conditions(split: LayerSplit) -> list[int]:
    """Conditions the training data never gave a known value (e.g. chords for drum-only songs).

    The coordinator feeds those as "unknown" at generation too: a value the model never saw
    would reach an embedding that was never trained.
    """
    spec = layer_spec(split.config.layer)
    real = split.train.target != IGNORE
    return [i for i in spec.unknowable if not (split.train.cond[..., i][real] != 0).any()]


def _export(model: ConditionedLSTM, split: LayerSplit, card: dict) -> LayerWeights:
    # A forked RNG: initialising this throwaway copy must not move the training's random
    # stream (dropout), or a run's result would depend on which epochs improved.
    with torch.random.fork_rng(devices=[]):
        cpu = ConditionedLSTM(split.config)
    cpu.load_state_dict({k: v.detach().float().cpu() for k, v in model.state_dict().items()})
    fill_unseen_conditions(cpu.cond_embeds, split.train.cond, split.train.target != IGNORE)
    return LayerWeights(cpu, split.vocab, dict(card))


def with_overrides(cfg: TrainConfig, **changes) -> TrainConfig:
    return replace(cfg, **{k: v for k, v in changes.items() if v is not None})
