"""Score <-> MIDI with pretty_midi: one named instrument per layer, drums on channel 10.

The MIDI is on the straight 16th grid (swing and humanisation are applied when rendering). Chord
symbols are written as text events so a score reads back exactly; a MIDI without them (edited in
a DAW, or someone else's) gets its chords recognised from the chord track's notes.
"""

from __future__ import annotations

import io
import warnings
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path

import numpy as np
import pretty_midi

from arranger.errors import InputError
from arranger.score import (
    BEATS_PER_BAR,
    DRUM_CLASS_NOTES,
    DRUM_CLASSES,
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


def layer_midi_bytes(pm: pretty_midi.PrettyMIDI, instruments: list[int]) -> bytes:
    """Some instruments of ``pm`` as a type-0 MIDI file: one track holding its tempo, key and
    time signatures and those instruments' notes, what a DAW imports as one track.

    ``instruments`` are indices into ``pm.instruments`` (a layer's, see
    ``arranger.audio.render.layer_instruments``); text events (chord symbols) are left out.
    """
    import copy

    import mido

    one = copy.copy(pm)  # shares the tempo map and signatures, which writing only reads
    one.instruments = [pm.instruments[i] for i in instruments]
    one.text_events, one.lyrics = [], []
    parsed = mido.MidiFile(file=io.BytesIO(midi_bytes(one)))
    merged = mido.MidiFile(type=0, ticks_per_beat=parsed.ticks_per_beat)
    merged.tracks.append(mido.merge_tracks(parsed.tracks))
    buf = io.BytesIO()
    merged.save(file=buf)
    return buf.getvalue()


def write_midi(path: Path, score: Score, programs: Mapping[str, int] | None = None) -> None:
    """Write ``score`` as a standard MIDI file, atomically."""
    from arranger.atomic import write_bytes

    write_bytes(Path(path), spell_signature(midi_bytes(to_midi(score, programs)), score.key))


# A key signature meta event: FF 59 02, then sharps (+) / flats (-) as a signed byte, and mode.
# pretty_midi picks sharps or flats by key number alone (C# major -> Db); the byte after this
# marker says which the user wrote.
_KEY_SIGNATURE = b"\xff\x59\x02"


def _fifths(key: Key) -> int | None:
    """Sharps (+) or flats (-) of ``key`` as spelled; None to keep pretty_midi's choice (a
    natural tonic, or a spelling no key signature holds, such as Db minor's 8 flats)."""
    if len(Key(key.tonic).tonic_name) == 1:
        return None  # C, D, E, F, G, A, B: one spelling only
    sharps = (key.tonic + (3 if key.mode == "minor" else 0)) % 12 * 7 % 12
    fifths = sharps if key.spelling == "sharps" else sharps - 12
    return fifths if -7 <= fifths <= 7 else None


def spell_signature(data: bytes, key: Key) -> bytes:
    """MIDI file bytes with the key signature spelled as ``key`` is (sharps or flats)."""
    fifths, at = _fifths(key), data.find(_KEY_SIGNATURE)
    if fifths is None or at < 0:
        return data
    at += len(_KEY_SIGNATURE)
    return data[:at] + bytes([fifths & 0xFF]) + data[at + 1 :]


def signature_spelling(data: bytes, key: Key) -> Key:
    """``key`` spelled as the key signature in MIDI file bytes ``data`` writes it."""
    at = data.find(_KEY_SIGNATURE) + len(_KEY_SIGNATURE)
    if at < len(_KEY_SIGNATURE) or at >= len(data) or len(Key(key.tonic).tonic_name) == 1:
        return key
    return replace(key, spelling="sharps" if 0 < data[at] < 0x80 else "flats")


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
    """Each hit at its own velocity (``Score.hit_velocities``: the drum model's velocity table,
    else one per step level)."""
    notes = []
    velocity = score.hit_velocities()
    for step, cls in zip(*np.nonzero(velocity), strict=True):
        t = int(step) * dt
        notes.append(pretty_midi.Note(int(velocity[step, cls]), DRUM_CLASS_NOTES[cls][0],
                                      t, t + dt))
    return notes


# --- reading ----------------------------------------------------------------------------------


MAX_MIDI_BYTES = 4 << 20  # parsing 4 MiB of notes takes ~13 s and ~0.55 GB; scores are < 1 MB
_DETAIL_CHARS = 120  # of a parser's message in an error line


def read_midi(path: Path) -> Score:
    """Read a multi-track MIDI written by this tool (or laid out like one) into a Score.

    Raises ``FileNotFoundError`` or ``InputError`` (one line naming the file), as
    :func:`read_pretty_midi`.
    """
    score = from_midi(read_pretty_midi(path))
    score.key = signature_spelling(Path(path).read_bytes(), score.key)  # C#m stays C#m
    return score


def read_pretty_midi(path: Path) -> pretty_midi.PrettyMIDI:
    """Parse the standard MIDI file at ``path``; every failure is one line naming the file.

    Raises
    ------
    FileNotFoundError
        If there is no such file.
    InputError
        If it cannot be read, is empty or larger than ``MAX_MIDI_BYTES``, or does not parse
        (truncated, corrupt): the line says which.
    """
    path = Path(path)
    try:
        size = path.stat().st_size
        if size > MAX_MIDI_BYTES:
            raise InputError("size", size, f"at most {MAX_MIDI_BYTES} bytes of MIDI", str(path))
        data = path.read_bytes()
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: no such MIDI file") from None
    except OSError as e:
        raise InputError("file", e.strerror or type(e).__name__, "a readable MIDI file",
                         str(path)) from None
    if not data:
        raise InputError("size", 0, "a standard MIDI file (this one is empty)", str(path))
    try:
        with warnings.catch_warnings():  # pretty_midi warns about odd but usable files
            warnings.simplefilter("ignore")
            return pretty_midi.PrettyMIDI(io.BytesIO(data))
    except Exception as e:  # mido and pretty_midi raise many types for corrupt files
        kind, detail = _parse_failure(e)
        raise InputError("MIDI data", kind, f"a standard MIDI file ({detail})",
                         str(path)) from None


def _parse_failure(error: Exception) -> tuple[str, str]:
    """("truncated" or "corrupt", a short reason): mido's EOFError says nothing, so say it."""
    if isinstance(error, EOFError):
        return "truncated", "this one ends inside a chunk"
    first = next(iter(str(error).strip().splitlines()), "")[:_DETAIL_CHARS]
    return "corrupt", f"{type(error).__name__}: {first}" if first else type(error).__name__


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
        score.drums, score.drum_velocity, score.drum_hit_velocity = _read_drums(
            by_layer["drums"], dt, steps)
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
    """(hit masks, step levels, each class's loudest velocity per step) of a drum track."""
    masks = np.zeros(steps, np.uint16)
    levels = np.ones(steps, np.uint8)
    hits = np.zeros((steps, len(DRUM_CLASSES)), np.uint8)
    for n in inst.notes:
        step, cls = round(n.start / dt), drum_class_of_pitch(n.pitch)
        if cls is None or not 0 <= step < steps or n.velocity < 1:
            continue
        masks[step] |= 1 << cls
        hits[step, cls] = max(hits[step, cls], n.velocity)
    hit = masks > 0
    levels[hit] = velocity_level(hits[hit].max(axis=1))
    return masks, levels, hits


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


__all__ = ["to_midi", "from_midi", "read_midi", "read_pretty_midi", "write_midi", "midi_bytes",
           "assign_layers", "group_layers", "recognise_chords", "parse_chord_name",
           "DEFAULT_PROGRAMS", "MAX_MIDI_BYTES"]
