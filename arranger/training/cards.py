"""Model cards of a weights folder (``model_card.json``, ``MODEL_CARD.md``); untrained layers.

A layer the user did not train (or the corpus cannot train: POP909 has no drums) is copied from
the shipped weights, so ``lofi generate --weights DIR`` always finds three models; its card says
where it came from (``copied_from``, ``copied_because``) and the markdown card says so in words.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

from arranger.atomic import write_bytes, write_text
from tracks.drums import VELOCITY_CARD
from tracks.layers import MODEL_LAYERS

MODEL_CARD = "model_card.json"
ATTRIBUTION = {
    "pop909": "POP909 (Wang et al., ISMIR 2020; music-x-lab/POP909-Dataset), MIT licence",
    "groove-gmd": "Groove MIDI Dataset v1.0.0 (Gillick et al., ICML 2019; Google Magenta), "
                  "CC BY 4.0",
    "openewld": "OpenEWLD (00sapo/OpenEWLD; from the Enhanced Wikifonia Leadsheet Dataset), "
                "MIT licence, scores in the public domain",
}


def worse_than_unigram(card: dict) -> bool:
    """True when held-out bits/step are no better than the add-one unigram's (it learnt nothing)."""
    val, unigram = card.get("val_bits_per_step"), card.get("unigram_val_bits_per_step")
    return val is not None and unigram is not None and val >= unigram


def copy_untrained(out: Path, layer: str, source: Path, because: str) -> bool:
    """Copy ``source/<layer>.safetensors`` into ``out`` unless ``out`` already holds one.

    Returns True when copied. The copy's card records ``copied_from`` and ``copied_because``.
    """
    from tracks.model import LayerWeights, load_weights, save_weights

    target = out / f"{layer}.safetensors"
    if target.exists():
        return False
    w = load_weights(Path(source) / f"{layer}.safetensors", layer)
    card = w.card | {"copied_from": str(Path(source).resolve()), "copied_because": because}
    save_weights(target, LayerWeights(w.model, w.vocab, card))
    return True


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
    lines += _condition_lines(cards)
    lines += _copied_lines(cards) + _warning_lines(cards) + _data_lines(cards)
    lines += _fine_tune_lines(cards) + _distributed_lines(cards)
    lines += ["", "Songs were held out for validation by a stable hash of the last three parts "
              "of their path (10%). Training settings per layer are in `model_card.json`. A "
              "condition listed as blind there never had a known value in training (the drum "
              "corpus has no chords or melody), so generation feeds it as unknown.", ""]
    return "\n".join(lines)


def _condition_lines(cards: dict) -> list[str]:
    """What each model was built to hear: one line per layer, from its own config."""
    lines = ["", "Conditions each model was trained with (how many, and the values each takes; "
             "blind ones are fed as unknown):", ""]
    for layer, c in cards.items():
        sizes = c.get("conditions")
        if sizes is None:
            continue
        blind = c.get("blind_conditions") or []
        lines.append(f"- {layer}: {len(sizes)} ({', '.join(map(str, sizes))})"
                     + (f"; blind: {', '.join(map(str, blind))}" if blind else "")
                     + ("; per-class velocity table" if c.get(VELOCITY_CARD) else ""))
    return lines if len(lines) > 3 else []


def _copied_lines(cards: dict) -> list[str]:
    return [line for layer, c in cards.items() if c.get("copied_from") for line in (
        "", f"The {layer} model was not trained here ({c.get('copied_because', '')}): it is a "
            f"copy of the one in `{c['copied_from']}`, and its numbers are that model's.")]


def _warning_lines(cards: dict) -> list[str]:
    return [line for layer, c in cards.items() if worse_than_unigram(c) for line in (
        "", f"**Warning**: the {layer} model is no better than the unigram baseline on held-out "
            "songs; it needs more data or epochs (or a smaller model) before it is useful.")]


def _data_lines(cards: dict) -> list[str]:
    datasets = sorted({d for c in cards.values() for d in c.get("datasets", {})})
    return ["", "## Data", ""] + [
        f"- {ATTRIBUTION.get(d, d)}: songs per layer " + ", ".join(
            f"{layer} {c['datasets'][d]}" for layer, c in cards.items()
            if d in c.get("datasets", {})) for d in datasets]


def _fine_tune_lines(cards: dict) -> list[str]:
    lines = []
    for layer, c in cards.items():
        base = c.get("fine_tuned_from")
        if base:
            sets = ", ".join(f"{d} ({n} songs)" for d, n in (base.get("datasets") or {}).items())
            lines += ["", f"The {layer} model was fine-tuned from one trained on {sets} for "
                      f"{base.get('epochs')} epochs (held-out {base.get('val_bits_per_step')} "
                      "bits/step there), using only the songs listed above"
                      + (f" (paths matching {', '.join(c['include'])})." if c.get("include")
                         else ".")]
    return lines


def _distributed_lines(cards: dict) -> list[str]:
    lines = []
    for layer, c in cards.items():
        d = c.get("distributed")
        if d and d.get("world_size", 1) > 1 and not c.get("copied_from"):  # one process: no news
            lines += ["", f"The {layer} model trained on {d['world_size']} processes "
                      f"({d['devices']}, {d['backend']}), {d['per_rank_batch']} windows per "
                      f"rank and step, {c.get('train_tokens_per_s', 0):,} tokens/s in all."]
    return lines


def write_model_cards(out: Path) -> dict:
    """model_card.json and MODEL_CARD.md from the cards inside the exported weights in ``out``.

    Rebuilt from the weights files, so layers trained by separate runs all appear.
    """
    from tracks.model import load_weights

    cards = {}
    for layer in MODEL_LAYERS:
        path = out / f"{layer}.safetensors"
        if path.exists():
            w = load_weights(path, layer)
            cards[layer] = w.card | {"conditions": list(w.model.config.cond_sizes)}
    write_text(out / MODEL_CARD, json.dumps(_public(cards), indent=2) + "\n")
    write_text(out / "MODEL_CARD.md", model_card_markdown(cards))
    return cards


def _public(cards: dict) -> dict:
    """The cards as model_card.json shows them: bulky tables that live in the weights files
    (allowed tokens, the drums' velocity table) are named, not copied."""
    def shown(key: str, value):
        if key == VELOCITY_CARD:
            return {"styles": sorted(value.get("styles", {})), "in": "drums.safetensors"}
        return value

    return {k: {kk: shown(kk, vv) for kk, vv in v.items() if kk != "allowed_tokens"}
            for k, v in cards.items()}


def assemble_weights(out: Path, sources: Mapping[str, Path]) -> dict:
    """Build one weights folder from layers trained in separate runs.

    ``sources`` maps a layer to the folder whose ``<layer>.safetensors`` is taken, byte for
    byte (its card travels inside it); layers not named keep the file ``out`` holds. Every file
    is checked to load as its layer before anything is written, then the cards are rebuilt from
    the files, so ``model_card.json`` and ``MODEL_CARD.md`` describe exactly what is there.
    Returns the cards.
    """
    from tracks.model import load_weights

    files = {}
    for layer, folder in sources.items():
        path = Path(folder) / f"{layer}.safetensors"
        load_weights(path, layer)  # a missing, foreign or damaged file fails here, not later
        files[layer] = path.read_bytes()
    Path(out).mkdir(parents=True, exist_ok=True)
    for layer, data in files.items():
        write_bytes(Path(out) / f"{layer}.safetensors", data)
    return write_model_cards(Path(out))
