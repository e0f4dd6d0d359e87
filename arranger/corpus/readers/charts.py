"""Chord text for the corpus: Harte labels (POP909), jazz chart symbols and jazz chord charts.

A chart (the jazz chord corpus) reads ``TimeSig = 4 4`` and ``DBKeySig = F`` header lines, then
``| Am7 D7 |`` bars; it gives chords-only songs.
"""

from __future__ import annotations

import re

import numpy as np

from arranger.corpus.piece import Piece, SkipSong, Song
from arranger.corpus.songs import songs_from_piece
from arranger.score import QUALITIES, Key, pitch_class_of_name
from tracks.chords import quality_from_intervals

# --- chord symbols ----------------------------------------------------------------------------

_HARTE = {"maj": "maj", "min": "min", "dim": "dim", "aug": "aug", "maj7": "maj7", "min7": "m7",
          "7": "7", "dim7": "dim7", "hdim7": "m7b5", "maj6": "6", "min6": "m6", "9": "9",
          "maj9": "maj9", "min9": "m9", "sus2": "sus2", "sus4": "sus4", "": "maj"}
_HARTE_INTERVALS = {"minmaj7": (0, 3, 7, 11), "11": (0, 4, 7, 10, 14, 17), "13": (0, 4, 7, 10, 14),
                    "min11": (0, 3, 7, 10, 14), "maj13": (0, 4, 7, 11, 14), "5": (0, 7), "1": (0,)}
_DEGREES = {"1": 0, "2": 2, "3": 4, "4": 5, "5": 7, "6": 9, "7": 11, "9": 14, "11": 17, "13": 21}


def parse_harte(label: str) -> tuple[int, str] | None:
    """(root pitch class, quality) of a Harte label like ``A:min7/5`` or ``C:sus4(b7)``; N -> None.

    Unknown shapes are matched to the nearest quality by their intervals.
    """
    label = label.strip()
    if label in ("N", "X", ""):
        return None
    root, _, rest = label.partition(":")
    rest = rest.split("/")[0]
    shorthand, _, ext = rest.partition("(")
    try:
        pc = pitch_class_of_name(root)
    except ValueError:
        return None
    ext = ext.rstrip(")")
    if not ext and shorthand in _HARTE:
        return pc, _HARTE[shorthand]
    intervals = set(_HARTE_INTERVALS.get(shorthand, _harte_shorthand_intervals(shorthand)))
    for degree in filter(None, ext.split(",")):
        semis = _degree_semitones(degree.lstrip("*"))
        if semis is not None:
            (intervals.discard if degree.startswith("*") else intervals.add)(semis)
    return pc, quality_from_intervals(intervals)


def _harte_shorthand_intervals(shorthand: str) -> tuple[int, ...]:
    return QUALITIES.get(_HARTE.get(shorthand, "maj"), (0, 4, 7))


def _degree_semitones(degree: str) -> int | None:
    flats, sharps = degree.count("b"), degree.count("#")
    base = _DEGREES.get(degree.lstrip("b#"))
    return None if base is None else base - flats + sharps


# Jazz chart suffixes (after the root), tried in order; the first regex that matches wins.
_JAZZ_RULES: tuple[tuple[str, str], ...] = (
    (r"(m7b5|m9b5|m11b5|h7?|ø7?)", "m7b5"),
    (r"(o7|dim7|°7)", "dim7"),
    (r"(o|dim|°)", "dim"),
    (r"(mM7|mMaj7|mmaj7|mM9|m\(?maj7\)?)", "min"),
    (r"(m69|mi6|m6)", "m6"),
    (r"(m9|m11|m13)", "m9"),
    (r"(m7|mi7|min7|-7)", "m7"),
    (r"(min|mi|m|-)", "min"),
    (r"(M7|maj7|Maj7|Δ7?|j7)", "maj7"),
    (r"(M9|maj9|Maj9|M13|maj13)", "maj9"),
    (r"(M69|M6|69|67|6)", "6"),
    (r"(7sus4?|9sus4?|11|13sus4?)", "7sus4"),
    (r"(sus24|sus4?|4)", "sus4"),
    (r"(sus2|2)", "sus2"),
    (r"(9|13)", "9"),
    (r"(\+7|7)", "7"),
    (r"(\+|aug)", "aug"),
    (r"(maj|M|5)?", "maj"),
)
_JAZZ_COMPILED = tuple((re.compile(pattern), quality) for pattern, quality in _JAZZ_RULES)
_JAZZ_SYMBOL = re.compile(r"^([A-G][#b]?)([^/]*)(?:/([A-G][#b]?))?$")


