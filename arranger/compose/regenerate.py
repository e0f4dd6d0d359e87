"""Regenerate one layer of a written song (or a bar range of it), every other layer kept.

For a bar range the models are warmed up on the bars before it and ``CANDIDATES`` takes are
sampled; the one under which the kept bars after the range are most likely is chosen. The song
folder is locked while it changes (:func:`arranger.atomic.song_lock`), so two runs on one song
take turns instead of one silently losing the other's edit.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from arranger import midi_io
from arranger.atomic import (
    LOCK_TIMEOUT_S,
    clean_stale,
    interrupt_on_sigterm,
    song_lock,
    staged_dir,
)
from arranger.audio.ahead import closed_if_unused
from arranger.compose.coordinator import Models
from arranger.compose.generate import (
    check_soundfont,
    derive_bass,
    generation_device,
)
from arranger.compose.plan import FREE, Forced
from arranger.compose.song_folder import Output, write_song
from arranger.errors import InputError
from arranger.manifest import Manifest
from arranger.preset import Preset, from_dict
from arranger.score import BEATS_PER_BAR, HOLD, LAYERS, STEPS_PER_BAR, Score, sounding
from arranger.weights import load_models
from tracks import chords as chord_track
from tracks import drums as drum_track
from tracks import melody as melody_track
from tracks.layers import MODEL_LAYERS, layer_spec

CANDIDATES = 8  # bar-range regeneration samples this many and keeps the smoothest join
REGENERABLE = LAYERS  # every layer of a score can be regenerated


@dataclass(frozen=True)
class Regeneration:
    """What one regenerate did: the new score, the bars (1-based ``A-B``) and the seed used,
    and the derived files removed because they no longer matched (``--no-render``)."""

    score: Score
    layer: str
    bars: str
    seed: int
    removed: tuple[str, ...] = ()


def parse_bars(text: str | None, total: int) -> tuple[int, int]:
    """``"9-16"`` -> (8, 16): zero-based first bar, exclusive end. None -> the whole song.

    Raises ``InputError`` on field ``bars`` for text that is not ``A-B`` or ``A`` with
    1 <= A <= B <= ``total``.
    """
    if not text:
        return 0, total
    try:
        a, _, b = str(text).partition("-")
        first, last = int(a), int(b or a)
    except ValueError:
        raise InputError("bars", text, "A-B, e.g. 9-16") from None
    if not 1 <= first <= last <= total:
        raise InputError("bars", text, f"A-B with 1 <= A <= B <= {total}")
    return first - 1, last


def parse_spans(text: str, total: int) -> list[tuple[int, int]]:
    """``"5-12,17-24"`` (as a section's history entry records it) -> [(4, 12), (16, 24)];
    one span as :func:`parse_bars`."""
    return [parse_bars(part, total) for part in str(text).split(",")]


def spans_text(spans: list[tuple[int, int]]) -> str:
    """The 1-based, inclusive ``A-B[,C-D...]`` of 0-based spans (the history's ``bars``)."""
    return ",".join(f"{first + 1}-{end}" for first, end in spans)


def section_spans(preset: Preset, name: str, total: int) -> list[tuple[int, int]]:
    """Every occurrence (0-based first bar, exclusive end) of section ``name`` of a song of
    ``preset`` ``total`` bars long; ``InputError`` on field ``section`` if it has none."""
    from arranger.compose.sections import Form

    form = Form.of(preset.song.sections, total)
    if form is None:
        raise InputError("section", name, "a section of the song, which has none (its preset "
                         "gives no [[song.sections]])")
    spans = form.occurrences(name)
    if not spans:
        raise InputError("section", name, f"one of {', '.join(form.names())}")
    return spans


def regenerated_layers(layer: str | None, section: str | None, bars: str | None) -> list[str]:
    """The layers one regenerate renews: ``layer``, or with a section and no layer every
    model layer (the bass follows the chords). Refuses a missing layer, or both bars and a
    section."""
    if section is not None and bars:
        raise InputError("bars", bars, "no bars with a section (a section gives its own bars)")
    if layer is None:
        if section is None:
            raise InputError("layer", None, f"one of {', '.join(REGENERABLE)} (or a section)")
        return list(MODEL_LAYERS)
    check_layer(layer)
    return [layer]


def check_layer(layer: str) -> None:
    """Refuse a layer name that is not one of the score's layers."""
    if layer not in REGENERABLE:
        raise InputError("layer", layer, f"one of {', '.join(REGENERABLE)}")


def regenerate(folder: Path, layer: str | None, *, bars: str | None = None,
               seed: int | None = None, output: Output = Output(), device: str = "auto",
               lock_timeout_s: float = LOCK_TIMEOUT_S, section: str | None = None
               ) -> Regeneration:
    """Resample one layer (or a bar range of it) of the song in ``folder``, in place.

    With ``section``, every occurrence of that section is renewed (of ``layer``, or of every
    model layer when it is None: chords, then melody, then drums, each one history entry
    with the same seed); a repeated section stays a repeat.

    ``seed`` None picks a new one per call (the manifest's seed + the number of earlier
    regenerations + 1). Derived files that no longer match the new score and are not rewritten
    (stems and mix with ``output.render`` off) are removed and listed in the result.

    Raises
    ------
    InputError
        Bad layer, bars or folder; :class:`arranger.atomic.FolderBusyError` when another run
        keeps the folder locked for longer than ``lock_timeout_s``.
    """
    folder = Path(folder)
    layers = regenerated_layers(layer, section, bars)
    torch_device = generation_device(device)
    if folder.parent.is_dir():
        clean_stale(folder)  # a swap killed half-way (two-rename fallback) is undone first
    Manifest.load(folder)  # a folder that is no song is refused before waiting for its lock
    with interrupt_on_sigterm(), song_lock(folder, timeout_s=lock_timeout_s), \
            closed_if_unused():
        manifest = Manifest.load(folder)  # read under the lock: the latest edit counts
        manifest.check_weights(str(folder / "manifest.json"))
        preset = from_dict(manifest.preset, f"{folder}/manifest.json")
        if output.render:
            check_soundfont(preset)  # before any work, and loaded while the model writes
        old = midi_io.read_midi(folder / "score.mid")
        spans = (section_spans(preset, section, old.bars) if section is not None
                 else [parse_bars(bars, old.bars)])
        seed = seed if seed is not None else manifest.seed + len(manifest.history) + 1
        weights = Path(manifest.weights) if manifest.weights else None
        span, new = spans_text(spans), old
        for name in layers:
            new = resample(new, preset, name, spans, seed, weights, manifest.seed,
                           torch_device)
            manifest.history.append({"layer": name, "bars": span, "seed": seed})
        touched = set(layers) | ({"bass"} if "chords" in layers else set())
        with staged_dir(folder, keep=True, field="folder") as stage:
            removed = write_song(stage, new, preset, manifest, output, only=touched)
    return Regeneration(new, "+".join(layers), span, seed, tuple(removed))


def resample(old: Score, preset: Preset, layer: str, spans: list[tuple[int, int]], seed: int,
             weights: Path | None, bass_seed: int, device=None) -> Score:
    """``old`` with the bars of ``spans`` ((first, end) pairs, 0-based, end exclusive) of
    ``layer`` sampled again, in one take: a repeated section's bars stay a repeat."""
    new = old.copy()
    if layer == "bass":
        line = derive_bass(old, preset, seed)
        for first, end in spans:
            s0, s1 = first * STEPS_PER_BAR, end * STEPS_PER_BAR
            new.bass[s0:s1] = line[s0:s1]
            new = _clean_line_edges(new, "bass", s0, s1)
        return new
    models = load_models(weights)
    picked = _best_take(old, preset, layer, spans, seed, models, device)
    for first, end in spans:
        new = _splice(old, new, picked, layer, first, end, bass_seed, preset)
    return new


def _best_take(old: Score, preset: Preset, layer: str, spans: list[tuple[int, int]],
               seed: int, models: Models, device) -> Score:
    """Sample ``CANDIDATES`` takes of the spans; keep the one that best leads into the rest."""
    from arranger.compose.coordinator import ending_forced, generate_tokens, to_scores
    from arranger.compose.threads import generation_mode

    # The song as it is (its key, tempo and feel), not as the preset would start one.
    song = replace(preset.song, key=str(old.key), tempo_bpm=old.tempo_bpm, swing=old.swing)
    plan = replace(preset, song=song).plan(old.bars)
    forced = _forced_from(old, models, CANDIDATES)
    per_bar = layer_spec(layer).tokens_per_bar
    for first, end in spans:
        getattr(forced, layer)[:, first * per_bar : end * per_bar] = FREE
    with generation_mode():
        ending_forced(forced, plan, models)
        gen = generate_tokens(models, plan, forced, seed, device)
    best = int(np.argmax(gen.forced_logp[layer]))
    return to_scores(gen, plan, models)[best]


def _forced_from(score: Score, models: Models, batch: int) -> Forced:
    forced = Forced.free(batch, score.bars)
    forced.chords[:] = chord_track.encode(score)
    forced.melody[:] = melody_track.tokens_of(score.melody)  # as written: no octave refit
    forced.drums[:] = drum_track.encode(score, models.drum_vocab)
    return forced


def _splice(old: Score, new: Score, picked: Score, layer: str, first: int, end: int,
            bass_seed: int, preset: Preset) -> Score:
    s0, s1 = first * STEPS_PER_BAR, end * STEPS_PER_BAR
    if layer == "chords":
        b0, b1 = first * BEATS_PER_BAR, end * BEATS_PER_BAR
        new.chords = new.chords[:b0] + picked.chords[b0:b1] + new.chords[b1:]
        # The bass follows the chords: bars A-1..B are re-derived with the song's bass seed
        # (the bar before the range too, since its last notes approach the next chord).
        b0 = max(0, s0 - STEPS_PER_BAR)
        new.bass[b0:s1] = derive_bass(new, preset, bass_seed)[b0:s1]
        new = _clean_line_edges(new, "bass", b0, s1)
    elif layer == "melody":
        new.melody[s0:s1] = picked.melody[s0:s1]
        new = _clean_line_edges(new, "melody", s0, s1)
    else:
        if new.drum_hit_velocity is not None or picked.drum_hit_velocity is not None:
            if new.drum_hit_velocity is None:  # the kept bars' velocities as they play now
                new.drum_hit_velocity = new.hit_velocities()
            new.drum_hit_velocity[s0:s1] = picked.hit_velocities()[s0:s1]
        new.drums[s0:s1] = picked.drums[s0:s1]
        new.drum_velocity[s0:s1] = picked.drum_velocity[s0:s1]
    return new


def _clean_line_edges(score: Score, layer: str, s0: int, s1: int) -> Score:
    """Keep a monophonic line valid across the edited range's edges."""
    line = getattr(score, layer)
    if s0 < len(line) and line[s0] == HOLD and (s0 == 0 or line[s0 - 1] == -1):
        line[s0] = -1
    if s1 < len(line) and line[s1] == HOLD:
        # The kept note after the range was held over from a note that is gone: re-strike it.
        old_pitch = int(sounding(line[: s1 + 1])[-1])
        line[s1] = old_pitch if old_pitch >= 0 else -1
    return score
