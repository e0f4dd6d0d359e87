"""Render each MIDI instrument to its own stereo stem with FluidSynth, offline.

Swing and humanisation are micro-timing applied here, in seconds; the score stays on its grid.
FluidSynth renders straight into numpy float buffers (``fluid_synth_write_float``): no audio
driver, ``start()`` is never called. The library is loaded on first use (``fluid()``), not at
import: a machine without libfluidsynth can still import the package, and gets one line saying
what to install when it tries to render.

Determinism: each layer is rendered by a fresh synthesizer that borrows the one loaded SoundFont.
A reused synthesizer carries state from the previous layer (ramps of recycled voices, the
position inside its 64-sample block), which would make a stem depend on what was rendered before
it; a fresh one makes every stem a function of its own notes, seed and settings only, so
re-rendering one layer reproduces it exactly and leaves the others untouched.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import math
import re
import sys
import threading
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING

import numpy as np
import pretty_midi

from arranger.audio.config import derive_seed
from arranger.errors import InputError

if TYPE_CHECKING:
    from collections.abc import Callable

    import fluidsynth

SYNTH_GAIN = 0.8  # FluidSynth's default 0.2 is very quiet; at 0.8 GM stems peak ~-18..-8 dBFS
FLUID_BLOCK = 64  # FluidSynth renders in blocks of this many samples
DRUM_CHANNEL, MELODIC_CHANNEL = 9, 0
DRUM_BANK = 128
HUMANIZE_CLIP_SIGMAS = 3.0  # timing jitter is clipped so the song length stays predictable
ON_GRID_TOLERANCE_STEPS = 0.05  # how close to a 16th an onset must be to count as on the grid
FLUIDSYNTH_PACKAGE = "libfluidsynth3"  # the Debian/Ubuntu package install.sh installs
LOG_LINES = 8  # distinct FluidSynth warnings shown per process; the rest are dropped
_SYNTH_SETTINGS = {
    # Effects belong to our chains; the synth's own reverb/chorus would also carry state.
    "synth.reverb.active": 0,
    "synth.chorus.active": 0,
    "synth.dynamic-sample-loading": 0,  # samples stay in memory: the SoundFont is only read
}
_FLUID_ERR, _FLUID_WARN = 1, 2
_LogFunction = ctypes.CFUNCTYPE(None, ctypes.c_int, ctypes.c_char_p, ctypes.c_void_p)


@dataclass(frozen=True)
class Fluid:
    """pyfluidsynth and the C library it loaded (for what pyfluidsynth does not wrap)."""

    module: ModuleType
    lib: ctypes.CDLL


@functools.cache
def fluid() -> Fluid:
    """Load FluidSynth on first use; a missing library is one line naming the package.

    Raises
    ------
    FileNotFoundError
        If pyfluidsynth cannot find libfluidsynth (or is not installed itself).
    """
    try:
        import fluidsynth
    except (ImportError, OSError) as e:
        raise FileNotFoundError(
            f"FluidSynth is not installed ({e}): install it (Debian/Ubuntu: sudo apt-get install "
            f"--no-install-recommends {FLUIDSYNTH_PACKAGE}, or run ./install.sh)") from None
    lib = ctypes.CDLL(getattr(fluidsynth, "lib", None) or ctypes.util.find_library("fluidsynth"))
    _declare(lib)
    _LogFilter.install(lib)
    return Fluid(fluidsynth, lib)


def _declare(lib: ctypes.CDLL) -> None:
    """C signatures of the calls made directly: float output and SoundFont sharing."""
    lib.fluid_synth_write_float.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_void_p,
                                            ctypes.c_int, ctypes.c_int, ctypes.c_void_p,
                                            ctypes.c_int, ctypes.c_int]
    lib.fluid_synth_get_sfont_by_id.argtypes = [ctypes.c_void_p, ctypes.c_int]
    lib.fluid_synth_get_sfont_by_id.restype = ctypes.c_void_p
    lib.fluid_synth_add_sfont.argtypes = [ctypes.c_void_p, ctypes.c_void_p]
    lib.fluid_synth_remove_sfont.argtypes = [ctypes.c_void_p, ctypes.c_void_p]
    lib.fluid_set_log_function.argtypes = [ctypes.c_int, _LogFunction, ctypes.c_void_p]


class _LogFilter:
    """FluidSynth's warnings and errors, each distinct line shown once and at most
    ``LOG_LINES`` of them: an overloaded synth repeats one line millions of times."""

    seen: set[bytes] = set()
    dropped = 0
    lock = threading.Lock()

    @staticmethod
    @_LogFunction
    def callback(level: int, message: bytes, data: ctypes.c_void_p) -> None:
        # A synthesizer whose borrowed SoundFont is detached says "No preset found": expected.
        if message is None or message.startswith(b"No preset found"):
            return
        with _LogFilter.lock:
            if message in _LogFilter.seen or len(_LogFilter.seen) >= LOG_LINES:
                _LogFilter.dropped += 1
                return
            _LogFilter.seen.add(message)
        kind = "error" if level <= _FLUID_ERR else "warning"
        sys.stderr.write(f"fluidsynth: {kind}: {message.decode(errors='replace')}\n")

    @classmethod
    def install(cls, lib: ctypes.CDLL) -> None:
        for level in (_FLUID_ERR, _FLUID_WARN):
            lib.fluid_set_log_function(level, cls.callback, None)


@dataclass(frozen=True)
class NoteEvents:
    """One layer's notes after micro-timing, as parallel arrays (seconds, MIDI numbers)."""

    start_s: np.ndarray  # (n,) float64
    end_s: np.ndarray  # (n,) float64
    pitch: np.ndarray  # (n,) int
    velocity: np.ndarray  # (n,) int, 1..127


