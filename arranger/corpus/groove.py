"""Groove MIDI Dataset groundwork: each performance's metadata, bar phase and trimmed groove.

The Groove MIDI Dataset (Magenta, CC-BY 4.0) ships ``info.csv``: per performance its drummer,
style (``"funk/groove1"``), bpm, beat or fill, time signature and MIDI file. This module reads it
so a drum song knows its style and tempo, and prepares each performance for drum training:

bar phase : the offset (0-15 sixteenths) at which the 16th grid's bars best fit a backbeat: the
    offset with the most bars holding a kick on 1 and a snare on 2 and 4 (see
    :mod:`arranger.evaluation.drum_stats`), the smallest on a tie, so a file already in phase
    keeps its bars.
count-in / one-shot intro : leading bars (after phasing) that are no groove yet: a bar with
    neither kick nor snare (clicks on the hats), or with fewer steps holding hits than
    :data:`MIN_GROOVE_STEPS` or at most half as many as the performance's median bar (four
    stick clicks against 8th-note grooves, a lone crash). At most :data:`MAX_TRIM_BARS` are
    trimmed; the same rule trims a one-shot ending.

:func:`performances` gives, per performance, its metadata and the trimmed, phase-aligned
:class:`arranger.score.Score`, or the reason it is excluded; :func:`backbeat_report` measures
the corpus's backbeat share per style before and after.
"""

from __future__ import annotations

import csv
import functools
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from arranger.evaluation.checks import MIN_GROOVE_SHARE, groove
from arranger.evaluation.drum_stats import (
    KICK,
    SNARE,
    backbeat_bars,
    backbeat_kick_bars,
    bar_hits,
    kick_on_one_bars,
)
from arranger.score import (
    DRUM_CLASSES,
    DRUM_VELOCITIES,
    STEPS_PER_BAR,
    Score,
    drum_class_of_pitch,
)
from tracks.drums import LEVELS, VelocityTable

INFO_FILE = "info.csv"
# The styles closest to lo-fi (the corpus's SOURCES.md); the dataset has no "rnb".
LOFI_STYLES = ("hiphop", "soul", "funk", "jazz", "neworleans")
MIN_GROOVE_STEPS = 4  # a bar with fewer steps holding hits is an intro or ending one-shot
SPARSE_SHARE = 0.5  # ... as is one with at most half the steps of the performance's median bar
MAX_TRIM_BARS = 2  # at most this many bars are trimmed at each end
MIN_BARS = 2  # a performance shorter than this after trimming is excluded
EARLY_BARS = 8  # backbeat shares are also reported for the first bars and the rest


@dataclass(frozen=True)
class GrooveInfo:
    """One row of ``info.csv``.

    path : the MIDI file (absolute). style : the main style (``"funk"``); substyle: the rest
    (``"groove1"``). bpm : the nominal tempo, beats per minute. beat : a beat (True) or a fill.
    meter : time signature as ``"4/4"``. split : train, validation or test (Magenta's split).
    duration_s : length of the recording, seconds.
    """

    path: Path
    drummer: str
    style: str
    substyle: str
    bpm: float
    beat: bool
    meter: str
    split: str
    duration_s: float


def _info_of(row: dict[str, str], root: Path) -> GrooveInfo:
    style, _, sub = row.get("style", "").partition("/")
    return GrooveInfo(root / row["midi_filename"], row.get("drummer", ""), style, sub,
                      float(row.get("bpm") or 0.0), row.get("beat_type") == "beat",
                      row.get("time_signature", "").replace("-", "/"), row.get("split", ""),
                      float(row.get("duration") or 0.0))


@functools.lru_cache(maxsize=8)
def read_info(root: Path | str) -> tuple[GrooveInfo, ...]:
    """Every performance listed in ``root/info.csv`` (file order).

    Raises
    ------
    FileNotFoundError : ``root`` holds no ``info.csv``.
    """
    root = Path(root)
    with open(root / INFO_FILE, newline="", encoding="utf-8", errors="replace") as f:
        return tuple(_info_of(row, root) for row in csv.DictReader(f) if row.get("midi_filename"))


def info_for(source: str | Path) -> GrooveInfo | None:
    """The metadata of a corpus song read from a Groove MIDI file (``Song.source``), or None.

    ``info.csv`` is looked for up to 3 folders above the file, as the dataset lays it out.
    """
    path = Path(source)
    for folder in list(path.parents)[:3]:
        if (folder / INFO_FILE).is_file():
            return next((i for i in read_info(folder) if i.path == path), None)
    return None


