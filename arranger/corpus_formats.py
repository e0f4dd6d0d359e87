"""The per-format corpus readers in one namespace: MIDI, POP909, chord charts, MusicXML.

Every reader turns its input into a :class:`Piece` (notes and chord annotations on a quarter-note
beat axis, plus the bar structure), and :func:`songs_from_piece` turns a piece into key-relative
4/4 :class:`Song` s on the 16th grid: it fits the grid (swing, timing offset, the "unquantizable"
test), cuts the piece into runs of whole 4/4 bars, estimates keys and builds the layers.
A rejected input raises :class:`SkipSong` with a reason of the form ``"category: detail"``.

The code lives in the ``corpus_*`` modules (piece, grid, beat_chords, songs, midi, pop909,
charts, musicxml); this module keeps every public name it had importable from here.
"""

# ruff: noqa: F401  (re-exports)

from __future__ import annotations

from arranger.corpus_beat_chords import (
    QUALITY_NAMES,
    annotated_beats,
    match_chords,
    recognise_beats,
)
from arranger.corpus_charts import is_chord_chart, parse_harte, parse_jazz_chord, read_chord_chart
from arranger.corpus_grid import (
    MAX_OFF_GRID,
    MAX_TOTAL_BARS,
    OFF_GRID_STEPS,
    GridFit,
    StepNotes,
    TempoMap,
    bars_from_meters,
    detect_swing,
    fit_grid,
    four_four_runs,
    meter_names,
)
from arranger.corpus_midi import (
    MAX_EVENTS,
    MAX_NOTES,
    MAX_TRACKS,
    MELODY_NAMES,
    MONOPHONIC_OVERLAP,
    parse_midi_bytes,
    pick_bass,
    pick_melody,
    piece_from_midi,
    read_midi_bytes,
)
from arranger.corpus_musicxml import read_musicxml
from arranger.corpus_piece import MAX_FILE_BYTES, Notes, Piece, SkipSong, Song
from arranger.corpus_pop909 import POP909_BASS_BELOW, Pop909Files, read_pop909
from arranger.corpus_songs import (
    MIN_BARS,
    MIN_LAYER_NOTES,
    drum_grid,
    songs_from_piece,
    step_line,
)

__all__ = ["SkipSong", "Song", "parse_midi_bytes", "read_midi_bytes", "read_pop909",
           "read_chord_chart", "read_musicxml", "parse_harte", "parse_jazz_chord",
           "is_chord_chart", "Pop909Files", "piece_from_midi", "pick_melody", "pick_bass",
           "MAX_FILE_BYTES"]