def layer_name(instrument: pretty_midi.Instrument, index: int) -> str:
    """The stem name of an instrument: its name made file-safe, or ``track<index>``."""
    name = re.sub(r"[^A-Za-z0-9_.-]+", "_", instrument.name.strip()).strip("._")
    return name or f"track{index}"


def sixteenth_steps(midi: pretty_midi.PrettyMIDI, times_s: np.ndarray) -> tuple[np.ndarray, ...]:
    """Position of ``times_s`` on the 16th-note grid and the local 16th length in seconds.

    Returns
    -------
    steps : (n,) float64, 16ths since the start of the file (follows tempo changes)
    step_s : (n,) float64, duration of one 16th at each time
    """
    change_s, bpm = midi.get_tempo_changes()
    if len(bpm) == 0:
        change_s, bpm = np.zeros(1), np.full(1, 120.0)
    segment = np.clip(np.searchsorted(change_s, times_s, side="right") - 1, 0, len(bpm) - 1)
    beats_at_change = np.concatenate([[0.0], np.cumsum(np.diff(change_s) * bpm[:-1] / 60.0)])
    beats = beats_at_change[segment] + (times_s - change_s[segment]) * bpm[segment] / 60.0
    return beats * 4.0, 15.0 / bpm[segment]


def swing_offsets_s(midi: pretty_midi.PrettyMIDI, times_s: np.ndarray, swing: float) -> np.ndarray:
    """Delay (seconds) of each time: ``swing`` 16ths if it sits on an odd 16th step, else 0."""
    steps, step_s = sixteenth_steps(midi, times_s)
    nearest = np.rint(steps)
    odd = (np.abs(steps - nearest) < ON_GRID_TOLERANCE_STEPS) & (nearest % 2 == 1)
    return np.where(odd, swing * step_s, 0.0)


def timed_notes(midi: pretty_midi.PrettyMIDI, instrument: pretty_midi.Instrument, *,
                swing: float, humanize_ms: float, humanize_velocity: int,
                seed: int) -> NoteEvents:
    """Apply swing, then seeded humanisation, to an instrument's notes.

    Notes that start together (a chord, kick + hat) share one timing offset so chords stay tight;
    velocities vary per note. ``seed`` should already be specific to the layer.
    """
    notes = [n for n in instrument.notes if n.velocity > 0 and n.end > n.start]
    start = np.array([n.start for n in notes], dtype=np.float64)
    end = np.array([n.end for n in notes], dtype=np.float64)
    start = start + swing_offsets_s(midi, start, swing)
    end = end + swing_offsets_s(midi, end, swing)
    rng = np.random.default_rng(seed)
    onsets, group = np.unique(start, return_inverse=True)
    sigma_s = humanize_ms / 1000.0
    limit = HUMANIZE_CLIP_SIGMAS * sigma_s
    jitter = np.clip(rng.normal(0.0, sigma_s, len(onsets)), -limit, limit)[group]
    velocity = np.array([n.velocity for n in notes], dtype=np.float64)
    velocity += rng.normal(0.0, humanize_velocity, len(notes))
    start = np.maximum(start + jitter, 0.0)
    end = np.maximum(end + jitter, start + 0.005)  # FluidSynth ignores zero-length notes
    return NoteEvents(start, end, np.array([n.pitch for n in notes], dtype=int),
                      np.clip(np.rint(velocity), 1, 127).astype(int))


