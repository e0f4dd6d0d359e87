"""For the eyes: a piano roll (PNG) and a MusicXML score that notation software opens."""

from __future__ import annotations

import sys
from collections.abc import Mapping
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from arranger.atomic import atomic_path
from arranger.score import (
    BEATS_PER_BAR,
    DRUM_CLASSES,
    STEPS_PER_BAR,
    STEPS_PER_BEAT,
    Score,
    hit_matrix,
    note_spans,
)
from tracks import chords as chord_track

if TYPE_CHECKING:
    from music21.harmony import ChordSymbol

    from arranger.score import Chord

_COLORS = {"chords": "#c9a66b", "melody": "#e07a5f", "bass": "#3d5a80", "drums": "#81b29a"}


def write_pictures(folder: Path, score: Score, programs: Mapping[str, int] | None = None
                   ) -> list[str]:
    """Write ``pianoroll.png`` and ``score.musicxml`` into ``folder``; never raises.

    The pictures are extras next to a song that is already written: a failure of one (a
    library release that rejects something, a full disk) is reported as one line on stderr
    and returned, and the other picture and the song are kept.

    Returns
    -------
    list[str]
        One warning line per picture that could not be written (empty when both were).
    """
    jobs = (("pianoroll.png", lambda p: write_pianoroll(p, score)),
            ("score.musicxml", lambda p: write_musicxml(p, score, programs)))
    warnings = []
    for name, write in jobs:
        try:
            write(Path(folder) / name)
        except Exception as e:  # any library failure: the song must survive its pictures
            warnings.append(f"warning: {name} not written ({type(e).__name__}: "
                            f"{str(e).splitlines()[0] if str(e) else 'no message'})")
            print(warnings[-1], file=sys.stderr, flush=True)
    return warnings


def write_pianoroll(path: Path, score: Score) -> None:
    """One lane per layer, bar lines, chord names along the top.

    Drawn with one collection per lane (not an artist per note or bar line), fixed margins
    (``tight_layout`` draws the whole figure once more to measure it) and fast PNG compression,
    on a bare Agg canvas (no pyplot): the picture process runs beside the audio.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    width = max(8, score.bars * 0.45)
    fig = Figure(figsize=(width, 7))
    FigureCanvasAgg(fig)
    axes = fig.subplots(4, 1, sharex=True, gridspec_kw={"height_ratios": [2, 3, 2, 2]})
    fig.subplots_adjust(left=1.2 / width, right=1 - 0.15 / width, bottom=0.08, top=0.91,
                        hspace=0.25)
    _chord_lane(axes[0], score)
    _line_lane(axes[1], score, "melody")
    _line_lane(axes[2], score, "bass")
    _drum_lane(axes[3], score)
    bars = np.arange(score.bars + 1)
    for ax in axes:
        ax.vlines(bars * STEPS_PER_BAR, 0, 1, transform=ax.get_xaxis_transform(), colors="#888",
                  linewidths=np.where(bars % 4, 0.6, 1.2), zorder=0)
        ax.set_xlim(0, score.steps)
    axes[-1].set_xticks(np.arange(0, score.steps, STEPS_PER_BAR * 4))
    axes[-1].set_xticklabels([str(b + 1) for b in range(0, score.bars, 4)])
    axes[-1].set_xlabel("bar")
    fig.suptitle(f"{score.key} · {score.tempo_bpm:g} bpm · {score.bars} bars", fontsize=10)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=90, format="png", pil_kwargs={"compress_level": 1})


def _chord_lane(ax, score: Score) -> None:
    ax.set_ylabel("chords", rotation=0, ha="right")
    bars = []
    for start, end, pitches in chord_track.voice(score.chords, score.key):
        s0, s1 = start * STEPS_PER_BEAT, end * STEPS_PER_BEAT
        bars += [(s0, s1 - s0, p) for p in pitches]
        name = chord_track.absolute_name(score.chords[start], score.key)
        ax.text(s0 + 0.3, 1.02, name, transform=ax.get_xaxis_transform(), fontsize=7,
                va="bottom")
    _bars(ax, bars, "chords")
    ax.set_ylim(50, 78)


def _bars(ax, bars: list[tuple[int, int, int]], layer: str) -> None:
    """Draw (start, length, pitch) note rectangles as one collection: an artist per note is
    slow to draw."""
    if not bars:
        return
    from matplotlib.collections import PolyCollection

    left, width, pitch = np.array(bars, dtype=float).T
    low, high = pitch - 0.4, pitch + 0.4
    corners = np.stack([np.stack(c, axis=-1) for c in ((left, low), (left + width, low),
                                                       (left + width, high), (left, high))], 1)
    ax.add_collection(PolyCollection(corners, facecolors=_COLORS[layer], edgecolors="none"))


def _line_lane(ax, score: Score, layer: str) -> None:
    ax.set_ylabel(layer, rotation=0, ha="right")
    spans = note_spans(getattr(score, layer))
    _bars(ax, [(s, e - s, p + score.key.tonic) for s, e, p in spans], layer)
    if spans:
        pitches = [p + score.key.tonic for _, _, p in spans]
        ax.set_ylim(min(pitches) - 2, max(pitches) + 2)


def _drum_lane(ax, score: Score) -> None:
    ax.set_ylabel("drums", rotation=0, ha="right")
    steps, classes = np.nonzero(hit_matrix(score.drums))
    ax.scatter(steps + 0.5, classes, s=6, marker="s", color=_COLORS["drums"])
    ax.set_ylim(-0.5, len(DRUM_CLASSES) - 0.5)
    ax.set_yticks(range(len(DRUM_CLASSES)))
    ax.set_yticklabels(DRUM_CLASSES, fontsize=6)


def write_musicxml(path: Path, score: Score, programs: Mapping[str, int] | None = None) -> None:
    """Lead sheet plus parts: melody with chord symbols, keys, bass (drums are left out)."""
    from music21 import stream

    top = stream.Score()
    top.insert(0, _part(score, "melody", with_symbols=True))
    top.insert(0, _chord_part(score))
    top.insert(0, _part(score, "bass"))
    with atomic_path(path) as tmp:
        # The parts are already measured and tied: skip music21's slow copy-and-renotate pass.
        top.write("musicxml", fp=str(tmp), makeNotation=False)


def _part(score: Score, layer: str, with_symbols: bool = False):
    from music21 import clef, key, meter, note, stream, tempo

    part = stream.Part(id=layer)
    part.partName = layer
    part.insert(0, meter.TimeSignature("4/4"))
    part.insert(0, key.Key(_tonic_name(score), score.key.mode))
    part.insert(0, tempo.MetronomeMark(number=score.tempo_bpm))
    if layer == "bass":
        part.insert(0, clef.BassClef())
    q = 1.0 / STEPS_PER_BEAT
    for start, end, pitch in note_spans(getattr(score, layer)):
        n = note.Note(int(pitch) + score.key.tonic)
        n.quarterLength = (end - start) * q
        part.insert(start * q, n)
    if with_symbols:
        _insert_symbols(part, score)
    _pad_to_end(part, score)
    return _measured(part)


def _insert_symbols(part, score: Score) -> None:
    """A chord symbol at every chord change. A loop's few chords are spelt once and copied:
    music21 builds each symbol's pitches through its figured-bass realiser (~10 ms apiece)."""
    import copy

    spelt: dict = {}
    for beat, chord in _changes(score):
        if chord is not None and chord not in spelt:
            spelt[chord] = chord_symbol(chord, score)
        symbol = spelt.get(chord)
        if symbol is not None:
            part.insert(beat, copy.deepcopy(symbol))