def parse_jazz_chord(symbol: str) -> tuple[int, str] | None:
    """(root pitch class, quality) of a chart symbol like ``Bb7b9``, ``F#m7b5``, ``G6/B``.

    ``NC`` -> None. Alterations after the basic shape (b9, #11, alt, #5...) are dropped.

    Raises
    ------
    ValueError : not a chord symbol.
    """
    if symbol in ("NC", "N.C.", "N"):
        return None
    match = _JAZZ_SYMBOL.match(symbol)
    if not match:
        raise ValueError(f"not a chord symbol: {symbol!r}")
    pc = pitch_class_of_name(match.group(1))
    suffix = match.group(2)
    for pattern, quality in _JAZZ_COMPILED:
        head = pattern.match(suffix)
        if head and _only_alterations(suffix[head.end():]):
            return pc, quality
    raise ValueError(f"unknown chord suffix in {symbol!r}")


def _only_alterations(rest: str) -> bool:
    return re.fullmatch(r"(?:[b#+]\d+|alt|add[b#]?\d+|sus\d?|no\d|[+#]|M7|\(.*\))*",
                        rest) is not None


# --- jazz chord charts ------------------------------------------------------------------------


def is_chord_chart(text: str) -> bool:
    """Whether ``text`` looks like a chord chart of the jazz corpus (header keys and bars)."""
    head = text[:600]
    return "TimeSig" in head and "|" in text and ("DBKeySig" in head or "Bars" in head)


def read_chord_chart(text: str, source: str, dataset: str = "") -> list[Song]:
    """Songs (chords only) of a chart: ``TimeSig = 4 4``, ``DBKeySig = F`` then ``| Am7 D7 |`` bars.

    One chord fills the bar's 4 beats, two take 2 beats each, more split the bar evenly.
    """
    header, bars = _chart_parts(text)
    meter = header.get("TimeSig", "4 4").split()
    if meter not in (["4", "4"], ["2", "2"]):
        raise SkipSong(f"non-4/4 time signature: {'/'.join(meter) or '?'}")
    changes, bad, total = _chart_changes(bars)
    if total == 0:
        raise SkipSong("no usable notes: empty chord chart")
    if bad > 0.2 * total:
        raise SkipSong(f"unreadable chord symbols: {bad} of {total}")
    piece = Piece(source=source, dataset=dataset, chords=changes)
    piece.bar_starts = np.arange(len(bars), dtype=np.float64) * 4
    piece.bar_beats = np.full(len(bars), 4)
    try:
        piece.key_changes = [(0.0, Key.parse(header.get("DBKeySig", "")))]
    except ValueError:
        piece.key_changes = []
    return songs_from_piece(piece)


def _chart_parts(text: str) -> tuple[dict[str, str], list[list[str]]]:
    header: dict[str, str] = {}
    bars: list[list[str]] = []
    for line in text.splitlines():
        if "|" in line:
            bars += [cell.split() for cell in line.split("|")[:-1]]
        elif "=" in line:
            name, _, value = line.partition("=")
            header[name.strip()] = value.strip()
    return header, bars


def _chart_changes(bars: list[list[str]]) -> tuple[list, int, int]:
    """Chord changes ``(beat, chord)``, unreadable symbols, all symbols.

    An empty bar or an unreadable symbol holds the chord before it.
    """
    changes, bad, total = [], 0, 0
    for bar, symbols in enumerate(bars):
        for i, symbol in enumerate(symbols):
            total += 1
            try:
                changes.append((bar * 4.0 + _chord_beat(i, len(symbols)),
                                parse_jazz_chord(symbol)))
            except ValueError:
                bad += 1
    return changes, bad, total


def _chord_beat(i: int, n: int) -> float:
    """Beat in the bar where chord ``i`` of ``n`` starts: 1 -> 0; 2 -> 0, 2; 3 -> 0, 2, 3."""
    return 4 - ((n - i) * 4) // n if n <= 4 else 4 * i / n