def song_length_samples(midi: pretty_midi.PrettyMIDI, sample_rate: int, *, swing: float,
                        humanize_ms: float, tail_seconds: float) -> int:
    """Length shared by every stem: last event + the most micro-timing can add + the tail.

    Computed from all instruments and from bounds, never from the random draws, so a stem
    re-rendered on its own has the same length as the others.
    """
    _, bpm = midi.get_tempo_changes()
    slowest_step_s = 15.0 / (float(np.min(bpm)) if len(bpm) else 120.0)
    shift_s = swing * slowest_step_s + HUMANIZE_CLIP_SIGMAS * humanize_ms / 1000.0
    end_s = midi.get_end_time() + shift_s + tail_seconds
    blocks = math.ceil(end_s * sample_rate / FLUID_BLOCK)
    return max(blocks, 1) * FLUID_BLOCK


class LoadedSoundfont:
    """A SoundFont loaded once and lent to short-lived synthesizers (see the module docstring).

    Safe to lend to several threads at once: with dynamic sample loading off, synthesizers only
    read the SoundFont (its sample reference counts matter only to unloading, which happens
    once, at ``close``). A fresh synthesizer always numbers its first SoundFont 1.
    """

    def __init__(self, path: Path, sample_rate: int) -> None:
        self.path = Path(path)
        self.sample_rate = sample_rate
        self._owner = new_synth(sample_rate)
        sfid = self._owner.sfload(str(self.path))
        if sfid == -1:
            self._owner.delete()
            raise ValueError(f"FluidSynth could not load the SoundFont {self.path}")
        self._sfont = fluid().lib.fluid_synth_get_sfont_by_id(self._owner.synth, sfid)

    def attach(self, synth: fluidsynth.Synth) -> int:
        """Add the SoundFont to ``synth`` (not owned by it); returns its id there."""
        return fluid().lib.fluid_synth_add_sfont(synth.synth, self._sfont)

    def detach(self, synth: fluidsynth.Synth) -> None:
        fluid().lib.fluid_synth_remove_sfont(synth.synth, self._sfont)

    def close(self) -> None:
        self._owner.delete()

    def __enter__(self) -> LoadedSoundfont:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def new_synth(sample_rate: int) -> fluidsynth.Synth:
    """A FluidSynth synthesizer for offline rendering (16 channels, no effects, fixed gain)."""
    return fluid().module.Synth(gain=SYNTH_GAIN, samplerate=float(sample_rate), channels=16,
                                **_SYNTH_SETTINGS)


def _select_program(synth: fluidsynth.Synth, sfid: int, is_drum: bool, program: int) -> int:
    """Select the instrument (or drum kit), falling back to preset 0 of the bank; -> channel."""
    channel, bank = (DRUM_CHANNEL, DRUM_BANK) if is_drum else (MELODIC_CHANNEL, 0)
    for preset in (program, 0):
        if synth.program_select(channel, sfid, bank, preset) == 0:
            return channel
    raise ValueError(f"the SoundFont has no preset in bank {bank} (program {program} or 0)")


def _event_list(notes: NoteEvents, instrument: pretty_midi.Instrument,
                sample_rate: int) -> list[tuple[int, int, int, int]]:
    """(sample, kind, a, b) sorted; kind 0 note-off, 1 control, 2 bend, 3 note-on.

    Offs sort before ons at the same sample so a repeated pitch is re-struck, not cut.
    """
    on = np.rint(notes.start_s * sample_rate).astype(int).tolist()
    off = np.rint(notes.end_s * sample_rate).astype(int).tolist()
    pitch, velocity = notes.pitch.tolist(), notes.velocity.tolist()
    events = [(t, 0, p, 0) for t, p in zip(off, pitch, strict=True)]
    events += [(t, 3, p, v) for t, p, v in zip(on, pitch, velocity, strict=True)]
    events += [(round(c.time * sample_rate), 1, c.number, c.value)
               for c in instrument.control_changes]
    events += [(round(b.time * sample_rate), 2, b.pitch + 8192, 0) for b in instrument.pitch_bends]
    events.sort()
    return events


