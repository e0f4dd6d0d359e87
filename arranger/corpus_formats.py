"""Per-format corpus readers: MIDI, POP909 song folders, jazz chord charts, MusicXML lead sheets.

Every reader turns its input into a :class:`Piece` (notes and chord annotations on a quarter-note
beat axis, plus the bar structure), and :func:`songs_from_piece` turns a piece into key-relative
4/4 :class:`Song` s on the 16th grid: it fits the grid (swing, timing offset, the "unquantizable"
test), cuts the piece into runs of whole 4/4 bars, estimates keys and builds the layers.
A rejected input raises :class:`SkipSong` with a reason of the form ``"category: detail"``.
"""

from __future__ import annotations

import io
import re
import warnings
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from arranger.key_estimation import choose_key, pitch_class_histogram
from arranger.midi_io import parse_chord_name
from arranger.score import (
    BEATS_PER_BAR,
    QUALITIES,
    STEPS_PER_BAR,
    STEPS_PER_BEAT,
    Chord,
    Key,
    Score,
    drum_class_of_pitch,
    line_from_spans,
    pitch_class_of_name,
)
from tracks import chords as chord_track
from tracks.chords import quality_from_intervals

MAX_FILE_BYTES = 16 * 2**20  # larger files are skipped before parsing
MAX_TRACKS = 512
MAX_EVENTS = 2_000_000
MELODY_NAMES = ("melody", "lead", "vocal", "voice", "sing", "solo")
MONOPHONIC_OVERLAP = 0.15  # a melody candidate may overlap its previous note this often
POP909_BASS_BELOW = 55  # POP909's bass is the piano's lowest line below G3
MAX_NOTES = 200_000
MAX_TOTAL_BARS = 4096  # longer pieces are skipped ("too long")
MIN_BARS = 2
OFF_GRID_STEPS = 0.25  # an onset this far (in 16ths) from the grid counts as off the grid
MAX_OFF_GRID = 0.4  # "unquantizable" when a larger share of onsets is off the grid
MIN_LAYER_NOTES = 4
QUALITY_NAMES = tuple(QUALITIES)


