"""The time axes of a corpus piece: beat maps, the fit to the 16th grid, bars and 4/4 runs.

Beat maps turn a file's seconds into quarter-note beats (a MIDI tempo map, or POP909's annotated
beat times); :func:`fit_grid` maps beats to 16th steps (swing, timing offset, the "unquantizable"
test); :func:`four_four_runs` cuts a piece into runs of whole 4/4 bars (and key).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from arranger.corpus.piece import Notes, Piece, SkipSong
from arranger.score import Key

MAX_TOTAL_BARS = 4096  # longer pieces are skipped ("too long")
OFF_GRID_STEPS = 0.25  # an onset this far (in 16ths) from the grid counts as off the grid
MAX_OFF_GRID = 0.4  # "unquantizable" when a larger share of onsets is off the grid


# --- beat maps: seconds -> beats --------------------------------------------------------------


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


def beat_interpolator(times: np.ndarray) -> Callable[[np.ndarray], np.ndarray]:
    """Seconds -> beat index over annotated beat times, extrapolated linearly at both ends."""
    index = np.arange(len(times), dtype=np.float64)
    first, last = times[1] - times[0], times[-1] - times[-2]

    def beat_of(seconds):
        t = np.asarray(seconds, dtype=np.float64)
        out = np.interp(t, times, index)
        out = np.where(t < times[0], (t - times[0]) / first, out)
        return np.where(t > times[-1], index[-1] + (t - times[-1]) / last, out)

    return beat_of


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


def _keys_in_order(piece: Piece) -> list[tuple[float, Key]]:
    return sorted(piece.key_changes, key=lambda kc: kc[0])


def _key_change_beats(piece: Piece) -> list[float]:
    beats, previous = [], None
    for beat, key in _keys_in_order(piece):
        if previous is not None and key != previous:
            beats.append(beat)
        previous = key
    return beats


def key_at(piece: Piece, beat: float) -> Key | None:
    """The piece's annotated key at ``beat`` (the first one before any), or None."""
    active = [key for b, key in _keys_in_order(piece) if b <= beat + 0.5]
    if active:
        return active[-1]
    return piece.key_changes[0][1] if piece.key_changes else None
