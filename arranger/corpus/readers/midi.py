"""Generic MIDI files for the corpus: guarded parsing, and melody, chords, drums and bass.

The melody is a track named like one (else the highest monophonic line), the bass a bass-named
track or bass program, drums the drum-flagged tracks, and everything else pitched the harmony
(chords are recognised from it unless the file carries chord names as text events).
"""

from __future__ import annotations

import io
import warnings
from collections.abc import Callable, Sequence

import numpy as np

from arranger.corpus.grid import TempoMap, bars_from_meters, meter_names
from arranger.corpus.piece import Notes, Piece, SkipSong, Song, check_size, first_line
from arranger.corpus.songs import songs_from_piece
from arranger.midi_io import parse_chord_name
from arranger.score import Key

MIDI_SUFFIXES = (".mid", ".midi", ".kar", ".smf")
MAX_TRACKS = 512
MAX_EVENTS = 2_000_000
MAX_NOTES = 200_000
MELODY_NAMES = ("melody", "lead", "vocal", "voice", "sing", "solo")
MONOPHONIC_OVERLAP = 0.15  # a melody candidate may overlap its previous note this often


def parse_midi_bytes(data: bytes):
    """A ``pretty_midi.PrettyMIDI`` from raw bytes, with guards against pathological files.

    Raises
    ------
    SkipSong : too big, type-2, too many tracks or events, or any parse error (first line).
    """
    import mido
    import pretty_midi

    check_size(len(data))
    try:
        mf = mido.MidiFile(file=io.BytesIO(data))
    except Exception as exc:  # mido raises many types on corrupt input
        raise SkipSong(f"MIDI parse error: {first_line(exc)}") from None
    if mf.type == 2:
        raise SkipSong("unsupported MIDI: type 2 (independent sequences)")
    if len(mf.tracks) > MAX_TRACKS:
        raise SkipSong(f"too many tracks: {len(mf.tracks)}")
    if sum(len(t) for t in mf.tracks) > MAX_EVENTS:
        raise SkipSong("too many events")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return pretty_midi.PrettyMIDI(mido_object=mf)
    except Exception as exc:
        raise SkipSong(f"MIDI parse error: {first_line(exc)}") from None


def read_midi_bytes(data: bytes, source: str, dataset: str = "") -> list[Song]:
    """Songs of a standard MIDI file (any layout; drums on channel 10)."""
    return songs_from_piece(piece_from_midi(parse_midi_bytes(data), source, dataset))


def piece_from_midi(pm, source: str, dataset: str = "", *, melody_name: str | None = None,
                    beat_of: Callable[[np.ndarray], np.ndarray] | None = None) -> Piece:
    """A :class:`Piece` of a PrettyMIDI: layers by track name, monophony and drum flag.

    ``beat_of`` maps seconds to beats (default: the file's tempo map); the bars then come from
    the file's time signatures.
    """
    tempo = TempoMap(pm)
    beat_of = beat_of or tempo.to_beats
    instruments = [inst for inst in pm.instruments if inst.notes]
    if sum(len(inst.notes) for inst in instruments) > MAX_NOTES:
        raise SkipSong("too many notes")
    pitched = [inst for inst in instruments if not inst.is_drum]
    melody = pick_melody(pitched, melody_name)
    others = [inst for inst in pitched if inst is not melody]
    bass = pick_bass(others)
    piece = Piece(source=source, dataset=dataset)
    piece.melody = notes_of(melody, beat_of) if melody else None
    piece.harmony = Notes.concat([notes_of(inst, beat_of) for inst in others])
    piece.bass = notes_of(bass, beat_of) if bass else None
    piece.drums = Notes.concat([notes_of(inst, beat_of) for inst in instruments if inst.is_drum])
    piece.chords = _text_chords(pm, beat_of)
    piece.key_changes = [(float(beat_of(k.time)), _key_of_number(k.key_number))
                         for k in pm.key_signature_changes]
    piece.key_trusted = any(t.text == "lofi:end" for t in pm.text_events)  # our own files
    piece.swing = _swing_mark(pm)
    end = piece.end_beat()
    meters = [(float(beat_of(ts.time)), ts.numerator, ts.denominator)
              for ts in pm.time_signature_changes]
    piece.meters = meter_names(meters)
    piece.bar_starts, piece.bar_beats = bars_from_meters(meters, end)
    piece.beat_seconds = tempo.to_seconds(np.arange(int(np.ceil(end)) + 2))
    return piece


def notes_of(inst, beat_of) -> Notes:
    """The notes of a pretty_midi instrument, with times mapped to beats by ``beat_of``."""
    arr = np.array([(n.start, n.end, n.pitch, n.velocity) for n in inst.notes], dtype=np.float64)
    return Notes(beat_of(arr[:, 0]), beat_of(arr[:, 1]), arr[:, 2].astype(np.int64),
                 arr[:, 3].astype(np.int64))


def _swing_mark(pm) -> float:
    """The swing this tool wrote into its own file ("lofi:swing=0.3"), else 0."""
    for t in pm.text_events:
        if t.text.startswith("lofi:swing="):
            try:
                return float(np.clip(float(t.text.split("=", 1)[1]), 0.0, 0.75))
            except ValueError:
                return 0.0
    return 0.0


def _key_of_number(number: int):
    return Key(int(number) % 12, "minor" if number >= 12 else "major")


def _overlap_ratio(inst) -> float:
    """Fraction of notes that start before an earlier note has ended (50 ms tolerance)."""
    arr = np.array(sorted((n.start, n.end) for n in inst.notes))
    if len(arr) < 2:
        return 0.0
    held_until = np.maximum.accumulate(arr[:-1, 1])
    return float(np.mean(arr[1:, 0] < held_until - 0.05))


def pick_melody(pitched: Sequence, name: str | None = None):
    """The melody instrument: one named like a melody, else the highest monophonic line."""
    for inst in pitched:
        label = inst.name.strip().lower()
        if (label == name if name else any(w in label for w in MELODY_NAMES)):
            return inst
    if name:
        return None
    candidates = [inst for inst in pitched if len(inst.notes) >= 8 and not _is_bass(inst)
                  and _overlap_ratio(inst) <= MONOPHONIC_OVERLAP]
    if not candidates:
        return None
    most = max(len(inst.notes) for inst in candidates)
    candidates = [inst for inst in candidates if len(inst.notes) >= 0.3 * most]
    return max(candidates, key=lambda inst: np.median([n.pitch for n in inst.notes]))


def _is_bass(inst) -> bool:
    label = inst.name.strip().lower()
    return 32 <= inst.program <= 39 or ("bass" in label and "bassoon" not in label)


def pick_bass(pitched: Sequence):
    """The bass instrument (named bass or a bass program) with the most notes, or None."""
    basses = [inst for inst in pitched if _is_bass(inst) and len(inst.notes) >= 4]
    return max(basses, key=lambda inst: len(inst.notes)) if basses else None


def _text_chords(pm, beat_of) -> list[tuple[float, tuple[int, str] | None]] | None:
    """Chord symbols written as text events (this tool's own MIDI files), absolute."""
    texts = [t for t in pm.text_events if not t.text.startswith("lofi:")]
    out = []
    for t in sorted(texts, key=lambda t: t.time):
        chord = parse_chord_name(t.text, Key(0))
        if chord is False:
            return None
        out.append((float(beat_of(t.time)), None if chord is None else (chord.root, chord.quality)))
    ours = any(t.text.startswith("lofi:") for t in pm.text_events)
    # Elsewhere a few texts like "A" or "C" are more likely section names than chords.
    return out if out and (ours or len({c for _, c in out}) >= 3) else None
