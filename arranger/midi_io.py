"""Score <-> MIDI with pretty_midi: one named instrument per layer, drums on channel 10.

The MIDI is on the straight 16th grid (swing and humanisation are applied when rendering). Chord
symbols are written as text events so a score reads back exactly; a MIDI without them (edited in
a DAW, or someone else's) gets its chords recognised from the chord track's notes.
"""

from __future__ import annotations

import io
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pretty_midi

from arranger.score import (
    BEATS_PER_BAR,
    DRUM_CLASS_NOTES,
    DRUM_CLASSES,
    DRUM_VELOCITIES,
    LAYERS,
    QUALITIES,
    STEPS_PER_BAR,
    STEPS_PER_BEAT,
    Chord,
    Key,
    Score,
    drum_class_of_pitch,
    line_from_spans,
    note_spans,
    pitch_class_of_name,
    velocity_level,
)
from tracks import chords as chord_track

DEFAULT_PROGRAMS = {"chords": 4, "melody": 11, "bass": 33, "drums": 0}
_SUFFIX_TO_QUALITY = {"": "maj", "m": "min"} | {q: q for q in QUALITIES if q not in ("maj", "min")}
_END_MARK = "lofi:end"
_SWING_MARK = "lofi:swing="


def to_midi(score: Score, programs: Mapping[str, int] | None = None,
            layers: tuple[str, ...] = LAYERS) -> pretty_midi.PrettyMIDI:
    """A PrettyMIDI with instruments named after ``layers`` (GM programs from ``programs``)."""
    programs = DEFAULT_PROGRAMS | dict(programs or {})
    pm = pretty_midi.PrettyMIDI(initial_tempo=score.tempo_bpm, resolution=480)
    dt = score.seconds_per_step
    pm.key_signature_changes.append(pretty_midi.KeySignature(
        score.key.tonic + (12 if score.key.mode == "minor" else 0), 0.0))
    pm.time_signature_changes.append(pretty_midi.TimeSignature(4, 4, 0.0))
    writers = {"chords": _chord_notes, "melody": _line_notes, "bass": _line_notes,
               "drums": _drum_notes}
    for layer in layers:
        inst = pretty_midi.Instrument(program=programs[layer], is_drum=layer == "drums", name=layer)
        inst.notes = writers[layer](score, layer, dt)
        pm.instruments.append(inst)
    for beat_start, chord in _chord_changes(score):
        text = chord_track.absolute_name(chord, score.key)
        pm.text_events.append(pretty_midi.Text(text, beat_start * STEPS_PER_BEAT * dt))
    if score.swing:
        pm.text_events.append(pretty_midi.Text(f"{_SWING_MARK}{score.swing:g}", 0.0))
    pm.text_events.append(pretty_midi.Text(_END_MARK, score.steps * dt))
    return pm


def midi_bytes(pm: pretty_midi.PrettyMIDI) -> bytes:
    buf = io.BytesIO()
    pm.write(buf)
    return buf.getvalue()


def write_midi(path: Path, score: Score, programs: Mapping[str, int] | None = None) -> None:
    """Write ``score`` as a standard MIDI file, atomically."""
    from arranger.atomic import write_bytes

    write_bytes(Path(path), midi_bytes(to_midi(score, programs)))


def _chord_changes(score: Score) -> list[tuple[int, Chord | None]]:
    out, previous = [], object()
    for beat, chord in enumerate(score.chords):
        if chord != previous:
            out.append((beat, chord))
            previous = chord
    return out


def _chord_notes(score: Score, layer: str, dt: float) -> list[pretty_midi.Note]:
    notes = []
    for start, end, pitches in chord_track.voice(score.chords, score.key):
        t0, t1 = start * STEPS_PER_BEAT * dt, end * STEPS_PER_BEAT * dt
        notes += [pretty_midi.Note(62, p, t0, t1) for p in pitches]
    return notes


