"""One chord loop of a song, rendered to play back endlessly: ``loop/mix.wav`` and stems.

Layout written under ``out_dir`` (``SONG/loop``)::

    <layer>.wav   each layer's loop, processed like its stem (effects, pan, level)
    fx.wav        the master bus's noise over the loop, when it makes some
    mix.wav       the loop mastered like the mix (master chain, target LUFS, true-peak ceiling)

Every file is exactly ``loop_length_samples`` long: ``loop_bars * 4 * 60 / tempo * rate``
rounded to the nearest sample (a tie to the even one), 588,000 samples for 4 bars at 72 bpm
and 44.1 kHz.

How the wrap is made seamless: the loop's notes (micro-timing drawn once) are played
``copies`` times in a row, long enough that every release and reverb tail has died out, and
the whole run goes through the layer chains and the master. The last copy then holds the tails
of the copy before it -- the end folded onto the start, as a DAW looping the file hears it --
and, for linear, time-invariant effects (filters, reverb), it is periodic to the sample. What
is not (LFOs of tape wobble and chorus, noise, the compressor and limiter settling) is met by
a short crossfade at the end of the loop into the copy before, which continues, sample for
sample, into the start of the last copy: the sample after the last is the first.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pretty_midi

from arranger.audio.config import LayerSound, MasterSound, RenderSettings, derive_seed
from arranger.audio.loudness import db_to_gain, integrated_loudness, true_peak_db
from arranger.audio.mix import as_stereo, master_measured, master_noise, process_stem
from arranger.audio.produce import noise_stem_name
from arranger.audio.render import (
    LoadedSoundfont,
    NoteEvents,
    layer_instruments,
    layer_names,
    render_layer,
)
from arranger.audio.soundfont import find_soundfont
from arranger.audio.tags import SongTags, song_tags, write_tagged_wav
from arranger.errors import InputError
from arranger.preset import Preset

BEATS_PER_BAR = 4
WRAP_FADE_MS = 50.0  # the crossfade at the end of the loop, into the copy before it
MIN_COPIES = 3  # the last one is kept; the one before gives the crossfade and the tails
LOOP_SEED_LABEL = "loop"


def loop_length_samples(bars: int, tempo_bpm: float, sample_rate: int) -> int:
    """Samples of ``bars`` bars of 4/4 at ``tempo_bpm``: ``bars * 4 * 60 / tempo * rate``,
    rounded to the nearest sample (ties to even)."""
    return round(bars * BEATS_PER_BAR * 60 * sample_rate / tempo_bpm)


def check_loop(loop_bars: int, bars: int) -> None:
    """Refuse ``--loop`` for a song with no chord loop, or one longer than the song."""
    if loop_bars < 1:
        raise InputError("song.loop_bars", loop_bars, "1 or more bars for --loop (0 is a "
                         "through-composed progression: there is no chord loop to repeat)")
    if loop_bars > bars:
        raise InputError("song.loop_bars", loop_bars, f"at most the song's {bars} bars "
                         "for --loop")


def _bar_seconds(midi: pretty_midi.PrettyMIDI) -> float:
    _, tempi = midi.get_tempo_changes()
    return BEATS_PER_BAR * 60.0 / float(tempi[0] if len(tempi) else 120.0)


def choose_window(midi: pretty_midi.PrettyMIDI, loop_bars: int, bars: int,
                  ending: bool) -> int:
    """The first bar of the loop: of the song's whole chord loops (the last left out when the
    song has an ending, unless it is the only one), the earliest where the most layers play."""
    count = max(bars // loop_bars - (1 if ending and bars // loop_bars > 1 else 0), 1)
    span = _bar_seconds(midi) * loop_bars

    def playing(k: int) -> int:
        lo, hi = k * span, (k + 1) * span
        names = {name for name in layer_names(midi) for i, _ in layer_instruments(midi, name)
                 if any(lo <= n.start < hi for n in midi.instruments[i].notes)}
        return len(names)

    return max(range(count), key=lambda k: (playing(k), -k)) * loop_bars


def loop_midi(midi: pretty_midi.PrettyMIDI, first_bar: int, loop_bars: int,
              tempo_bpm: float) -> pretty_midi.PrettyMIDI:
    """The notes starting in the loop's bars, one loop in (so micro-timing may move a note
    early), at ``tempo_bpm``; instruments keep their names, programs and drum flags."""
    bar_s = _bar_seconds(midi)
    lo, hi = first_bar * bar_s, (first_bar + loop_bars) * bar_s
    shift = loop_bars * BEATS_PER_BAR * 60.0 / tempo_bpm - lo
    out = pretty_midi.PrettyMIDI(initial_tempo=tempo_bpm, resolution=midi.resolution)
    for inst in midi.instruments:
        copy = pretty_midi.Instrument(inst.program, inst.is_drum, inst.name)
        copy.notes = [pretty_midi.Note(n.velocity, n.pitch, n.start + shift, n.end + shift)
                      for n in inst.notes if lo <= n.start < hi]
        out.instruments.append(copy)
    return out


def tiled(notes: NoteEvents, period_s: float, copies: int) -> NoteEvents:
    """``notes`` (placed one period in) played ``copies`` times from 0, ``period_s`` apart."""
    offsets = np.repeat((np.arange(copies) - 1) * period_s, len(notes.start_s))
    return NoteEvents(np.tile(notes.start_s, copies) + offsets,
                      np.tile(notes.end_s, copies) + offsets,
                      np.tile(notes.pitch, copies), np.tile(notes.velocity, copies))


def wrap(audio: np.ndarray, period: int, fade: int) -> np.ndarray:
    """The last ``period`` samples of ``audio`` (channels, >= 2 periods), the end crossfaded
    (raised cosine, ``fade`` samples) into the period before: looping the result, the sample
    after its last is its first, as in ``audio`` itself. Returns float32 (channels, period)."""
    last = audio[:, -period:].astype(np.float32, copy=True)
    before = audio[:, -2 * period : -period]
    fade = min(fade, period)
    weight = (0.5 - 0.5 * np.cos(np.pi * np.arange(1, fade + 1) / fade)).astype(np.float32)
    last[:, period - fade :] += weight * (before[:, period - fade :] - last[:, period - fade :])
    return last


def copies_for(period_s: float, render: RenderSettings) -> int:
    """How many times to play the loop: enough copies before the last for its tails."""
    return max(MIN_COPIES, 2 + math.ceil(render.tail_seconds / period_s))


def _layer_run(loaded: LoadedSoundfont, pm: pretty_midi.PrettyMIDI, name: str,
               sound: LayerSound | None, render: RenderSettings, *, swing: float, seed: int,
               period: int, copies: int) -> np.ndarray:
    """One layer's loop played ``copies`` times, rendered and processed; (2, copies * period)."""
    out = render_layer(loaded, pm, name, copies * period, swing=swing,
                       humanize_ms=render.humanize_ms,
                       humanize_velocity=render.humanize_velocity, seed=seed,
                       program=sound.program if sound else None,
                       place=lambda notes: tiled(notes, period / render.sample_rate, copies))
    return process_stem(out, sound or LayerSound(program=0), render.sample_rate, seed, name)