class SkipSong(Exception):
    """A rejected input; ``reason`` reads ``"category: detail"`` (reports count by category)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason or "rejected"

    @property
    def category(self) -> str:
        return self.reason.split(":", 1)[0]


@dataclass(frozen=True)
class Song:
    """One training song: a 4/4 key-relative Score and the layers it truly holds."""

    source: str  # file path (zip: "archive.zip:member.mid"; POP909: the song folder)
    score: Score  # 4/4, quantised to 16ths, key-relative, tempo = median bpm
    layers: frozenset[str]  # which of "chords", "melody", "bass", "drums" it holds
    dataset: str = ""  # "pop909", "groove-gmd", "openewld", "jazz-chord-corpus", "nottingham"


@dataclass
class Notes:
    """Notes on a quarter-note beat axis: float beats [n], int pitch and velocity [n]."""

    start: np.ndarray
    end: np.ndarray
    pitch: np.ndarray
    velocity: np.ndarray

    def __len__(self) -> int:
        return len(self.start)

    @classmethod
    def concat(cls, parts: Sequence[Notes]) -> Notes:
        parts = [p for p in parts if p is not None and len(p)]
        if not parts:
            return cls(np.zeros(0), np.zeros(0), np.zeros(0, np.int64), np.zeros(0, np.int64))
        return cls(*(np.concatenate([getattr(p, k) for p in parts])
                     for k in ("start", "end", "pitch", "velocity")))

    def select(self, mask: np.ndarray) -> Notes:
        return Notes(self.start[mask], self.end[mask], self.pitch[mask], self.velocity[mask])


@dataclass
class Piece:
    """A song as read from its file, before it is cut into 4/4 segments on the 16th grid.

    ``bar_starts`` / ``bar_beats``: each bar's first beat and length in quarter notes (a bar of
    length 4 is 4/4, anything else breaks the song into separate segments). ``chords``: annotated
    chord changes ``(beat, (root_pc, quality) | None)`` in absolute pitch classes.
    ``beat_seconds``: seconds of each integer beat (for the tempo), else ``tempo_bpm`` is used.
    """

    source: str = ""
    dataset: str = ""
    melody: Notes | None = None
    harmony: Notes | None = None
    bass: Notes | None = None
    drums: Notes | None = None
    chords: list | None = None
    key_changes: list = field(default_factory=list)  # (beat, Key) from the file
    key_trusted: bool = False  # annotated keys (POP909) are used as they are
    bar_starts: np.ndarray = field(default_factory=lambda: np.zeros(0))
    bar_beats: np.ndarray = field(default_factory=lambda: np.zeros(0))
    beat_seconds: np.ndarray | None = None
    tempo_bpm: float = 100.0
    swing: float = 0.0  # Score.swing: only this tool's own files say
    meters: list[str] = field(default_factory=list)

    def note_layers(self) -> dict[str, Notes]:
        layers = {"melody": self.melody, "harmony": self.harmony, "bass": self.bass,
                  "drums": self.drums}
        return {k: v for k, v in layers.items() if v is not None and len(v)}

    def end_beat(self) -> float:
        ends = [float(n.end.max()) for n in self.note_layers().values()]
        ends += [c[0] + 4 for c in self.chords or []]
        return max(ends, default=0.0)


# --- the grid ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class GridFit:
    """How beats map to 16th steps: shift, un-swing 8ths, then round (minus a small offset)."""

    swing: float = 0.5  # position of the off-beat 8th in a beat (0.5 = straight)
    offset: float = 0.0  # in steps, subtracted before rounding
    beat_offset: float = 0.0  # in beats: how far ahead (< 0) or behind the player sits

    def steps(self, beats) -> np.ndarray:
        """Nearest 16th step of each beat position, int64."""
        b = np.asarray(beats, np.float64) - self.beat_offset
        return np.round(4 * _unswing(b, self.swing) - self.offset).astype(np.int64)


def _unswing(beats: np.ndarray, swing: float) -> np.ndarray:
    if swing == 0.5:
        return beats
    whole = np.floor(beats)
    frac = beats - whole
    frac = np.where(frac < swing, frac * 0.5 / swing, 0.5 + (frac - swing) * 0.5 / (1 - swing))
    return whole + frac


def detect_swing(onsets: np.ndarray) -> float:
    """Off-beat 8th position when swung 8ths dominate (0.58-0.74 of a beat), else 0.5."""
    frac = onsets % 1.0
    swung = (frac > 0.58) & (frac < 0.74)
    n = int(swung.sum())
    straight = np.sum(np.abs(frac - 0.5) < 0.06)
    triplet = np.sum(np.abs(frac - 1 / 3) < 0.06)
    sixteenth = np.sum(np.abs(frac - 0.25) < 0.05)
    if n >= 8 and n > 2 * straight and triplet < 0.5 * n and sixteenth < 0.5 * n:
        return float(np.median(frac[swung]))
    return 0.5


def fit_grid(onsets: np.ndarray) -> GridFit:
    """The grid fit of a piece's onsets (beats).

    First the median lead or lag of the onsets near beats is removed (drummers play ahead),
    then swung 8ths are straightened, then the median deviation from the 16th grid is removed.

    Raises
    ------
    SkipSong : "unquantizable" when more than ``MAX_OFF_GRID`` of 16+ onsets still sit more
        than ``OFF_GRID_STEPS`` from the grid (triplet feels, rubato, no usable beat map).
    """
    onsets = onsets[np.isfinite(onsets)]
    near = (onsets + 0.5) % 1.0 - 0.5
    near = near[np.abs(near) < 0.15]
    beat_offset = float(np.median(near)) if len(near) >= 8 else 0.0
    swing = detect_swing(onsets - beat_offset)
    s = 4 * _unswing(onsets - beat_offset, swing)
    dev = s - np.round(s)
    offset = float(np.median(dev)) if len(dev) else 0.0
    offset = offset if abs(offset) <= 0.3 else 0.0
    shifted = s - offset
    off = float(np.mean(np.abs(shifted - np.round(shifted)) > OFF_GRID_STEPS)) if len(s) else 0.0
    if len(s) >= 16 and off > MAX_OFF_GRID:
        raise SkipSong(f"unquantizable: {off:.0%} of onsets off the 16th grid")
    return GridFit(swing, offset, beat_offset)


# --- bars and segments ------------------------------------------------------------------------


def bars_from_meters(meters: list[tuple[float, int, int]], end_beat: float
                     ) -> tuple[np.ndarray, np.ndarray]:
    """Bar starts and lengths (beats) from time signatures ``(beat, numerator, denominator)``.

    4/4 is assumed before the first signature. A bar cut short by the next signature keeps its
    shorter length (and so breaks the 4/4 run); the last bar is whole (the music ends in it).
    """
    meters = sorted(meters)
    if not meters or meters[0][0] > 1e-6:
        meters = [(0.0, 4, 4)] + meters
    if end_beat > MAX_TOTAL_BARS * 4:
        raise SkipSong(f"too long: {end_beat / 4:.0f} bars")
    starts, lengths = [], []
    for i, (beat, num, den) in enumerate(meters):
        stop = meters[i + 1][0] if i + 1 < len(meters) else end_beat
        length = num * 4.0 / den
        if stop <= beat:
            continue
        if not 0.25 <= length <= 32:
            raise SkipSong(f"invalid time signature: {num}/{den}")
        region = np.arange(beat, stop - 1e-6, length)
        if len(starts) + len(region) > 4 * MAX_TOTAL_BARS:
            raise SkipSong("too long: too many bars")
        starts += region.tolist()
        last = i + 1 == len(meters)  # the last meter runs on to the end of the music
        lengths += (np.full(len(region), length) if last else np.minimum(length, stop - region)
                    ).tolist()
    return np.array(starts), np.array(lengths)


def meter_names(meters: list[tuple[float, int, int]]) -> list[str]:
    return [f"{num}/{den}" for _, num, den in meters]


def four_four_runs(piece: Piece) -> list[tuple[int, int]]:
    """Runs of contiguous 4/4 bars as ``(first_step, n_bars)``, also split at key changes."""
    runs: list[list[float]] = []
    for start, length in zip(piece.bar_starts.tolist(), piece.bar_beats.tolist(), strict=True):
        if abs(length - 4) > 1e-6:
            runs.append([])
        elif runs and runs[-1] and abs(runs[-1][-1] + 4 - start) < 1e-6:
            runs[-1].append(start)
        else:
            runs.append([start])
    cuts = _key_change_beats(piece)
    out = []
    for run in filter(None, runs):
        starts = np.array(run)
        marks = sorted({int(np.argmin(np.abs(starts - c))) for c in cuts} - {0})
        for a, b in zip([0] + marks, marks + [len(run)], strict=True):
            out.append((int(round(4 * starts[a])), b - a))
    return out


def _key_change_beats(piece: Piece) -> list[float]:
    beats, previous = [], None
    for beat, key in sorted(piece.key_changes, key=lambda kc: kc[0]):
        if previous is not None and key != previous:
            beats.append(beat)
        previous = key
    return beats


def _key_at(piece: Piece, beat: float) -> Key | None:
    active = [key for b, key in sorted(piece.key_changes, key=lambda kc: kc[0]) if b <= beat + 0.5]
    if active:
        return active[-1]
    return piece.key_changes[0][1] if piece.key_changes else None


# --- layers on the grid -----------------------------------------------------------------------


@dataclass
class StepNotes:
    """Notes on the global 16th grid: int64 start/end steps, pitch, velocity."""

    start: np.ndarray
    end: np.ndarray
    pitch: np.ndarray
    velocity: np.ndarray

    @classmethod
    def of(cls, notes: Notes | None, fit: GridFit, limit: int) -> StepNotes:
        if notes is None or not len(notes):
            z = np.zeros(0, np.int64)
            return cls(z, z, z, z)
        start = fit.steps(notes.start)
        end = np.maximum(fit.steps(notes.end), start + 1)
        keep = (start < limit) & (end > 0) & (notes.pitch >= 12) & (notes.pitch < 128)
        return cls(start[keep], np.minimum(end[keep], limit), notes.pitch[keep].astype(np.int64),
                   notes.velocity[keep].astype(np.int64))

    def window(self, s0: int, steps: int) -> StepNotes:
        """Notes starting in ``[s0, s0 + steps)``, shifted to start at 0 and cut at the end."""
        keep = (self.start >= s0) & (self.start < s0 + steps)
        return StepNotes(self.start[keep] - s0, np.minimum(self.end[keep] - s0, steps),
                         self.pitch[keep], self.velocity[keep])

    def sounding(self, s0: int, steps: int) -> StepNotes:
        """Notes sounding in ``[s0, s0 + steps)``, clipped to it, shifted to start at 0."""
        keep = (self.end > s0) & (self.start < s0 + steps)
        return StepNotes(np.maximum(self.start[keep] - s0, 0),
                         np.minimum(self.end[keep] - s0, steps), self.pitch[keep],
                         self.velocity[keep])


def step_line(notes: StepNotes, steps: int, tonic: int, lowest: bool = False) -> np.ndarray:
    """Monophonic key-relative step line; at a shared onset the top (or lowest) note wins."""
    order = np.lexsort((notes.pitch if lowest else -notes.pitch, notes.start))
    spans, seen = [], set()
    for i in order.tolist():
        start = int(notes.start[i])
        if start not in seen:
            seen.add(start)
            spans.append((start, int(notes.end[i]), int(notes.pitch[i]) - tonic))
    return line_from_spans(spans, steps)


_DRUM_CLASS_OF = np.array([-1 if drum_class_of_pitch(p) is None else drum_class_of_pitch(p)
                           for p in range(128)], dtype=np.int64)


def drum_grid(notes: StepNotes, steps: int) -> tuple[np.ndarray, np.ndarray, int]:
    """(uint16 class masks [steps], uint8 velocity levels [steps], number of mapped hits)."""
    cls = _DRUM_CLASS_OF[np.clip(notes.pitch, 0, 127)]
    keep = cls >= 0
    step, cls, vel = notes.start[keep], cls[keep], notes.velocity[keep]
    masks = np.zeros(steps, np.uint16)
    np.bitwise_or.at(masks, step, (1 << cls).astype(np.uint16))
    peak = np.zeros(steps, np.int64)
    np.maximum.at(peak, step, vel)
    levels = np.ones(steps, np.uint8)
    hit = masks > 0
    levels[hit] = np.where(peak[hit] < 64, 0, np.where(peak[hit] < 100, 1, 2))
    return masks, levels, int(keep.sum())


def recognise_beats(notes: StepNotes, n_beats: int) -> list[tuple[int, str] | None]:
    """Absolute (root, quality) per beat by template matching of the sounding pitch classes.

    Each beat's duration-weighted pitch classes get half the weight of the other beat of its
    half bar (chords rarely change off beats 1 and 3); the lowest sounding note picks the root
    among ties. Beats with fewer than two pitch classes have no chord.
    """
    steps = n_beats * STEPS_PER_BEAT
    diff = np.zeros((steps + 1, 12))
    np.add.at(diff, (notes.start, notes.pitch % 12), 1.0)
    np.add.at(diff, (notes.end, notes.pitch % 12), -1.0)
    weights = np.cumsum(diff[:-1], axis=0).reshape(n_beats, STEPS_PER_BEAT, 12).sum(axis=1)
    if n_beats % 2 == 0:
        weights = weights + 0.5 * weights.reshape(-1, 2, 12)[:, ::-1].reshape(-1, 12)
    lowest = np.full(steps, 128, np.int64)
    for i in np.argsort(-notes.pitch, kind="stable").tolist():
        lowest[notes.start[i]:notes.end[i]] = notes.pitch[i]
    bass = lowest.reshape(n_beats, STEPS_PER_BEAT).min(axis=1)
    out: list[tuple[int, str] | None] = [None] * n_beats
    rows = np.flatnonzero(np.count_nonzero(weights > 1e-9, axis=1) >= 2)
    if len(rows):
        found = match_chords(weights[rows], np.where(bass[rows] == 128, -1, bass[rows]))
        for row, chord in zip(rows.tolist(), found, strict=True):
            out[row] = chord
    return out


_ROLL = (np.arange(12)[:, None] + np.arange(12)[None, :]) % 12  # [root, j] -> (root + j) % 12


def match_chords(weights: np.ndarray, bass: np.ndarray) -> list[tuple[int, str]]:
    """:func:`tracks.chords.chord_from_pitch_classes` for many beats at once.

    Parameters
    ----------
    weights : float [n, 12] pitch-class weights, each row with a positive sum.
    bass : int [n] lowest MIDI pitch (or pitch class) per row, -1 for none.

    Returns the same (root, quality) as the per-beat function (its templates and tie-breaks),
    vectorised: calling it per beat costs ~0.4 ms, a third of a POP909 song's reading time.
    """
    templates, preference = chord_track._TEMPLATES, chord_track._PREFERENCE
    w = weights / weights.sum(axis=1, keepdims=True)
    rolled = w[:, _ROLL]  # [n, root, 12]
    scores = rolled @ templates.T - rolled @ (1 - templates).T  # [n, root, quality]
    scores -= 0.04 * templates.sum(1) - preference
    has_bass = bass >= 0
    scores[np.flatnonzero(has_bass), bass[has_bass] % 12] += 0.15
    best = np.argmax(np.round(scores, 9).reshape(len(w), -1), axis=1)  # exact ties: lowest root
    return [(int(b) // len(QUALITIES), QUALITY_NAMES[int(b) % len(QUALITIES)])
            for b in best.tolist()]


def annotated_beats(changes: list, fit: GridFit, s0: int, n_beats: int) -> list:
    """Chord of each beat from annotated changes: the one active at the middle of the beat."""
    if not changes:
        return [None] * n_beats
    order = sorted(range(len(changes)), key=lambda i: changes[i][0])
    at = fit.steps(np.array([changes[i][0] for i in order]))
    mids = s0 + STEPS_PER_BEAT * np.arange(n_beats) + STEPS_PER_BEAT // 2
    idx = np.searchsorted(at, mids, side="right") - 1
    return [changes[order[i]][1] if i >= 0 else None for i in idx.tolist()]


# --- piece -> songs ---------------------------------------------------------------------------


@dataclass
class _Grid:
    """A piece's layers on the global grid, and its annotated chord spans (start, end steps)."""

    fit: GridFit
    layers: dict[str, StepNotes]
    chord_spans: tuple[np.ndarray, np.ndarray]


