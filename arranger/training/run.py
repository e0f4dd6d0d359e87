"""`lofi train`: read the corpus, train each layer with a progress bar, write the model card."""

from __future__ import annotations

import fnmatch
import json
from collections.abc import Sequence
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from arranger.atomic import write_text
from arranger.training.train import (
    TrainConfig,
    prepare_layer,
    resolve_device,
    train_layer,
    with_overrides,
)

MODEL_CARD = "model_card.json"
console = Console(stderr=True)


def run_training(corpus: Sequence[Path], out: Path, *, layers: str = "chords,melody,drums",
                 device: str = "auto", resume: bool = False, workers: int | None = None,
                 overrides: dict | None = None, base: TrainConfig | None = None,
                 include: Sequence[str] = (), init_from: Path | None = None) -> dict:
    """Train the requested layers on ``corpus`` into ``out``; returns the model cards.

    ``include``: shell patterns; when given, only songs whose source path matches one are used.
    ``init_from``: a weights folder whose models are fine-tuned instead of starting afresh.
    """
    from arranger.corpus.load import load_corpus

    wanted = _layers(layers)
    cfg = with_overrides(base or TrainConfig(), **(overrides or {}))
    dev = resolve_device(device)
    for p in corpus:
        if not Path(p).exists():
            raise FileNotFoundError(f"{p}: no such file or folder")
    songs, report = load_corpus(list(corpus), workers=workers, progress=True)
    console.print(report.summary())
    if include:
        songs = [s for s in songs if any(fnmatch.fnmatch(s.source, p) for p in include)]
        console.print(f"--include kept {len(songs)} songs")
    out.mkdir(parents=True, exist_ok=True)
    cards = {}
    for layer in wanted:
        init = _initial(init_from, layer)
        split = prepare_layer(songs, layer, cfg, init)
        console.print(f"[bold]{layer}[/]: {split.train.tokens:,} training tokens, "
                      f"{split.val.tokens:,} held out, vocabulary {split.config.vocab_size}, "
                      f"device {dev.type}")
        with _bar() as bar:
            task = bar.add_task(layer, total=cfg.epochs, info="")
            cards[layer] = train_layer(split, cfg, out, dev, resume=resume, init=init,
                                       progress=_progress_fn(bar, task),
                                       extra={"include": list(include)} if include else None)
        c = cards[layer]
        console.print(f"  {layer}: {c.get('val_bits_per_step', float('nan')):.3f} bits/step "
                      f"held out (unigram {c['unigram_val_bits_per_step']:.3f}), "
                      f"{c.get('epochs', 0)} epochs")
        write_model_cards(out)
    return cards


ATTRIBUTION = {
    "pop909": "POP909 (Wang et al., ISMIR 2020; music-x-lab/POP909-Dataset), MIT licence",
    "groove-gmd": "Groove MIDI Dataset v1.0.0 (Gillick et al., ICML 2019; Google Magenta), "
                  "CC BY 4.0",
    "openewld": "OpenEWLD (00sapo/OpenEWLD; from the Enhanced Wikifonia Leadsheet Dataset), "
                "MIT licence, scores in the public domain",
}


def model_card_markdown(cards: dict) -> str:
    """A human model card: data and attribution, sizes, epochs, held-out bits/step per layer."""
    lines = ["# lofi layer models", "",
             "Three conditioned LSTMs (see `tracks/model.py`); the bass has no model.", "",
             "| layer | parameters | training tokens | epochs | held-out bits/step | "
             "unigram bits/step |", "|---|---|---|---|---|---|"]
    for layer, c in cards.items():
        lines.append(f"| {layer} | {c['parameters']:,} | {c['train_tokens']:,} | "
                     f"{c.get('epochs', 0)} | {c.get('val_bits_per_step', float('nan')):.3f} | "
                     f"{c['unigram_val_bits_per_step']:.3f} |")
    datasets = sorted({d for c in cards.values() for d in c.get("datasets", {})})
    lines += ["", "## Data", ""]
    lines += [f"- {ATTRIBUTION.get(d, d)}: songs per layer " + ", ".join(
        f"{layer} {c['datasets'][d]}" for layer, c in cards.items() if d in c.get("datasets", {}))
        for d in datasets]
    for layer, c in cards.items():
        base = c.get("fine_tuned_from")
        if base:
            sets = ", ".join(f"{d} ({n} songs)" for d, n in (base.get("datasets") or {}).items())
            lines += ["", f"The {layer} model was fine-tuned from one trained on {sets} for "
                      f"{base.get('epochs')} epochs (held-out {base.get('val_bits_per_step')} "
                      "bits/step there), using only the songs listed above"
                      + (f" (paths matching {', '.join(c['include'])})." if c.get("include")
                         else ".")]
    lines += ["", "Songs were held out for validation by a stable hash of the last three parts "
              "of their path (10%). Training settings per layer are in `model_card.json`. A "
              "condition listed as blind there never had a known value in training (the drum "
              "corpus has no chords or melody), so generation feeds it as unknown.", ""]
    return "\n".join(lines)


def write_model_cards(out: Path) -> dict:
    """model_card.json and MODEL_CARD.md from the cards inside the exported weights in ``out``.

    Rebuilt from the weights files, so layers trained by separate runs all appear.
    """
    from tracks.model import load_weights

    cards = {}
    for layer in ("chords", "melody", "drums"):
        path = out / f"{layer}.safetensors"
        if path.exists():
            cards[layer] = load_weights(path, layer).card
    write_text(out / MODEL_CARD, json.dumps(_public(cards), indent=2) + "\n")
    write_text(out / "MODEL_CARD.md", model_card_markdown(cards))
    return cards


def _initial(init_from: Path | None, layer: str):
    if init_from is None:
        return None
    from tracks.model import load_weights

    path = Path(init_from) / f"{layer}.safetensors"
    if not path.exists():
        raise FileNotFoundError(f"--init-from {init_from}: no {layer}.safetensors there")
    return load_weights(path, layer)


def _layers(text: str) -> list[str]:
    wanted = [x.strip() for x in text.split(",") if x.strip()]
    for layer in wanted:
        if layer not in ("chords", "melody", "drums"):
            raise ValueError(f"--layers: unknown layer {layer!r} (choose chords, melody, drums; "
                             "the bass follows the chords and has no model)")
    return wanted


def _public(cards: dict) -> dict:
    return {k: {kk: vv for kk, vv in v.items() if kk != "allowed_tokens"} for k, v in cards.items()}


def _bar() -> Progress:
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