def _send(synth: fluidsynth.Synth, channel: int, kind: int, a: int, b: int) -> None:
    if kind == 0:
        synth.noteoff(channel, a)
    elif kind == 1:
        synth.cc(channel, a, b)
    elif kind == 2:
        synth.pitch_bend(channel, a - 8192)
    else:
        synth.noteon(channel, a, b)


def _write(synth: fluidsynth.Synth, out: np.ndarray, start: int, stop: int) -> None:
    """Render samples ``start..stop`` of ``out`` (2, n) in place."""
    if stop > start:
        left, right = out[0].ctypes.data, out[1].ctypes.data
        fluid().lib.fluid_synth_write_float(synth.synth, stop - start, left, start, 1, right,
                                            start, 1)


def render_instrument(soundfont: LoadedSoundfont, instrument: pretty_midi.Instrument,
                      notes: NoteEvents, n_samples: int, program: int | None = None) -> np.ndarray:
    """Render one instrument with a fresh synthesizer; returns (2, n_samples) float32."""
    synth = new_synth(soundfont.sample_rate)
    sfid = soundfont.attach(synth)
    try:
        chosen = instrument.program if program is None or instrument.is_drum else program
        channel = _select_program(synth, sfid, instrument.is_drum, chosen)
        out = np.zeros((2, n_samples), dtype=np.float32)
        position = 0
        for sample, kind, a, b in _event_list(notes, instrument, soundfont.sample_rate):
            if sample >= n_samples:
                break
            _write(synth, out, position, sample)
            position = max(position, sample)
            _send(synth, channel, kind, a, b)
        _write(synth, out, position, n_samples)
        return out
    finally:
        soundfont.detach(synth)  # before delete(), which would otherwise free the shared font
        synth.delete()


def layer_names(midi: pretty_midi.PrettyMIDI) -> list[str]:
    """Stem names of the MIDI's instruments, in order, without repeats."""
    return list(dict.fromkeys(layer_name(inst, i) for i, inst in enumerate(midi.instruments)))


def layer_instruments(midi: pretty_midi.PrettyMIDI, name: str) -> list[tuple[int, str]]:
    """(instrument index, seed label) of the instruments making up layer ``name``.

    The first instrument of a layer is seeded by the layer name, later ones by ``name#k``.
    """
    indices = [i for i, inst in enumerate(midi.instruments) if layer_name(inst, i) == name]
    return [(index, name if k == 0 else f"{name}#{k}") for k, index in enumerate(indices)]


def render_layer(soundfont: LoadedSoundfont, midi: pretty_midi.PrettyMIDI, name: str,
                 n_samples: int, *, swing: float, humanize_ms: float, humanize_velocity: int,
                 seed: int, program: int | None = None,
                 place: Callable[[NoteEvents], NoteEvents] | None = None) -> np.ndarray:
    """Render the instruments of one layer and sum them; (2, n_samples) float32.

    ``place`` rearranges each instrument's timed notes before synthesis (a loop tiles them)."""
    out = None
    for index, label in layer_instruments(midi, name):
        instrument = midi.instruments[index]
        notes = timed_notes(midi, instrument, swing=swing, humanize_ms=humanize_ms,
                            humanize_velocity=humanize_velocity, seed=derive_seed(seed, label))
        if place is not None:
            notes = place(notes)
        audio = render_instrument(soundfont, instrument, notes, n_samples, program)
        if out is None:  # the usual single instrument: no second stem-sized buffer
            out = audio
        else:
            out += audio
    return out if out is not None else np.zeros((2, n_samples), dtype=np.float32)


def check_swing(swing: float) -> None:
    """Refuse a swing outside 0..0.75 of a 16th (``InputError`` naming ``swing``)."""
    if not 0.0 <= swing <= 0.75:
        raise InputError("swing", swing, "a fraction of a 16th in 0..0.75")
