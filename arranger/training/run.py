"""`lofi train`: prepare the job, then train it here, in N launched workers, or as one of them.

Three ways in, one training loop (:func:`train_job`):

- one process (``--nproc 1``): prepare and train here;
- ``--nproc N``: prepare here, write the encoded job to a temporary folder, and start N workers
  with torch's elastic launcher (:func:`arranger.training.distributed.launch`);
- under ``torchrun`` (``WORLD_SIZE`` set): local rank 0 of each node prepares the job into a
  node-local folder while the node's other workers wait, then all map it and train.
"""

from __future__ import annotations

import contextlib
import hashlib
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from arranger.errors import InputError
from arranger.training import distributed
from arranger.training.cards import worse_than_unigram, write_model_cards
from arranger.training.distributed import SOLO, World
from arranger.training.encoded import Job, is_ready, load_job, save_job, wait_ready
from arranger.training.prepare import check_writable, initial, parse_layers, prepare_job
from arranger.training.train import TrainConfig, resolve_device, train_layer, with_overrides

MAX_NPROC = 256
console = Console(stderr=True)


def run_training(corpus: Sequence[Path], out: Path, *, layers: str | None = None,
                 device: str = "auto", resume: bool = False, workers: int | None = None,
                 overrides: dict | None = None, base: TrainConfig | None = None,
                 include: Sequence[str] = (), init_from: Path | None = None,
                 nproc: int = 1) -> dict:
    """Train the layer models on ``corpus`` into ``out``; returns the model cards.

    Parameters
    ----------
    layers : comma-separated layers to train; None: every layer the corpus holds (the others
        are copied from the shipped weights, or from ``init_from``).
    include : shell patterns; when given, only songs whose source path matches one are used.
    init_from : a weights folder whose models are fine-tuned instead of starting afresh.
    nproc : training processes on this machine (DistributedDataParallel), 1..MAX_NPROC.
    """
    cfg = with_overrides(base or TrainConfig(), **(overrides or {}))
    if layers is not None:
        parse_layers(layers)  # a typo fails before the corpus is read
    resolve_device(device)
    if not 1 <= nproc <= MAX_NPROC:
        raise InputError("nproc", nproc, f"1..{MAX_NPROC} training processes")
    prep = dict(layers=layers, cfg=cfg, device=device, resume=resume, workers=workers,
                include=include, init_from=init_from)
    world = distributed.current()
    if world.size > 1:
        return _as_worker(corpus, Path(out), world, prep)
    check_writable(Path(out))
    with writing(Path(out)):
        job = prepare_job(corpus, Path(out), say=console.print, **prep)
        cards = train_job(job) if nproc == 1 else _launch(job, nproc)
    _say_done(Path(out))
    return cards


@contextlib.contextmanager
def writing(out: Path) -> Iterator[None]:
    """A failed write into ``out`` (disk full, read-only) becomes one line for the user.

    Every file there is written atomically, so what it held stays whole.
    """
    from safetensors import SafetensorError  # raised instead of OSError when its write fails

    try:
        yield
    except FileNotFoundError:
        raise
    except (OSError, SafetensorError) as e:
        detail = getattr(e, "strerror", None) or (str(e).splitlines() or [type(e).__name__])[0]
        raise ValueError(f"--out {out}: writing failed ({detail[:120]}); the files there are "
                         "as the last finished epoch left them") from None


def train_job(job: Job, world: World = SOLO) -> dict:
    """Train every layer of ``job`` as this worker; rank 0 writes the weights and cards."""
    device = distributed.worker_device(resolve_device(job.device), world)
    distributed.start(world, device)
    try:
        with distributed.peer_errors(world):
            return {layer: _train_one(job, layer, device, world) for layer in job.splits}
    finally:
        distributed.stop(world)