def songs_from_piece(piece: Piece) -> list[Song]:
    """Key-relative 4/4 songs of a piece, one per run of 4/4 bars (and key).

    Raises
    ------
    SkipSong : with the reason of the first failing check when no segment gives a song.
    """
    notes = piece.note_layers()
    if not notes and not any(c[1] for c in piece.chords or []):
        raise SkipSong("no usable notes")
    onsets = np.concatenate([n.start for n in notes.values()] or [np.zeros(0)])
    fit = fit_grid(onsets)
    runs = four_four_runs(piece)
    if not runs:
        odd = Counter(m for m in piece.meters if m not in ("4/4", "2/2")).most_common(3)
        names = ", ".join(m for m, _ in odd) or "irregular bars"
        raise SkipSong(f"non-4/4 time signature: {names}")
    limit = max(s0 + 16 * n for s0, n in runs)
    on_grid = _Grid(fit, {k: StepNotes.of(v, fit, limit) for k, v in notes.items()},
                    _chord_spans(piece.chords or [], fit, limit))
    songs, reasons = [], []
    for s0, n_bars in runs:
        try:
            songs.append(_segment_song(piece, on_grid, *_trim(on_grid, s0, n_bars)))
        except SkipSong as exc:
            reasons.append(exc.reason)
    if not songs:
        raise SkipSong(max(reasons, key=lambda r: (reasons.count(r), r)))
    return songs