# --- phase and trimming -----------------------------------------------------------------------


def shifted(score: Score, steps: int, bars: int | None = None) -> Score:
    """``score`` from step ``steps`` on, ``bars`` whole bars long (default: as many as fit);
    key, tempo, swing and style kept."""
    fit = (score.steps - steps) // STEPS_PER_BAR
    bars = fit if bars is None else min(bars, fit)
    if bars < 1:
        raise ValueError(f"a shift of {steps} steps leaves no whole bar of {score.bars}")
    cut = slice(steps, steps + bars * STEPS_PER_BAR)
    hits = None if score.drum_hit_velocity is None else score.drum_hit_velocity[cut]
    return Score(bars, tempo_bpm=score.tempo_bpm, key=score.key, swing=score.swing,
                 melody=score.melody[cut], bass=score.bass[cut], drums=score.drums[cut],
                 drum_velocity=score.drum_velocity[cut], drum_hit_velocity=hits,
                 style=score.style)


def best_phase(score: Score) -> int:
    """The bar phase (0-15 steps) with the most bars of kick on 1 and snare on 2 and 4; the
    smallest on a tie."""
    drums = np.asarray(score.drums)
    counts = []
    for k in range(STEPS_PER_BAR):
        bars = (len(drums) - k) // STEPS_PER_BAR
        counts.append(int(backbeat_kick_bars(bar_hits(drums[k:k + bars * STEPS_PER_BAR])).sum())
                      if bars else -1)
    return int(np.argmax(counts))


def _sparse_bars(hits: np.ndarray) -> np.ndarray:
    """Bool [bars]: an intro or ending bar (see the module docstring)."""
    steps = hits.any(axis=2).sum(axis=1)
    typical = float(np.median(steps)) if len(steps) else 0.0
    drums = hits[:, :, [KICK, SNARE]].any(axis=(1, 2))
    return ~drums | (steps < MIN_GROOVE_STEPS) | (steps <= SPARSE_SHARE * typical)


def trim_bars(score: Score) -> tuple[int, int]:
    """(leading, trailing) bars to trim: count-in or intro bars, and a one-shot ending."""
    sparse = _sparse_bars(bar_hits(score.drums)).tolist()
    lead = 0
    while lead < min(MAX_TRIM_BARS, score.bars) and sparse[lead]:
        lead += 1
    tail = 0
    while tail < MAX_TRIM_BARS and score.bars - tail > lead and sparse[-1 - tail]:
        tail += 1
    return lead, tail


@dataclass(frozen=True)
class Performance:
    """One Groove MIDI performance ready for drum training, or why it is not.

    score : the trimmed, phase-aligned drums (None when excluded, then ``reason`` says why).
    raw : the score as read, before phase and trimming (None when unreadable).
    phase : steps dropped to put beat 1 on bar starts. trimmed : (leading, trailing) bars cut.
    """

    info: GrooveInfo
    score: Score | None
    reason: str = ""
    raw: Score | None = None
    phase: int = 0
    trimmed: tuple[int, int] = (0, 0)

    @property
    def style(self) -> str:
        return self.info.style

    @property
    def bpm(self) -> float:
        return self.info.bpm


def align(score: Score) -> tuple[Score, int, tuple[int, int]]:
    """(phase-aligned and trimmed score, phase, (leading, trailing) bars trimmed).

    Raises
    ------
    ValueError : fewer than :data:`MIN_BARS` bars would remain.
    """
    phase = best_phase(score)
    phased = shifted(score, phase)
    lead, tail = trim_bars(phased)
    bars = phased.bars - lead - tail
    if bars < MIN_BARS:
        raise ValueError(f"too short: {bars} bars after phase and trimming")
    return shifted(phased, lead * STEPS_PER_BAR, bars), phase, (lead, tail)


def _read_drums(info: GrooveInfo) -> Score:
    """The drum score of a performance (its longest 4/4 run) via the corpus readers."""
    from arranger.corpus.files import read_file  # here: files may come to read this module
    from arranger.corpus.piece import SkipSong

    try:
        songs = [s for s in read_file(info.path, aligned=False) if "drums" in s.layers]
    except SkipSong as exc:
        raise ValueError(exc.reason) from None
    if not songs:
        raise ValueError("no usable notes: no drums")
    return max(songs, key=lambda s: s.score.bars).score


