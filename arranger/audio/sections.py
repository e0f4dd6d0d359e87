"""A section's own effects on a layer (a low-passed intro, a wetter B): the layer is played
through its chain plus the section's effects over the section only, and crossfaded in.

Only the stretch the crossfade uses is processed, from ``SECTION_PREROLL_S`` before it (the
filters, compressors and reverb of the chain settle meanwhile: every effect is causal) to
``SECTION_MARGIN_S`` after it, so a 4-bar intro costs 4 bars of effects, not a whole song's.
A chain whose output depends on where the audio starts (a chorus's LFO, seeded wobble or
crackle, a resampler's grid: ``EffectKind.time_origin``) runs from the song's start. With
``level_lu``, the section's take is matched to the stem's own loudness over the section; else
it gets the layer's fader, as a whole-song take would.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import replace

import numpy as np

from arranger.audio.config import LayerSound
from arranger.audio.effects import EFFECTS
from arranger.audio.loudness import db_to_gain, integrated_loudness
from arranger.audio.mix import chain_and_pan, stem_gain_db, under_ceiling

SECTION_FADE_S = 0.05  # a section's own effects fade in and out over this, centred on its edges
# The take starts this early: a room of 0.95 (feedback 0.966, ~1,500-sample combs) has decayed
# ~44 dB by then, a compressor's 200 ms release to nothing.
SECTION_PREROLL_S = 5.0
SECTION_MARGIN_S = 0.5  # and runs on this far past the fade: room for plugins' latency
SectionEffects = tuple[float, float, str, tuple]  # (start s, end s, layer, effects added)


def section_window(n_samples: int, start_s: float, end_s: float, rate: int,
                   first: int = 0) -> np.ndarray:
    """Float32 [n_samples] from sample ``first`` on: 1 inside ``start_s``..``end_s``, 0
    outside, linear ramps of ``SECTION_FADE_S`` centred on both edges (none at the song's
    start)."""
    t = (np.arange(n_samples, dtype=np.float64) + first) / rate
    half = SECTION_FADE_S / 2
    rise = np.clip((t - start_s + half) / SECTION_FADE_S, 0.0, 1.0) if start_s > 0 else 1.0
    fall = np.clip((end_s + half - t) / SECTION_FADE_S, 0.0, 1.0)
    return np.minimum(rise, fall).astype(np.float32)


def _take_gain_db(stem: np.ndarray, take: np.ndarray, sound: LayerSound, rate: int,
                  core: slice) -> float:
    """The fader of a section's take: the stem's loudness over the section's ``core``
    (``level_lu``), else what ``stem_gain_db`` gives the take."""
    if sound.level_lu is not None:
        theirs, mine = integrated_loudness(stem[:, core], rate), integrated_loudness(
            take[:, core], rate)
        if math.isfinite(theirs) and math.isfinite(mine):
            return theirs - mine
    return stem_gain_db(take, sound, rate)


def with_section_effects(raw: np.ndarray, stem: np.ndarray, sound: LayerSound, rate: int,
                         seed: int, name: str, spans: Sequence[SectionEffects]) -> np.ndarray:
    """``stem`` with, in each span of ``spans`` for layer ``name``, the raw layer played
    through its chain plus the span's effects (crossfaded at the edges). (2, samples);
    ``stem`` itself is left as it is."""
    n, half, out = stem.shape[-1], SECTION_FADE_S / 2, None
    for start_s, end_s, layer, effects in spans:
        alt = replace(sound, effects=sound.effects + tuple(effects))
        timed = any(EFFECTS[spec.type].time_origin for spec in alt.effects)
        lo = 0 if timed else max(0, math.floor((start_s - half - SECTION_PREROLL_S) * rate))
        hi = min(n, math.ceil((end_s + half + SECTION_MARGIN_S) * rate))
        if layer != name or hi <= lo:
            continue
        take = chain_and_pan(raw[:, lo:hi], alt, rate, seed, name)
        core = slice(max(0, round((start_s + half) * rate) - lo),
                     max(0, round((end_s - half) * rate) - lo))
        take *= np.float32(db_to_gain(_take_gain_db(stem[:, lo:hi], take, alt, rate, core)))
        w = section_window(hi - lo, start_s, end_s, rate, first=lo)
        out = stem.copy() if out is None else out
        out[:, lo:hi] = out[:, lo:hi] * (1 - w) + under_ceiling(take) * w
    return stem if out is None else out
