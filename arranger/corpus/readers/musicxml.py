"""MusicXML lead sheets for the corpus (.mxl/.musicxml): melody, chord symbols, key, meter.

music21 parses them (a one-off parse: the corpus cache keeps the result). The part with the most
notes gives the melody and its chord symbols the chords; its measures give the bars.
"""

from __future__ import annotations

import tempfile
import warnings
from pathlib import Path

import numpy as np

from arranger.corpus.piece import Notes, Piece, SkipSong, Song, first_line
from arranger.corpus.songs import songs_from_piece
from arranger.score import Key
from tracks.chords import quality_from_intervals

XML_SUFFIXES = (".mxl", ".musicxml")
_XML_KINDS = {
    "major": "maj", "minor": "min", "augmented": "aug", "diminished": "dim",
    "dominant": "7", "dominant-seventh": "7", "major-seventh": "maj7", "minor-seventh": "m7",
    "diminished-seventh": "dim7", "augmented-seventh": "7", "half-diminished": "m7b5",
    "half-diminished-seventh": "m7b5", "major-minor": "min", "minor-major-seventh": "min",
    "major-sixth": "6", "minor-sixth": "m6", "dominant-ninth": "9", "major-ninth": "maj9",
    "minor-ninth": "m9", "dominant-11th": "7sus4", "dominant-13th": "9", "major-11th": "maj9",
    "minor-11th": "m9", "major-13th": "maj9", "minor-13th": "m9", "suspended-second": "sus2",
    "suspended-fourth": "sus4", "suspended-fourth-seventh": "7sus4", "power": "maj",
}


def read_musicxml(path: str, source: str, dataset: str = "") -> list[Song]:
    """Songs of a MusicXML lead sheet (.mxl/.musicxml): melody, chord symbols, key, meter."""
    import music21

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            score = music21.converter.parse(path, forceSource=True, storePickle=False)
    except Exception as exc:
        raise SkipSong(f"MusicXML parse error: {first_line(exc)}") from None
    parts = list(getattr(score, "parts", [])) or [score]
    part = max(parts, key=lambda p: len(p.flatten().notes))
    piece = Piece(source=source, dataset=dataset)
    flat = part.flatten()
    piece.melody, piece.chords = _xml_notes_and_chords(flat, music21)
    measures = list(part.getElementsByClass(music21.stream.Measure))
    piece.bar_starts = np.array([float(m.offset) for m in measures])
    piece.bar_beats = np.array([float(m.quarterLength) for m in measures])
    piece.meters = sorted({ts.ratioString for ts in flat.getElementsByClass("TimeSignature")})
    marks = flat.getElementsByClass("MetronomeMark")
    if marks and marks[0].getQuarterBPM():
        piece.tempo_bpm = float(marks[0].getQuarterBPM())
    keys = flat.getElementsByClass("KeySignature")
    if keys:
        piece.key_changes = [(0.0, _xml_key(keys[0]))]
    return songs_from_piece(piece)


def read_musicxml_bytes(data: bytes, suffix: str, source: str, dataset: str = "") -> list[Song]:
    """Songs of MusicXML bytes (an archive member): music21 reads them from a temporary file."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"member{suffix}"
        path.write_bytes(data)
        return read_musicxml(str(path), source, dataset)


def _xml_key(signature):
    mode = getattr(signature, "mode", "major")
    tonic = getattr(signature, "tonic", None)
    if tonic is not None and mode in ("major", "minor"):
        return Key(tonic.pitchClass, mode)
    return Key((7 * int(signature.sharps)) % 12, "major")


def _xml_notes_and_chords(flat, music21) -> tuple[Notes, list]:
    rows: list[list[float]] = []
    chords = []
    for el in flat.notes:
        offset = float(el.offset)
        if isinstance(el, music21.harmony.Harmony):
            chords.append((offset, _xml_chord(el, music21)))
            continue
        length = float(el.quarterLength)
        if length <= 0:
            continue  # grace note
        pitch = max(p.midi for p in el.pitches)
        tie = getattr(el.tie, "type", None)
        if tie in ("stop", "continue") and rows and rows[-1][2] == pitch:
            rows[-1][1] = offset + length
        else:
            rows.append([offset, offset + length, pitch, 90])
    arr = np.array(rows, dtype=np.float64).reshape(-1, 4)
    notes = Notes(arr[:, 0], arr[:, 1], arr[:, 2].astype(np.int64), arr[:, 3].astype(np.int64))
    return notes, sorted(chords, key=lambda c: c[0])


def _xml_chord(symbol, music21) -> tuple[int, str] | None:
    if isinstance(symbol, music21.harmony.NoChord) or not symbol.pitches:
        return None
    root = symbol.root().pitchClass
    quality = _XML_KINDS.get(symbol.chordKind)
    if quality is None:
        quality = quality_from_intervals((p.pitchClass - root) % 12 for p in symbol.pitches)
    return root, quality