def _line_notes(score: Score, layer: str, dt: float) -> list[pretty_midi.Note]:
    line = getattr(score, layer)
    notes = []
    for start, end, pitch in note_spans(line):
        strong = start % (STEPS_PER_BAR // 2) == 0
        velocity = (96 if strong else 84) if layer == "bass" else (84 if strong else 74)
        notes.append(pretty_midi.Note(velocity, int(pitch) + score.key.tonic, start * dt, end * dt))
    return notes


def _drum_notes(score: Score, layer: str, dt: float) -> list[pretty_midi.Note]:
    notes = []
    for step in np.flatnonzero(score.drums).tolist():
        mask, level = int(score.drums[step]), int(score.drum_velocity[step])
        for cls in range(len(DRUM_CLASSES)):
            if mask & (1 << cls):
                t = step * dt
                notes.append(pretty_midi.Note(DRUM_VELOCITIES[level], DRUM_CLASS_NOTES[cls][0],
                                              t, t + dt))
    return notes


# --- reading ----------------------------------------------------------------------------------


def read_midi(path: Path) -> Score:
    """Read a multi-track MIDI written by this tool (or laid out like one) into a Score."""
    return from_midi(pretty_midi.PrettyMIDI(str(path)))


def from_midi(pm: pretty_midi.PrettyMIDI) -> Score:
    """Score from a PrettyMIDI whose instruments map to layers by name, drum flag or program."""
    tempi = pm.get_tempo_changes()[1]
    # MIDI stores whole microseconds per beat: round so that 78 bpm reads back as 78.
    tempo = round(float(tempi[0]), 2) if len(tempi) else 120.0
    dt = 60.0 / tempo / STEPS_PER_BEAT
    key = _key_of(pm)
    texts = {t.text for t in pm.text_events}
    end = max([t.time for t in pm.text_events if t.text == _END_MARK] or [pm.get_end_time()])
    bars = max(1, int(np.ceil(round(end / dt, 3) / STEPS_PER_BAR)))
    swing = next((float(t[len(_SWING_MARK):]) for t in texts if t.startswith(_SWING_MARK)), 0.0)
    by_layer = assign_layers(pm)
    steps = bars * STEPS_PER_BAR
    score = Score(bars, tempo_bpm=round(tempo, 2), key=key, swing=swing)
    for layer in ("melody", "bass"):
        if layer in by_layer:
            spans = [(round(n.start / dt), round(n.end / dt), n.pitch - key.tonic)
                     for n in by_layer[layer].notes]
            setattr(score, layer, line_from_spans(spans, steps))
    if "drums" in by_layer:
        score.drums, score.drum_velocity = _read_drums(by_layer["drums"], dt, steps)
    score.chords = _read_chords(pm, by_layer.get("chords"), key, dt, bars)
    return score


def assign_layers(pm: pretty_midi.PrettyMIDI) -> dict[str, pretty_midi.Instrument]:
    """The first instrument of each layer (see :func:`group_layers`)."""
    return {layer: insts[0] for layer, insts in group_layers(pm).items()}


def group_layers(pm: pretty_midi.PrettyMIDI) -> dict[str, list[pretty_midi.Instrument]]:
    """Instruments with notes by layer: by name first, then drum flag, then GM program family."""
    out: dict[str, list[pretty_midi.Instrument]] = {}
    for inst in pm.instruments:
        if inst.notes:
            out.setdefault(_layer_of(inst), []).append(inst)
    return out


def _layer_of(inst: pretty_midi.Instrument) -> str:
    name = inst.name.strip().lower()
    if name in LAYERS:
        return name
    if inst.is_drum:
        return "drums"
    if 32 <= inst.program <= 39:
        return "bass"
    if inst.program <= 7 or 16 <= inst.program <= 23 or 88 <= inst.program <= 95:
        return "chords"  # pianos, organs, pads
    return "melody"


def _key_of(pm: pretty_midi.PrettyMIDI) -> Key:
    if pm.key_signature_changes:
        number = pm.key_signature_changes[0].key_number
        return Key(number % 12, "minor" if number >= 12 else "major")
    return Key(0, "major")


def _read_drums(inst: pretty_midi.Instrument, dt: float, steps: int):
    masks = np.zeros(steps, np.uint16)
    levels = np.ones(steps, np.uint8)
    peak = np.zeros(steps, np.int64)
    for n in inst.notes:
        step, cls = round(n.start / dt), drum_class_of_pitch(n.pitch)
        if cls is None or not 0 <= step < steps:
            continue
        masks[step] |= 1 << cls
        peak[step] = max(peak[step], n.velocity)
    hit = masks > 0
    levels[hit] = velocity_level(peak[hit])
    return masks, levels


def _read_chords(pm, inst, key: Key, dt: float, bars: int) -> tuple[Chord | None, ...]:
    beats = bars * BEATS_PER_BAR
    marks = sorted((round(t.time / dt / STEPS_PER_BEAT), t.text) for t in pm.text_events
                   if not t.text.startswith("lofi:"))
    parsed = [(b, parse_chord_name(text, key)) for b, text in marks]
    if parsed and all(c is not False for _, c in parsed):
        out: list[Chord | None] = [None] * beats
        for (b, chord), nxt in zip(parsed, [p[0] for p in parsed[1:]] + [beats], strict=True):
            out[b:nxt] = [chord] * max(0, min(nxt, beats) - b)
        return tuple(out[:beats])
    return recognise_chords(inst, key, dt, beats) if inst is not None else (None,) * beats


def recognise_chords(inst: pretty_midi.Instrument, key: Key, dt: float, beats: int
                     ) -> tuple[Chord | None, ...]:
    """Chord per beat by pitch-class template matching over the notes sounding in it."""
    weights = np.zeros((beats, 12))
    bass = np.full(beats, 128)
    beat_s = dt * STEPS_PER_BEAT
    for n in inst.notes:
        first, last = int(n.start / beat_s + 1e-6), int(np.ceil(n.end / beat_s - 1e-6))
        for b in range(max(first, 0), min(last, beats)):
            overlap = min(n.end, (b + 1) * beat_s) - max(n.start, b * beat_s)
            weights[b, n.pitch % 12] += max(overlap, 0.0)
            bass[b] = min(bass[b], n.pitch)
    out: list[Chord | None] = [None] * beats
    rows = np.flatnonzero(weights.sum(axis=1) > 1e-6)
    if len(rows):
        found = chord_track.match_chords(weights[rows], np.where(bass[rows] == 128, -1, bass[rows]))
        for b, (root, quality) in zip(rows.tolist(), found, strict=True):
            out[b] = Chord((root - key.tonic) % 12, quality)
    return tuple(out)


def parse_chord_name(text: str, key: Key) -> Chord | None | bool:
    """Key-relative chord of an absolute symbol like ``"Dm7"``; None for "N"; False if not one."""
    text = text.strip()
    if text == "N":
        return None
    for size in (2, 1):
        head, suffix = text[:size], text[size:]
        if len(head) == size and (size == 1 or head[1] in "#b"):
            try:
                pc = pitch_class_of_name(head)
            except ValueError:
                continue
            quality = _SUFFIX_TO_QUALITY.get(suffix)
            if quality is not None:
                return Chord((pc - key.tonic) % 12, quality)
    return False


__all__ = ["to_midi", "from_midi", "read_midi", "write_midi", "midi_bytes", "assign_layers",
           "group_layers", "recognise_chords", "parse_chord_name", "DEFAULT_PROGRAMS"]
