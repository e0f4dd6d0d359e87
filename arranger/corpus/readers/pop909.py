"""POP909 song folders for the corpus: a MIDI file with beat, chord and key annotations.

A folder holding ``beat_midi.txt``, ``chord_midi.txt`` and a MIDI file is one song, on disk or
inside a .zip archive; ``key_audio.txt`` is optional.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from arranger.corpus.grid import beat_interpolator
from arranger.corpus.piece import Notes, Piece, SkipSong, Song
from arranger.corpus.readers.charts import parse_harte
from arranger.corpus.readers.midi import MIDI_SUFFIXES, notes_of, parse_midi_bytes, piece_from_midi
from arranger.corpus.songs import songs_from_piece
from arranger.score import Key

POP909_FILES = ("beat_midi.txt", "chord_midi.txt")
POP909_BASS_BELOW = 55  # POP909's bass is the piano's lowest line below G3


@dataclass
class Pop909Files:
    """The texts and MIDI bytes of one POP909 song folder."""

    midi: bytes
    beats: str
    chords: str
    keys: str = ""
    source: str = ""
    dataset: str = "pop909"


def is_pop909(names: Iterable[str]) -> bool:
    """Whether a folder's file names make it a POP909 song (both annotations and a MIDI file)."""
    names = set(names)
    return all(n in names for n in POP909_FILES) and any(
        n.lower().endswith(MIDI_SUFFIXES) for n in names)


def pop909_from_folder(folder: Path, dataset: str = "") -> Pop909Files:
    """The files of a POP909 song folder on disk (``dataset`` defaults to "pop909")."""
    midis = sorted(p for p in folder.iterdir() if p.suffix.lower() in MIDI_SUFFIXES)
    keys = folder / "key_audio.txt"
    return Pop909Files(
        midi=midis[0].read_bytes(), beats=(folder / "beat_midi.txt").read_text(errors="replace"),
        chords=(folder / "chord_midi.txt").read_text(errors="replace"),
        keys=keys.read_text(errors="replace") if keys.exists() else "",
        source=str(folder), dataset=dataset or "pop909")


def pop909_from_archive(members: Iterable[str], folder: str, load: Callable[[str], bytes],
                        source: str, dataset: str = "") -> Pop909Files:
    """The files of the POP909 song folder ``folder`` (ending in "/") of an archive.

    ``members`` lists the archive's names; ``load`` reads one of them.
    """
    names = {n[len(folder):] for n in members if n.startswith(folder)}
    midi = sorted(n for n in names if n.lower().endswith(MIDI_SUFFIXES) and "/" not in n)
    text = {n: load(folder + n).decode("utf-8", "replace")
            for n in (*POP909_FILES, "key_audio.txt") if n in names}
    return Pop909Files(
        load(folder + midi[0]), text["beat_midi.txt"], text["chord_midi.txt"],
        text.get("key_audio.txt", ""), source, dataset or "pop909")


def read_pop909(files: Pop909Files) -> list[Song]:
    """Songs of a POP909 folder: bars from ``beat_midi.txt``, chords and key from the labels.

    Melody is the MELODY track; bass is the piano's lowest line; there are no drums.
    """
    table = _float_table(files.beats, 3, "beat_midi.txt")
    times = table[:, 0]
    if len(times) < 8 or np.any(np.diff(times) <= 0):
        raise SkipSong("bad annotation: beat_midi.txt times are not increasing")
    beat_of = beat_interpolator(times)
    pm = parse_midi_bytes(files.midi)
    piece = piece_from_midi(pm, files.source, files.dataset, melody_name="melody",
                            beat_of=beat_of)
    piano = [i for i in pm.instruments if i.name.strip().lower() == "piano" and i.notes]
    low = Notes.concat([notes_of(i, beat_of) for i in piano])
    piece.bass = low.select(low.pitch < POP909_BASS_BELOW) if len(low) else None
    piece.bar_starts, piece.bar_beats = _pop909_bars(table)
    piece.meters = [f"{abs(n)}/4" for n in piece.bar_beats.tolist()]  # the MIDI's are unreliable
    piece.beat_seconds = times
    _add_labels(piece, files, beat_of)
    return songs_from_piece(piece)


def _add_labels(piece: Piece, files: Pop909Files, beat_of) -> None:
    """The annotated chords and keys (trusted when there are any), on the beat axis."""
    piece.chords = [(float(beat_of(s)), chord) for s, _, chord in _labelled(files.chords,
                                                                            parse_harte)]
    keys = _labelled(files.keys, _parse_key_label) if files.keys.strip() else []
    piece.key_changes = [(float(beat_of(s)), key) for s, _, key in keys if key is not None]
    piece.key_trusted = bool(piece.key_changes)


def _float_table(text: str, columns: int, name: str) -> np.ndarray:
    rows = [line.split()[:columns] for line in text.splitlines() if line.strip()]
    try:
        table = np.array(rows, dtype=np.float64)
    except ValueError:
        raise SkipSong(f"bad annotation: {name} is not a numeric table") from None
    if table.ndim != 2 or table.shape[1] != columns or not np.all(np.isfinite(table)):
        raise SkipSong(f"bad annotation: {name} needs {columns} numeric columns")
    return table


def _pop909_bars(table: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Bars from the downbeat flags; a bar is 4/4 when its half-bar flags read 1 0 1 0."""
    down = np.flatnonzero(table[:, 2] == 1)
    if len(down) == 0:
        raise SkipSong("bad annotation: no downbeats in beat_midi.txt")
    ends = np.append(down[1:], len(table))
    lengths = np.array([4 if e - s == 4 and tuple(table[s:e, 1]) == (1, 0, 1, 0) else -(e - s)
                        for s, e in zip(down, ends, strict=True)])
    return down.astype(np.float64), lengths


def _labelled(text: str, parse: Callable) -> list[tuple[float, float, object]]:
    """``start end label`` lines (times in seconds) with the label parsed by ``parse``."""
    out = []
    for line in text.splitlines():
        parts = line.split()
        if len(parts) < 3:
            continue
        try:
            start, end = float(parts[0]), float(parts[1])
        except ValueError:
            raise SkipSong("bad annotation: unreadable time in a label file") from None
        out.append((start, end, parse(parts[2])))
    return out


def _parse_key_label(label: str):
    try:
        return Key.parse(label)
    except ValueError:
        return None