def _chord_spans(changes: list, fit: GridFit, limit: int) -> tuple[np.ndarray, np.ndarray]:
    """(start, end) steps of the annotated chords that are not N."""
    changes = sorted(changes, key=lambda c: c[0])
    at = fit.steps(np.array([c[0] for c in changes], np.float64))
    ends = np.append(at[1:], limit)
    real = np.array([c[1] is not None for c in changes], bool) & (ends > at)
    return at[real], ends[real]


def _bar_activity(on_grid: _Grid, s0: int, n_bars: int) -> np.ndarray:
    """How many notes (and annotated chords) sound in each bar of the run starting at ``s0``."""
    diff = np.zeros(n_bars + 1, np.int64)
    spans = [(n.start, n.end) for n in on_grid.layers.values()] + [on_grid.chord_spans]
    for start, end in spans:
        first = (start - s0) // STEPS_PER_BAR
        last = (end - 1 - s0) // STEPS_PER_BAR + 1
        keep = (last > 0) & (first < n_bars)
        np.add.at(diff, np.clip(first[keep], 0, n_bars), 1)
        np.add.at(diff, np.clip(last[keep], 0, n_bars), -1)
    return np.cumsum(diff)[:n_bars]


def _trim(on_grid: _Grid, s0: int, n_bars: int) -> tuple[int, int]:
    """Drop silent bars at both ends of a run of bars."""
    active = np.flatnonzero(_bar_activity(on_grid, s0, n_bars))
    if len(active) == 0:
        raise SkipSong("no usable notes")
    a, b = int(active[0]), int(active[-1]) + 1
    if b - a < MIN_BARS:
        raise SkipSong(f"too short: {b - a} bar{'s' * (b - a != 1)} of 4/4")
    return s0 + a * STEPS_PER_BAR, b - a