def _chord_part(score: Score):
    from music21 import chord, key, meter, pitch, stream

    part = stream.Part(id="chords")
    part.partName = "chords"
    part.insert(0, meter.TimeSignature("4/4"))
    part.insert(0, key.Key(_tonic_name(score), score.key.mode))
    for start, end, pitches in chord_track.voice(score.chords, score.key):
        # Pitch objects, not ints: music21 would search every enharmonic spelling of the ints.
        c = chord.Chord([pitch.Pitch(midi=p) for p in pitches])
        c.quarterLength = end - start
        part.insert(start, c)
    _pad_to_end(part, score)
    return _measured(part)


def _measured(part):
    """Rests in the gaps, bars, and ties where a note crosses a bar line."""
    part.makeRests(fillGaps=True, inPlace=True)
    part.makeMeasures(inPlace=True)  # in place: a copy of every note would cost ~0.3 s a song
    part.makeTies(inPlace=True)
    part.splitAtDurations(recurse=True)  # e.g. 5 quarters -> tied half + dotted half
    return part


def _pad_to_end(part, score: Score) -> None:
    from music21 import note

    end = score.bars * BEATS_PER_BAR
    if part.highestTime < end:
        r = note.Rest(quarterLength=end - part.highestTime)
        part.insert(part.highestTime, r)


def _changes(score: Score):
    previous = object()
    for beat, chord in enumerate(score.chords):
        if chord != previous:
            yield beat, chord
            previous = chord


def _tonic_name(score: Score) -> str:
    return score.key.tonic_name  # spelled as the user wrote the key (C# minor, not Db minor)


def chord_symbol(chord: Chord, score: Score) -> ChordSymbol | None:
    """A music21 ChordSymbol for ``chord`` (key-relative) in the song's key, or None.

    Spelled through music21's own chord-type table (its kinds, matched by pitch-class set), so
    a release that renames an abbreviation (``maj9`` -> ``M9``) cannot break the lead sheet; a
    chord no kind matches is named from its pitches.
    """
    from music21 import chord as m21_chord
    from music21 import harmony, pitch

    root = pitch.Pitch(_m21_root(chord_track.absolute_name(chord, score.key)))
    kind = _kind_of(frozenset(i % 12 for i in chord.intervals))
    if kind is not None:
        return harmony.ChordSymbol(root=root, kind=kind)
    notes = [root.transpose(i) for i in chord.intervals]
    try:
        return harmony.chordSymbolFromChord(m21_chord.Chord(notes))
    except Exception:  # music21 cannot name it: the sheet is written without this symbol
        return None


def _m21_root(name: str) -> str:
    """The root of a chord name (``"Ebm7"`` -> ``"E-"``): music21 spells flats with ``-``."""
    root = name[:2] if name[1:2] in ("b", "#") else name[:1]
    return root.replace("b", "-")


_MAJOR_SCALE = (0, 2, 4, 5, 7, 9, 11)


@cache
def _kinds() -> dict[frozenset[int], str]:
    """music21's chord kinds by pitch-class set above the root (first kind wins a tie)."""
    from music21 import harmony

    table: dict[frozenset[int], str] = {}
    for kind in harmony.CHORD_TYPES:
        steps = harmony.getNotationStringGivenChordType(kind).split(",")
        table.setdefault(frozenset(_semitones(s) % 12 for s in steps), kind)
    return table


def _semitones(step: str) -> int:
    """A chord-type degree like ``"-7"``, ``"#5"`` or ``"9"`` in semitones above the root."""
    degree = int(step.lstrip("-#")) - 1
    return (_MAJOR_SCALE[degree % 7] + 12 * (degree // 7) + step.count("#")
            - step.count("-"))


def _kind_of(pitch_classes: frozenset[int]) -> str | None:
    return _kinds().get(pitch_classes)