def _train_one(job: Job, layer: str, device, world: World) -> dict:
    split, cfg = job.splits[layer], job.cfg
    if world.main:
        console.print(f"[bold]{layer}[/]: {split.train.tokens:,} training tokens, "
                      f"{split.val.tokens:,} held out, vocabulary {split.config.vocab_size}, "
                      f"{world.size} x {device.type}")
    with _bar(world.main) as bar:
        update = _progress_fn(bar, bar.add_task(layer, total=cfg.epochs, info="")) if bar else None
        card = train_layer(split, cfg, job.out, device, resume=job.resume or world.restarts > 0,
                           init=initial(job.init_from, layer), progress=update,
                           extra=job.extras.get(layer) or None, world=world)
    if world.main:
        _say_result(layer, card)
        write_model_cards(job.out)
    return card


def _say_result(layer: str, card: dict) -> None:
    console.print(f"  {layer}: {card.get('val_bits_per_step', float('nan')):.3f} bits/step "
                  f"held out (unigram {card['unigram_val_bits_per_step']:.3f}), "
                  f"{card.get('epochs', 0)} epochs, {card.get('train_tokens_per_s', 0):,} tokens/s")
    if worse_than_unigram(card):
        console.print(f"[bold yellow]warning:[/] the {layer} model is no better than the unigram "
                      "baseline (it predicts no better than token frequencies): give it more "
                      "songs or epochs, or a smaller --hidden", highlight=False)


def _say_done(out: Path) -> None:
    cards = write_model_cards(out)
    trained = [k for k, c in cards.items() if not c.get("copied_from")]
    copied = [k for k, c in cards.items() if c.get("copied_from")]
    console.print(f"weights in {out}: trained {', '.join(trained) or 'none'}"
                  + (f"; copied (not trained here) {', '.join(copied)}" if copied else "")
                  + f". Generate with: lofi generate --weights {out}", highlight=False)


def _launch(job: Job, nproc: int) -> dict:
    """Write the encoded job for the workers, start them, and wait for them."""
    folder = Path(tempfile.mkdtemp(prefix="lofi-train-"))
    try:
        save_job(folder, job)
        console.print(f"starting {nproc} training workers (torch.distributed elastic launcher)")
        distributed.launch(nproc, [str(folder)])
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    return write_model_cards(job.out)


def _as_worker(corpus: Sequence[Path], out: Path, world: World, prep: dict) -> dict:
    """One worker started by ``torchrun``: the node's local rank 0 prepares, all then train."""
    digest = hashlib.sha1(str(out.resolve()).encode()).hexdigest()[:10]
    folder = Path(tempfile.gettempdir()) / f"lofi-train-{world.run_id}-{digest}"
    with writing(out):
        if world.local_main and not is_ready(folder):
            if world.main:
                check_writable(out)
            say = console.print if world.main else (lambda _text: None)
            save_job(folder, prepare_job(corpus, out, say=say, main=world.main, **prep))
        else:
            wait_ready(folder)
        cards = train_job(load_job(folder), world)
    if world.local_main:  # every worker of the node has mapped it (training synchronised them)
        shutil.rmtree(folder, ignore_errors=True)
    if world.main:
        _say_done(out)
    return cards


def _bar(enabled: bool):
    if not enabled:
        return contextlib.nullcontext()
    return Progress(TextColumn("[bold]{task.description}"), BarColumn(),
                    TextColumn("epoch {task.completed}/{task.total}"),
                    TextColumn("{task.fields[info]}"),
                    TimeElapsedColumn(), console=console, transient=False)


def _progress_fn(bar: Progress, task):
    def update(layer: str, epoch: int, total: int, info: dict) -> None:
        if "val_bits" in info:
            bar.update(task, completed=epoch,
                       info=f"val {info['val_bits']:.3f} bits/step, {info['tok/s']:,.0f} tok/s")
        else:
            bar.update(task, info=f"batch {info['batch']}/{info['batches']} "
                                  f"loss {info['loss']:.3f}")
    return update