def _segment_song(piece: Piece, on_grid: _Grid, s0: int, n_bars: int) -> Song:
    steps, n_beats = n_bars * STEPS_PER_BAR, n_bars * BEATS_PER_BAR
    window = {k: v.window(s0, steps) for k, v in on_grid.layers.items()}
    absolute, annotated = _absolute_chords(piece, on_grid, s0, n_beats)
    key = _segment_key(piece, window, absolute, s0)
    score = Score(n_bars, tempo_bpm=_tempo(piece, s0, n_beats), key=key, swing=piece.swing)
    layers = set()
    for name in ("melody", "bass"):
        notes = window.get(name)
        if notes is not None and len(notes.start) >= max(MIN_LAYER_NOTES, n_bars // 4):
            setattr(score, name, step_line(notes, steps, key.tonic, lowest=name == "bass"))
            layers.add(name)
    if "drums" in window:
        masks, levels, hits = drum_grid(window["drums"], steps)
        if hits >= MIN_LAYER_NOTES:
            score.drums, score.drum_velocity = masks, levels
            layers.add("drums")
    known = sum(c is not None for c in absolute)
    if known >= (0.25 if annotated else 0.5) * n_beats:
        score.chords = tuple(None if c is None else _CHORDS[(c[0] - key.tonic) % 12][c[1]]
                             for c in absolute)
        layers.add("chords")
    if not layers:
        raise SkipSong(f"too few chords: {known} of {n_beats} beats" if annotated and not window
                       else "no usable notes")
    return Song(piece.source, score, frozenset(layers), piece.dataset)


_CHORDS = [{q: Chord(r, q) for q in QUALITIES} for r in range(12)]


def _absolute_chords(piece: Piece, on_grid: _Grid, s0: int, n_beats: int
                     ) -> tuple[list, bool]:
    if piece.chords:
        return annotated_beats(piece.chords, on_grid.fit, s0, n_beats), True
    harmony = on_grid.layers.get("harmony")
    if harmony is None:
        return [None] * n_beats, False
    return recognise_beats(harmony.sounding(s0, n_beats * STEPS_PER_BEAT), n_beats), False


def _segment_key(piece: Piece, window: dict[str, StepNotes], chords: list, s0: int) -> Key:
    signature = _key_at(piece, s0 / STEPS_PER_BEAT)
    if piece.key_trusted and signature is not None:
        return signature
    pitched = [window[k] for k in ("melody", "harmony", "bass") if k in window]
    pitches = np.concatenate([n.pitch for n in pitched] or [np.zeros(0, np.int64)])
    lengths = np.concatenate([np.clip(n.end - n.start, 1, 16) for n in pitched]
                             or [np.zeros(0, np.int64)])
    hist = pitch_class_histogram(pitches, lengths)
    if hist.sum() == 0:
        for chord in filter(None, chords):
            hist[[(chord[0] + i) % 12 for i in QUALITIES[chord[1]]]] += 1.0
    if hist.sum() == 0:
        return Key(0, "major")
    final = next((c[0] for c in reversed(chords) if c is not None), None)
    return choose_key(hist, signature, final)


def _tempo(piece: Piece, s0: int, n_beats: int) -> float:
    bpm = piece.tempo_bpm
    times = piece.beat_seconds
    if times is not None:
        first = s0 // STEPS_PER_BEAT
        span = np.diff(times[max(first, 0):first + n_beats + 1])
        if len(span) and np.median(span) > 0:
            bpm = 60.0 / float(np.median(span))
    if not 10 <= bpm <= 600:
        raise SkipSong(f"bad tempo: {bpm:.3g} bpm")
    return round(float(np.clip(bpm, 20, 300)), 2)


# --- MIDI -------------------------------------------------------------------------------------


def parse_midi_bytes(data: bytes):
    """A ``pretty_midi.PrettyMIDI`` from raw bytes, with guards against pathological files.

    Raises
    ------
    SkipSong : too big, type-2, too many tracks or events, or any parse error (first line).
    """
    import mido
    import pretty_midi

    if len(data) > MAX_FILE_BYTES:
        raise SkipSong(f"too big: {len(data) / 2**20:.1f} MB")
    try:
        mf = mido.MidiFile(file=io.BytesIO(data))
    except Exception as exc:  # mido raises many types on corrupt input
        raise SkipSong(f"MIDI parse error: {_first_line(exc)}") from None
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
        raise SkipSong(f"MIDI parse error: {_first_line(exc)}") from None


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return (text[0] if text else type(exc).__name__)[:120]


def read_midi_bytes(data: bytes, source: str, dataset: str = "") -> list[Song]:
    """Songs of a standard MIDI file (any layout; drums on channel 10)."""
    return songs_from_piece(piece_from_midi(parse_midi_bytes(data), source, dataset))


class TempoMap:
    """Seconds <-> quarter-note beats from a PrettyMIDI's tempo changes (piecewise linear)."""

    def __init__(self, pm) -> None:
        times, bpm = pm.get_tempo_changes()
        if len(times) == 0:
            times, bpm = np.zeros(1), np.full(1, 120.0)
        if not (np.all(np.isfinite(bpm)) and np.all(bpm > 0)):
            raise SkipSong("bad tempo: zero or invalid tempo event")
        self.times, self.bpm = np.asarray(times, float), np.asarray(bpm, float)
        self.beats = np.concatenate([[0.0], np.cumsum(np.diff(self.times) * self.bpm[:-1] / 60)])

    def to_beats(self, seconds) -> np.ndarray:
        t = np.asarray(seconds, dtype=np.float64)
        i = np.clip(np.searchsorted(self.times, t, side="right") - 1, 0, None)
        return self.beats[i] + (t - self.times[i]) * self.bpm[i] / 60.0

    def to_seconds(self, beats) -> np.ndarray:
        b = np.asarray(beats, dtype=np.float64)
        i = np.clip(np.searchsorted(self.beats, b, side="right") - 1, 0, None)
        return self.times[i] + (b - self.beats[i]) * 60.0 / self.bpm[i]


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
    piece.melody = _notes(melody, beat_of) if melody else None
    piece.harmony = Notes.concat([_notes(inst, beat_of) for inst in others])
    piece.bass = _notes(bass, beat_of) if bass else None
    piece.drums = Notes.concat([_notes(inst, beat_of) for inst in instruments if inst.is_drum])
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


def _notes(inst, beat_of) -> Notes:
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


# --- POP909 -----------------------------------------------------------------------------------


@dataclass
class Pop909Files:
    """The texts and MIDI bytes of one POP909 song folder."""

    midi: bytes
    beats: str
    chords: str
    keys: str = ""
    source: str = ""
    dataset: str = "pop909"


def read_pop909(files: Pop909Files) -> list[Song]:
    """Songs of a POP909 folder: bars from ``beat_midi.txt``, chords and key from the labels.

    Melody is the MELODY track; bass is the piano's lowest line; there are no drums.
    """
    table = _float_table(files.beats, 3, "beat_midi.txt")
    times = table[:, 0]
    if len(times) < 8 or np.any(np.diff(times) <= 0):
        raise SkipSong("bad annotation: beat_midi.txt times are not increasing")
    beat_of = _beat_interpolator(times)
    pm = parse_midi_bytes(files.midi)
    piece = piece_from_midi(pm, files.source, files.dataset, melody_name="melody",
                            beat_of=beat_of)
    piano = [i for i in pm.instruments if i.name.strip().lower() == "piano" and i.notes]
    low = Notes.concat([_notes(i, beat_of) for i in piano])
    piece.bass = low.select(low.pitch < POP909_BASS_BELOW) if len(low) else None
    piece.bar_starts, piece.bar_beats = _pop909_bars(table)
    piece.meters = [f"{abs(n)}/4" for n in piece.bar_beats.tolist()]  # the MIDI's are unreliable
    piece.beat_seconds = times
    piece.chords = [(float(beat_of(s)), chord) for s, _, chord in _labelled(files.chords,
                                                                            parse_harte)]
    keys = _labelled(files.keys, _parse_key_label) if files.keys.strip() else []
    piece.key_changes = [(float(beat_of(s)), key) for s, _, key in keys if key is not None]
    piece.key_trusted = bool(piece.key_changes)
    return songs_from_piece(piece)


def _float_table(text: str, columns: int, name: str) -> np.ndarray:
    rows = [line.split()[:columns] for line in text.splitlines() if line.strip()]
    try:
        table = np.array(rows, dtype=np.float64)
    except ValueError:
        raise SkipSong(f"bad annotation: {name} is not a numeric table") from None
    if table.ndim != 2 or table.shape[1] != columns or not np.all(np.isfinite(table)):
        raise SkipSong(f"bad annotation: {name} needs {columns} numeric columns")
    return table


def _beat_interpolator(times: np.ndarray) -> Callable[[np.ndarray], np.ndarray]:
    """Seconds -> beat index over annotated beat times, extrapolated linearly at both ends."""
    index = np.arange(len(times), dtype=np.float64)
    first, last = times[1] - times[0], times[-1] - times[-2]

    def beat_of(seconds):
        t = np.asarray(seconds, dtype=np.float64)
        out = np.interp(t, times, index)
        out = np.where(t < times[0], (t - times[0]) / first, out)
        return np.where(t > times[-1], index[-1] + (t - times[-1]) / last, out)

    return beat_of


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


# --- MusicXML (music21, a one-off cached parse) -----------------------------------------------

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
        raise SkipSong(f"MusicXML parse error: {_first_line(exc)}") from None
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


__all__ = ["SkipSong", "Song", "parse_midi_bytes", "read_midi_bytes", "read_pop909",
           "read_chord_chart", "read_musicxml", "parse_harte", "parse_jazz_chord",
           "is_chord_chart", "Pop909Files", "piece_from_midi", "pick_melody", "pick_bass",
           "MAX_FILE_BYTES"]