def read_performance(info: GrooveInfo, beats_only: bool = True) -> Performance:
    """:class:`Performance` of one row: read, phase-aligned and trimmed, or why it is excluded."""
    if info.meter != "4/4":
        return Performance(info, None, f"non-4/4 time signature: {info.meter}")
    if beats_only and not info.beat:
        return Performance(info, None, "a fill, not a beat")
    try:
        raw = _read_drums(info)
    except ValueError as exc:
        return Performance(info, None, str(exc))
    try:
        score, phase, trimmed = align(raw)
    except ValueError as exc:
        return Performance(info, None, str(exc), raw)
    return Performance(info, score, "", raw, phase, trimmed)


def performances(root: Path | str, styles: Sequence[str] | None = LOFI_STYLES,
                 beats_only: bool = True) -> list[Performance]:
    """Every performance of ``root/info.csv`` in ``styles`` (None: all), in file order."""
    rows = [i for i in read_info(root) if styles is None or i.style in styles]
    return [read_performance(i, beats_only) for i in rows]


# --- the corpus's backbeat share --------------------------------------------------------------


def is_backbeat(score: Score) -> bool:
    """A backbeat performance: snare on 2 and 4 in at least 3 bars of 4, and kick on 1 in at
    least 3 bars of 4 (the definition the issue's corpus figures use; ghost notes allowed)."""
    hits = bar_hits(score.drums)
    return bool(min(backbeat_bars(hits).mean(), kick_on_one_bars(hits).mean())
                >= MIN_GROOVE_SHARE)


def passes_groove(score: Score) -> bool:
    """The song-level check :func:`arranger.evaluation.checks.groove` (1-8 snares a bar, so
    bars thick with ghost-note snares fail it; cymbals keeping time)."""
    return groove(score).passed


def _file_shares(test, phases: dict[str, list[Score]]) -> dict[str, float | None]:
    return {k: (sum(map(test, v)) / len(v) if v else None) for k, v in phases.items()}


def _bar_share(scores: Sequence[Score], first: int = 0, last: int | None = None) -> float | None:
    """Share of bars with snare on 2 and 4 and kick on 1, over bars ``first:last`` of each."""
    parts = [backbeat_kick_bars(bar_hits(s.drums))[first:last] for s in scores]
    bars = np.concatenate(parts) if parts else np.zeros(0, bool)
    return float(bars.mean()) if len(bars) else None


def _style_report(perfs: Sequence[Performance]) -> dict:
    read = [p for p in perfs if p.raw is not None]
    kept = [p.score for p in perfs if p.score is not None]
    phases = {"nominal": [p.raw for p in read],
              "phased": [shifted(p.raw, best_phase(p.raw)) for p in read],
              "phased_trimmed": kept}
    return {
        "files": len(perfs), "read": len(read), "kept": len(kept),
        "backbeat_files": _file_shares(is_backbeat, phases),
        "groove_check_files": _file_shares(passes_groove, phases),
        "backbeat_bars": {"nominal": _bar_share(phases["nominal"]),
                          "phased_trimmed": _bar_share(kept),
                          f"first_{EARLY_BARS}": _bar_share(kept, 0, EARLY_BARS),
                          f"after_{EARLY_BARS}": _bar_share(kept, EARLY_BARS)},
        "phase_moved": sum(p.phase != 0 for p in perfs if p.score is not None),
        "trimmed": sum(p.trimmed != (0, 0) for p in perfs if p.score is not None),
    }


def backbeat_report(perfs: Sequence[Performance]) -> dict:
    """Per style (and ``"all"``), JSON-ready: ``files``, ``read``, ``kept``; the share of files
    that are a backbeat (:func:`is_backbeat`) and that pass the groove check
    (:func:`passes_groove`) on the nominal grid, at the best phase, and phased and trimmed; the
    share of bars with snare on 2 and 4 and kick on 1 (as read; phased and trimmed: overall, in
    the first :data:`EARLY_BARS` bars and after); how many kept files moved phase or were
    trimmed."""
    styles = sorted({p.style for p in perfs})
    report = {s: _style_report([p for p in perfs if p.style == s]) for s in styles}
    return report | {"all": _style_report(perfs)}


