"""Objective metrics of a score, each following a published definition.

Every metric reads one :class:`~arranger.score.Score` on its 16-steps-per-bar grid and returns a
float, NaN where it is undefined (no notes, too few bars or chords). Pitches are key-relative, so
the metrics are transposition-invariant, as the published ones are.

=====================================  ==========================================================
metric                                 definition
=====================================  ==========================================================
:func:`pitch_class_entropy`            MusPy ``pitch_class_entropy``; cf. Wu & Yang 2020 (H)
:func:`scale_consistency`              MusPy ``scale_consistency``; Mogren 2016 (C-RNN-GAN)
:func:`used_pitch_classes`             MuseGAN UPC (Dong et al. 2018)
:func:`empty_bar_rate`                 MuseGAN EB; MusPy ``empty_measure_rate``
:func:`qualified_note_rate`            MuseGAN QN; Pypianoroll ``qualified_note_rate``
:func:`drum_pattern_rate`              MuseGAN DP; Pypianoroll ``drum_in_pattern_rate``
:func:`groove_consistency`             MusPy ``groove_consistency`` (adjacent bars)
:func:`grooving_similarity`            Jazz Transformer GS (Wu & Yang 2020, all bar pairs)
:func:`chord_progression_irregularity` Jazz Transformer CPI (Wu & Yang 2020)
:func:`chord_tone_ratio`               chord tones among strong-beat melody notes
:func:`tonal_distance`                 melody-chord tonal distance (MCTD, Yeh et al. 2021) in
                                       Harte et al. 2006's 6-D tonal centroid space
:func:`overlapping_area`               MGEval (Yang & Lerch 2020) overlap of two distributions
=====================================  ==========================================================

References
----------
Dong, Hsiao, Yang & Yang, "MuseGAN", AAAI 2018. Dong, Chen, Dong & Yang, "MusPy", ISMIR 2020.
Wu & Yang, "The Jazz Transformer on the front line", ISMIR 2020. Yang & Lerch, "On the evaluation
of generative models in music", Neural Computing and Applications 2020. Harte, Sandler & Gasser,
"Detecting harmonic change in musical audio", ACM AMCMM 2006. Yeh et al., "Automatic melody
harmonization with triad chords: a comparative study", JNMR 2021.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Collection, Sequence

import numpy as np
from scipy import stats

from arranger.score import (
    STEPS_PER_BAR,
    STEPS_PER_BEAT,
    Chord,
    Score,
    note_spans,
    sounding,
)

NAN = math.nan
MAJOR_SCALE = (0, 2, 4, 5, 7, 9, 11)

# Harte et al. 2006: rows are (sin, cos) on the circle of fifths (r1 = 1), minor thirds (r2 = 1)
# and major thirds (r3 = 0.5); column l is pitch class l. Shape [6, 12].
_L = np.arange(12)
TONAL_MATRIX = np.stack([
    f(_L * angle) * radius
    for angle, radius in ((7 * np.pi / 6, 1.0), (3 * np.pi / 2, 1.0), (2 * np.pi / 3, 0.5))
    for f in (np.sin, np.cos)
])


# --- helpers ----------------------------------------------------------------------------------

def _line(score: Score, layer: str) -> np.ndarray:
    if layer not in ("melody", "bass"):
        raise ValueError(f"layer must be 'melody' or 'bass', got {layer!r}")
    return getattr(score, layer)


def note_pitches(score: Score, layer: str = "melody") -> np.ndarray:
    """Key-relative pitches of the notes (one per note-on) of a step line, int64 [notes]."""
    line = _line(score, layer).astype(np.int64)
    return line[line >= 0]


def onset_grid(score: Score, layer: str = "drums") -> np.ndarray:
    """Bool [bars, 16]: steps where ``layer`` starts a note (drums: any hit)."""
    hits = score.drums > 0 if layer == "drums" else _line(score, layer) >= 0
    return hits.reshape(score.bars, STEPS_PER_BAR)


def chord_pitch_classes(chords: Sequence[Chord | None]) -> np.ndarray:
    """Bool [len(chords), 12] key-relative pitch-class sets (all False for no chord)."""
    out = np.zeros((len(chords), 12), dtype=bool)
    for i, chord in enumerate(chords):
        if chord is not None:
            out[i, sorted(chord.pitch_classes())] = True
    return out


def tonal_centroid(pitch_classes: np.ndarray) -> np.ndarray:
    """Harte et al. 2006 tonal centroid [..., 6] of pitch-class weights [..., 12] (L1-normalised).

    Rows without any weight give NaN.
    """
    chroma = np.asarray(pitch_classes, dtype=np.float64)
    total = chroma.sum(-1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        return (chroma / total) @ TONAL_MATRIX.T


# --- pitch metrics ----------------------------------------------------------------------------

def pitch_class_entropy(score: Score, layer: str = "melody") -> float:
    """Shannon entropy (bits) of the pitch-class histogram of the notes of ``layer``.

    MusPy ``pitch_class_entropy``, over the whole song (Wu & Yang 2020's H averages it over 1- or
    4-bar windows): every note counts once, whatever its length. 0 for a single pitch class,
    log2(7) for a major scale, at most log2(12). NaN without notes.
    """
    pcs = note_pitches(score, layer) % 12
    if not len(pcs):
        return NAN
    p = np.bincount(pcs, minlength=12) / len(pcs)
    p = p[p > 0]
    return max(0.0, float(-(p * np.log2(p)).sum()))


def scale_consistency(score: Score, layer: str = "melody") -> float:
    """Largest share of the notes of ``layer`` that lie in one major or minor scale.

    MusPy ``scale_consistency`` (Mogren 2016): the maximum over the 24 major and natural minor
    scales of the pitch-in-scale rate (every note counts once). A natural minor scale holds the
    same pitch classes as its relative major, so the 12 major scales cover all 24. NaN without
    notes.
    """
    pcs = note_pitches(score, layer) % 12
    if not len(pcs):
        return NAN
    hist = np.bincount(pcs, minlength=12)
    in_scale = max(int(hist[[(root + d) % 12 for d in MAJOR_SCALE]].sum()) for root in range(12))
    return in_scale / len(pcs)


def used_pitch_classes(score: Score, layer: str = "melody") -> float:
    """Mean number of pitch classes sounding per bar (0-12), empty bars included.

    MuseGAN UPC, on the piano roll: a held note counts in every bar it sounds in.
    """
    now = sounding(_line(score, layer)).reshape(score.bars, STEPS_PER_BAR)
    used = np.zeros((score.bars, 12), dtype=bool)
    bar, step = np.nonzero(now >= 0)
    used[bar, now[bar, step] % 12] = True
    return float(used.sum(1).mean())


def empty_bar_rate(score: Score, layer: str = "melody") -> float:
    """Share of bars in which ``layer`` is silent (no sounding note, hit or chord).

    MuseGAN EB / MusPy ``empty_measure_rate``: a note held into a bar makes it non-empty.
    """
    if layer == "drums":
        filled = score.drums > 0
    elif layer == "chords":
        filled = np.repeat([c is not None for c in score.chords], STEPS_PER_BEAT)
    else:
        filled = sounding(_line(score, layer)) >= 0
    return float(1.0 - filled.reshape(score.bars, STEPS_PER_BAR).any(1).mean())


def qualified_note_rate(score: Score, layer: str = "melody", min_steps: int = 2) -> float:
    """Share of the notes of ``layer`` lasting at least ``min_steps`` grid steps.

    MuseGAN QN counts notes "no shorter than a 32nd note" as qualified, which every note of a
    16th grid is; Pypianoroll's ``qualified_note_rate`` counts notes of at least ``threshold=2``
    time steps. We apply that threshold on our grid: a qualified note lasts an 8th note or more,
    so the metric measures the share of 16th-note fragments. NaN without notes.
    """
    spans = note_spans(_line(score, layer))
    if not spans:
        return NAN
    lengths = np.array([end - start for start, end, _ in spans])
    return float((lengths >= min_steps).mean())


# --- harmony metrics --------------------------------------------------------------------------

def chord_tone_ratio(score: Score, beats: Collection[int] = (0, 2)) -> float:
    """Share of melody notes starting on strong beats whose pitch class is in the chord.

    Strong beats are beats 1 and 3 of the bar (``beats`` counts from 0); notes over no chord are
    skipped. This is the chord-tone part of Yeh et al. 2021's chord-tone to non-chord-tone ratio,
    restricted to strong beats where harmony is heard most. NaN without such notes.
    """
    strong = {b * STEPS_PER_BEAT for b in beats}
    tones = chord_pitch_classes(score.chords)
    hits = total = 0
    for start, _, pitch in note_spans(score.melody):
        beat = start // STEPS_PER_BEAT
        if start % STEPS_PER_BAR in strong and tones[beat].any():
            total += 1
            hits += bool(tones[beat, pitch % 12])
    return hits / total if total else NAN


def tonal_distance(score: Score) -> float:
    """Mean tonal distance between each sounding melody note and its chord.

    The melody-chord tonal distance (MCTD) of Yeh et al. 2021: the Euclidean distance between the
    Harte et al. 2006 tonal centroids of the note's pitch class and of the chord's pitch-class
    set, weighted by duration. We weight by counting every step at which a note sounds over a
    chord, so a note held across a chord change is measured against both chords. Lower means
    closer to the harmony; C over C major is sqrt(13 - 2 sqrt(3)) / 3 ~ 1.03. NaN without any
    note over a chord.
    """
    now = sounding(score.melody)
    tones = chord_pitch_classes(score.chords)[np.arange(score.steps) // STEPS_PER_BEAT]
    valid = (now >= 0) & tones.any(1)
    if not valid.any():
        return NAN
    note = TONAL_MATRIX.T[now[valid] % 12]  # a single pitch class is its own centroid
    chord = tonal_centroid(tones[valid])
    return float(np.linalg.norm(note - chord, axis=1).mean())


def chord_progression_irregularity(score: Score, n: int = 3) -> float:
    """Share of distinct chord ``n``-grams in the song's sequence of chord changes.

    Jazz Transformer CPI (Wu & Yang 2020) with trigrams: beats without a chord are dropped and
    repeated chords merged, so the sequence lists chord changes; CPI = #distinct n-grams / #n-grams.
    (MusDr's code divides by one n-gram fewer and returns 1 for short songs; we follow the paper's
    definition and return NaN with fewer than ``n`` chord changes.)
    """
    changes: list[Chord] = []
    for chord in score.chords:
        if chord is not None and (not changes or chord != changes[-1]):
            changes.append(chord)
    if len(changes) < n:
        return NAN
    grams = [tuple(changes[i:i + n]) for i in range(len(changes) - n + 1)]
    return len(set(grams)) / len(grams)


# --- rhythm metrics ---------------------------------------------------------------------------

def drum_pattern_rate(score: Score, tolerance: float = 0.1) -> float:
    """Share of drum hits on an 8th-note (8-beat) pattern, off-8th 16ths counting ``tolerance``.

    MuseGAN DP as implemented for 16 steps per bar (``np.tile([1, tolerance], 8)``): each hit of
    each drum class counts once. NaN without hits.
    """
    hits = np.array([bin(int(m)).count("1") for m in score.drums], dtype=np.float64)
    if not hits.sum():
        return NAN
    weight = np.where(np.arange(score.steps) % 2 == 0, 1.0, tolerance)
    return float((weight * hits).sum() / hits.sum())


def groove_consistency(score: Score, layer: str = "drums") -> float:
    """1 - mean Hamming distance between the onset vectors of adjacent bars, over 16 positions.

    MusPy ``groove_consistency``: 1.0 when every bar repeats the same rhythm. NaN for one bar.
    """
    grid = onset_grid(score, layer)
    if len(grid) < 2:
        return NAN
    return float(1.0 - (grid[1:] != grid[:-1]).mean())


def grooving_similarity(score: Score, layer: str = "drums") -> float:
    """1 - mean Hamming distance between the onset vectors of every pair of bars, over 16.

    Jazz Transformer GS (Wu & Yang 2020); MusDr samples at most 1000 pairs, we use them all.
    NaN for one bar.
    """
    grid = onset_grid(score, layer).astype(np.float64)
    if len(grid) < 2:
        return NAN
    distance = grid @ (1 - grid).T + (1 - grid) @ grid.T
    upper = np.triu_indices(len(grid), k=1)
    return float(1.0 - distance[upper].mean() / STEPS_PER_BAR)


# --- the metric table -------------------------------------------------------------------------

MetricFn = Callable[[Score], float]

# name -> (layers the metric needs, function)
METRICS: dict[str, tuple[frozenset[str], MetricFn]] = {
    "melody_pitch_class_entropy": (frozenset({"melody"}), pitch_class_entropy),
    "melody_scale_consistency": (frozenset({"melody"}), scale_consistency),
    "melody_used_pitch_classes": (frozenset({"melody"}), used_pitch_classes),
    "melody_empty_bar_rate": (frozenset({"melody"}), empty_bar_rate),
    "melody_qualified_note_rate": (frozenset({"melody"}), qualified_note_rate),
    "chord_tone_ratio": (frozenset({"melody", "chords"}), chord_tone_ratio),
    "tonal_distance": (frozenset({"melody", "chords"}), tonal_distance),
    "chord_progression_irregularity": (frozenset({"chords"}), chord_progression_irregularity),
    "drum_pattern_rate": (frozenset({"drums"}), drum_pattern_rate),
    "drum_empty_bar_rate": (frozenset({"drums"}), lambda s: empty_bar_rate(s, "drums")),
    "drum_groove_consistency": (frozenset({"drums"}), groove_consistency),
    "drum_grooving_similarity": (frozenset({"drums"}), grooving_similarity),
}


def present_layers(score: Score) -> frozenset[str]:
    """Layers with any content: a note, a chord or a drum hit."""
    found = {"melody": (score.melody >= 0).any(), "bass": (score.bass >= 0).any(),
             "drums": (score.drums > 0).any(),
             "chords": any(c is not None for c in score.chords)}
    return frozenset(k for k, v in found.items() if v)


def all_metrics(score: Score, layers: Collection[str] | None = None) -> dict[str, float]:
    """Every metric in :data:`METRICS`; NaN where a layer it needs is absent.

    Parameters
    ----------
    score : the song.
    layers : the layers the song holds (e.g. a corpus song's ``layers``); default: those with
        any content (:func:`present_layers`).
    """
    held = present_layers(score) if layers is None else frozenset(layers)
    return {name: (float(fn(score)) if needs <= held else NAN)
            for name, (needs, fn) in METRICS.items()}


# --- comparing sets of songs ------------------------------------------------------------------

def overlapping_area(a: Sequence[float], b: Sequence[float], grid_size: int = 2048) -> float:
    """Overlapping area of the kernel density estimates of two 1-D samples (0..1).

    MGEval's ``overlap_area`` (Yang & Lerch 2020): Gaussian KDEs (``scipy.stats.gaussian_kde``,
    Scott's bandwidth) of both samples, integral of their pointwise minimum. MGEval integrates
    over the pooled data range only; we extend it by four bandwidths on each side so that
    ``overlapping_area(x, x)`` is 1. A sample with fewer than two distinct values gets a narrow
    Gaussian (2% of the pooled range). NaNs are dropped; NaN when either sample is empty.
    """
    a, b = _finite(a), _finite(b)
    if not len(a) or not len(b):
        return NAN
    pooled = np.concatenate([a, b])
    floor = max(0.02 * float(np.ptp(pooled)), 1e-3)
    bandwidths = [_bandwidth(x, floor) for x in (a, b)]
    pad = 4 * max(bandwidths)
    grid = np.linspace(pooled.min() - pad, pooled.max() + pad, grid_size)
    density = [_density(x, bw, grid) for x, bw in zip((a, b), bandwidths, strict=True)]
    return float(min(1.0, np.trapezoid(np.minimum(*density), grid)))


def _finite(x: Sequence[float]) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64).ravel()
    return x[np.isfinite(x)]


def _bandwidth(x: np.ndarray, floor: float) -> float:
    """Scott's-rule kernel width (as ``gaussian_kde``), at least ``floor``."""
    if len(np.unique(x)) < 2:
        return floor
    return max(float(np.std(x, ddof=1)) * len(x) ** (-1 / 5), floor)


def _density(x: np.ndarray, bandwidth: float, grid: np.ndarray) -> np.ndarray:
    if len(np.unique(x)) >= 2:
        return stats.gaussian_kde(x, bw_method=bandwidth / float(np.std(x, ddof=1)))(grid)
    z = (grid - x[0]) / bandwidth
    return np.exp(-0.5 * z * z) / (bandwidth * math.sqrt(2 * math.pi))
