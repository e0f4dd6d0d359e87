"""A prepared training job on disk: each layer's windows as .npy files that workers memory-map.

One process reads and encodes the corpus (:mod:`arranger.training.prepare`) and writes the job
here; every training worker on the node maps the same files (``numpy.load(mmap_mode="c")``: the
pages are shared through the page cache, copy-on-write), so N workers neither parse the corpus N
times nor hold N copies of it. ``job.json`` is written last and marks the folder complete.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

from arranger.atomic import write_text
from arranger.training.layer_data import Windows
from arranger.training.train import LayerSplit, TrainConfig
from tracks.model import ModelConfig

JOB_FILE = "job.json"
_ARRAYS = ("prev", "cond", "multi", "target")
_SIDES = ("train", "val")


@dataclass
class Job:
    """Everything a worker needs to train: the layer splits and how to train them."""

    splits: dict[str, LayerSplit]
    cfg: TrainConfig
    out: Path
    device: str = "auto"
    resume: bool = False
    init_from: str = ""  # weights folder to fine-tune ("" = from scratch)
    extras: dict[str, dict] = field(default_factory=dict)  # per layer: more model-card facts


def save_job(folder: Path, job: Job) -> None:
    """Write ``job`` into ``folder`` (arrays first, ``job.json`` last)."""
    folder.mkdir(parents=True, exist_ok=True)
    layers = {}
    for layer, split in job.splits.items():
        for side in _SIDES:
            windows = getattr(split, side)
            for name in _ARRAYS:
                np.save(folder / f"{layer}.{side}.{name}.npy", getattr(windows, name).numpy())
        layers[layer] = {"vocab": split.vocab, "config": asdict(split.config),
                         "songs": split.songs}
    meta = {"layers": layers, "cfg": asdict(job.cfg), "out": str(job.out), "device": job.device,
            "resume": job.resume, "init_from": job.init_from, "extras": job.extras}
    write_text(folder / JOB_FILE, json.dumps(meta))


def load_job(folder: Path) -> Job:
    """The job in ``folder``, its windows memory-mapped."""
    meta = json.loads((folder / JOB_FILE).read_text())
    splits = {}
    for layer, info in meta["layers"].items():
        sides = [Windows(*(_mapped(folder / f"{layer}.{side}.{name}.npy") for name in _ARRAYS))
                 for side in _SIDES]
        splits[layer] = LayerSplit(*sides, info["vocab"], ModelConfig.from_dict(info["config"]),
                                   info["songs"])
    return Job(splits, TrainConfig(**meta["cfg"]), Path(meta["out"]), meta["device"],
               meta["resume"], meta["init_from"], meta["extras"])


def _mapped(path: Path) -> torch.Tensor:
    # "c" (copy-on-write) rather than "r": torch wants a writable buffer; nothing writes to it.
    return torch.from_numpy(np.load(path, mmap_mode="c"))


def is_ready(folder: Path) -> bool:
    return (folder / JOB_FILE).is_file()


def wait_ready(folder: Path, poll_s: float = 0.2) -> None:
    """Wait until the node's preparing worker has written the job.

    No timeout of its own: if that worker fails, the launcher stops this one.
    """
    while not is_ready(folder):
        time.sleep(poll_s)