def _master_loop(total: np.ndarray, master: MasterSound, rate: int, seed: int,
                 copies: int, fade: int) -> np.ndarray:
    """The loop's pre-master mix (2, period) played ``copies`` times through the master, the
    last copy wrapped; its true peak checked as it loops."""
    period = total.shape[-1]
    silence = np.zeros((2, copies * period), np.float32)
    run = master_measured(np.tile(total, (1, copies)), master, rate, seed, noise=silence)
    out = wrap(run.audio, period, fade)
    peak = true_peak_db(np.tile(out, (1, 2)), rate)
    if math.isfinite(peak) and peak > master.true_peak_dbtp:  # the crossfade moved a peak
        out *= np.float32(db_to_gain(master.true_peak_dbtp - peak))
    return out


def _write_stems(out_dir: Path, midi: pretty_midi.PrettyMIDI, preset: Preset, *, seed: int,
                 period: int, copies: int, fade: int, tags: SongTags) -> dict[str, np.ndarray]:
    """Render, process, wrap and write each enabled layer's loop; name -> the loop written."""
    rate, stems = preset.render.sample_rate, {}
    names = [n for n in layer_names(midi) if n not in preset.layers or preset.layers[n].enabled]
    with LoadedSoundfont(find_soundfont(preset.render.soundfont or None), rate) as loaded:
        for name in names:
            run = _layer_run(loaded, midi, name, preset.layers.get(name), preset.render,
                             swing=preset.song.swing, seed=seed, period=period, copies=copies)
            stems[name] = wrap(run, period, fade)
            write_tagged_wav(out_dir / f"{name}.wav", stems[name], rate, tags)
    return stems


def produce_loop(midi: pretty_midi.PrettyMIDI, preset: Preset, out_dir: Path, *, seed: int,
                 bars: int, title: str = "") -> dict[str, Any]:
    """Write one chord loop of the song ``midi`` into ``out_dir`` (see the module docstring).

    Parameters
    ----------
    preset : the song's preset: ``song.loop_bars`` bars at ``song.tempo_bpm``, its layer
        sounds, master and render settings. seed : the song's render seed.
    bars : the song's length in bars (the loop is one of its whole chord loops).

    Returns
    -------
    A report: the loop's first bar (0-based), length in samples, loudness (LUFS) and true peak
    (dBTP) of ``mix.wav`` as it loops, files written.
    """
    song, rate = preset.song, preset.render.sample_rate
    check_loop(song.loop_bars, bars)
    first = choose_window(midi, song.loop_bars, bars, song.ending)
    period = loop_length_samples(song.loop_bars, song.tempo_bpm, rate)
    copies = copies_for(period / rate, preset.render)
    fade = round(WRAP_FADE_MS * rate / 1000)
    seed = derive_seed(seed, LOOP_SEED_LABEL)
    pm = loop_midi(midi, first, song.loop_bars, song.tempo_bpm)
    tags = song_tags(pm, title or "lofi loop", loop=True, beats=song.loop_bars * BEATS_PER_BAR)
    out_dir = Path(out_dir)
    stems = _write_stems(out_dir, pm, preset, seed=seed, period=period, copies=copies,
                         fade=fade, tags=tags)
    total = np.zeros((2, period), np.float32)
    for name in sorted(stems):  # name order, as the song's stems are summed
        total += as_stereo(stems[name])
    noise = master_noise(preset.master, seed, (2, copies * period), rate)
    if noise is not None:
        name = noise_stem_name(list(stems))
        stems[name] = wrap(noise, period, fade)
        write_tagged_wav(out_dir / f"{name}.wav", stems[name], rate, tags)
        total += stems[name]
    mix = _master_loop(total, preset.master, rate, seed, copies, fade)
    write_tagged_wav(out_dir / "mix.wav", mix, rate, tags)
    looped = np.tile(mix, (1, 2))
    return {"first_bar": first, "length_samples": period, "files": sorted(
                str(out_dir / f"{n}.wav") for n in [*stems, "mix"]),
            "loudness_lufs": integrated_loudness(looped, rate),
            "true_peak_dbtp": true_peak_db(looped, rate)}