# --- per-class velocities ---------------------------------------------------------------------

MIN_VELOCITY_HITS = 8  # a (style, class, step, level) cell with fewer hits takes the pooled one


def hit_velocity(perf: Performance) -> np.ndarray:
    """uint8 [steps, classes] of ``perf.score``: each class's loudest MIDI velocity per step,
    as played (the file's notes on the reader's grid, found where its hits match the score's).

    Raises
    ------
    ValueError : the performance has no score, or its notes do not match it.
    """
    from arranger.corpus.grid import StepNotes, fit_grid
    from arranger.corpus.readers.midi import parse_midi_bytes, piece_from_midi

    if perf.score is None or perf.raw is None:
        raise ValueError(f"{perf.info.path}: {perf.reason or 'no score'}")
    piece = piece_from_midi(parse_midi_bytes(perf.info.path.read_bytes()), str(perf.info.path))
    onsets = np.concatenate([n.start for n in piece.note_layers().values()])
    notes = StepNotes.of(piece.drums, fit_grid(onsets), 1 << 30)
    cls = np.array([-1 if (c := drum_class_of_pitch(p)) is None else c for p in notes.pitch])
    keep = (cls >= 0) & (notes.start >= 0)
    hits = np.zeros((int(notes.start.max()) + 1 + perf.raw.steps, len(DRUM_CLASSES)), np.uint8)
    np.maximum.at(hits, (notes.start[keep], cls[keep]), notes.velocity[keep].astype(np.uint8))
    masks = ((hits > 0) << np.arange(len(DRUM_CLASSES))).sum(axis=1)
    start = _match(masks, perf.raw.drums) + perf.phase + perf.trimmed[0] * STEPS_PER_BAR
    return hits[start:start + perf.score.steps]


def _match(masks: np.ndarray, drums: np.ndarray) -> int:
    """The step of ``masks`` (a whole file's) from which ``drums`` (a song of it) reads."""
    first = int(np.flatnonzero(drums)[0])
    for s0 in np.flatnonzero(masks == drums[first]) - first:
        if s0 >= 0 and np.array_equal(masks[s0:s0 + len(drums)], drums):
            return int(s0)
    raise ValueError("the file's drum notes do not match its score")


def velocity_table(perfs: Sequence[Performance]) -> VelocityTable:
    """Mean velocity per (style, class, step in bar, step level) over the performances'
    phase-aligned hits; ``""`` pools every style. A cell of fewer than
    :data:`MIN_VELOCITY_HITS` hits takes the pooled cell; a pooled one, the class's mean at
    that level over the bar, else the level's ``DRUM_VELOCITIES``."""
    shape = (len(DRUM_CLASSES), STEPS_PER_BAR, LEVELS)
    sums: dict[str, np.ndarray] = {}
    counts: dict[str, np.ndarray] = {}
    for perf in perfs:
        try:
            vel = hit_velocity(perf)
        except ValueError:
            continue
        step, cls = np.nonzero(vel)
        at = (cls, step % STEPS_PER_BAR, np.minimum(perf.score.drum_velocity[step], LEVELS - 1))
        for style in (perf.style, ""):
            np.add.at(sums.setdefault(style, np.zeros(shape)), at, vel[step, cls])
            np.add.at(counts.setdefault(style, np.zeros(shape)), at, 1)
    if "" not in sums:
        raise ValueError("no performance to measure velocities on")
    pooled = _filled(sums[""], counts[""], _class_means(sums[""], counts[""]))
    return VelocityTable({k: pooled if k == "" else _filled(sums[k], counts[k], pooled)
                          for k in sums})


def _class_means(total: np.ndarray, count: np.ndarray) -> np.ndarray:
    """Per class and level the mean over the bar (the level's default where never hit),
    broadcast to [classes, 16, levels]."""
    n, s = count.sum(axis=1, keepdims=True), total.sum(axis=1, keepdims=True)
    means = np.where(n > 0, s / np.maximum(n, 1), np.asarray(DRUM_VELOCITIES, np.float64))
    return np.broadcast_to(means, total.shape)


def _filled(total: np.ndarray, count: np.ndarray, fallback: np.ndarray) -> np.ndarray:
    return np.rint(np.where(count >= MIN_VELOCITY_HITS, total / np.maximum(count, 1), fallback))
