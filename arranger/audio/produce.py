"""From a MIDI song to a finished record on disk: render, process, master, export.

Layout written under ``out_dir``::

    stems/<layer>.wav   processed stems (24-bit), equal length, peaks <= -1 dBFS
    mix.wav             master (24-bit), target loudness, true peak <= the ceiling
    mix.mp3, mix.flac   the master again, as asked for in ``formats``

Each layer goes render -> effects -> stem file on its own thread (two at a time, longest
first), so one layer's effects overlap the next layer's synthesis; the master chain's noise is
made on the same workers meanwhile, and the master chain then runs one channel per worker
where its effects allow (``fx.channel_chains``: the same output, bit for bit). With ``only``,
just those layers are rendered and their stems rewritten; the other stems are not touched, not
even rewritten. The master is always built from the stems as read back from disk, so a partial
re-render gives exactly the master a full render of the same song would.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import FIRST_EXCEPTION, Future, ThreadPoolExecutor, wait
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pretty_midi

from arranger.audio.config import LayerSound, MasterSound, RenderSettings
from arranger.audio.files import read_audio, write_flac, write_mp3, write_wav
from arranger.audio.mix import (
    Normalised,
    as_stereo,
    master_chains,
    master_measured,
    process_stem,
)
from arranger.audio.render import (
    LoadedSoundfont,
    check_swing,
    layer_instruments,
    layer_names,
    render_layer,
    song_length_samples,
)
from arranger.audio.soundfont import find_soundfont

FORMATS = ("wav", "mp3", "flac")
STAGES = ("render", "effects", "export stems", "master", "export mix")
WORKERS = 2  # the machine this targets has 2 cores; FluidSynth and pedalboard release the GIL
_WRITERS: dict[str, Callable[..., Path]] = {"wav": write_wav, "mp3": write_mp3,
                                            "flac": write_flac}


class _Clock:
    """Adds up seconds per stage (over all threads) and drives an optional rich progress bar."""

    def __init__(self, show: bool, steps: int) -> None:
        self.seconds = dict.fromkeys(STAGES, 0.0)
        self._lock = threading.Lock()
        self._bar = None
        if show:
            from rich.progress import Progress

            self._bar = Progress(transient=True)
            self._task = self._bar.add_task("audio", total=steps)

    @contextmanager
    def stage(self, name: str, label: str = "") -> Iterator[None]:
        if self._bar is not None:
            self._bar.update(self._task, description=f"{name} {label}".strip())
        start = time.perf_counter()
        yield
        with self._lock:
            self.seconds[name] += time.perf_counter() - start
        if self._bar is not None:
            self._bar.advance(self._task)

    def __enter__(self) -> _Clock:
        self.started = time.perf_counter()
        if self._bar is not None:
            self._bar.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.wall_seconds = time.perf_counter() - self.started
        if self._bar is not None:
            self._bar.stop()


def _check_request(layers: list[str], only: set[str] | None, formats: Sequence[str]) -> None:
    unknown = sorted(set(only or ()) - set(layers))
    if unknown:
        raise ValueError(f"only = {unknown}: not layers of this song (it has {layers})")
    bad = [f for f in formats if f not in FORMATS]
    if bad:
        raise ValueError(f"formats = {list(formats)}: {bad[0]!r} is not one of {FORMATS}")


class _StemSum:
    """Adds stems as read back from disk, in name order whatever order they arrive in.

    Float addition is order-sensitive: summing in ``sum_stems``' order gives the same bytes
    whether a layer was rendered now or read from an earlier render. Each stem is read right
    after it is written, on its worker, and added as soon as the ones before it are in, so at
    most the out-of-order ones wait in memory.
    """

    def __init__(self, names: list[str], sample_rate: int, n_samples: int) -> None:
        self.order, self.next = sorted(names), 0
        self.sample_rate, self.n_samples = sample_rate, n_samples
        self.total = np.zeros((2, n_samples), dtype=np.float32) if names else None
        self.waiting: dict[str, np.ndarray] = {}
        self.lock = threading.Lock()

    def read(self, path: Path) -> None:
        """Read the stem at ``path`` (named by its file) and add it in turn."""
        if not path.exists():
            raise FileNotFoundError(f"{path} is missing: render all layers first (without only)")
        stem, rate = read_audio(path)
        if rate != self.sample_rate or stem.shape[-1] != self.n_samples:
            raise ValueError(f"{path} is {stem.shape[-1]} samples at {rate} Hz, this render "
                             f"{self.n_samples} at {self.sample_rate} Hz: render all layers "
                             "again")
        with self.lock:
            self.waiting[path.stem] = stem
            while self.next < len(self.order) and self.order[self.next] in self.waiting:
                self.total += as_stereo(self.waiting.pop(self.order[self.next]))
                self.next += 1


def _import_filters() -> None:
    """Import scipy's filters (~0.8 s) while the first layers synthesise: FluidSynth runs
    without the GIL, and the effects that need them would otherwise wait for the import."""
    import scipy.ndimage  # noqa: F401
    import scipy.signal  # noqa: F401


def _finite(value: float) -> float | None:
    return round(value, 2) if math.isfinite(value) else None


# Relative CPU cost of an effect over a whole stem (a filter or compressor is 1).
_EFFECT_COST = {"Reverb": 3.0, "Chorus": 1.5, "Delay": 1.5, "Bitcrush": 0.5, "Gain": 0.2}
_NOTE_RING_S = 0.25  # a drum hit's MIDI note is short, its sample is not


def layer_cost(midi: pretty_midi.PrettyMIDI, name: str, sound: LayerSound | None) -> float:
    """A rough relative CPU cost of one layer: synthesis (mean polyphony) + its effects.

    Only the order matters: layers start longest first, so two workers finish together.
    """
    notes = [n for i, _ in layer_instruments(midi, name) for n in midi.instruments[i].notes]
    length = max(midi.get_end_time(), 1.0)
    polyphony = sum(max(n.end - n.start, _NOTE_RING_S) for n in notes) / length
    effects = sum(_EFFECT_COST.get(e.type, 1.0) for e in (sound.effects if sound else ()))
    return 1.0 + 0.5 * polyphony + effects


def _start_stems(midi: pretty_midi.PrettyMIDI, names: list[str],
                 sounds: Mapping[str, LayerSound], render: RenderSettings,
                 loaded: LoadedSoundfont, stem_dir: Path, clock: _Clock,
                 pool: ThreadPoolExecutor, summed: _StemSum, *, swing: float, seed: int,
                 n_samples: int) -> list[Future]:
    """Queue render -> effects -> stem file -> read back for each layer, longest first."""
    rate = render.sample_rate

    def layer(name: str) -> None:
        sound = sounds.get(name)
        with clock.stage("render", name):
            raw = render_layer(loaded, midi, name, n_samples, swing=swing,
                               humanize_ms=render.humanize_ms,
                               humanize_velocity=render.humanize_velocity, seed=seed,
                               program=sound.program if sound else None)
        with clock.stage("effects", name):
            stem = process_stem(raw, sound or LayerSound(program=0), rate, seed, name)
        del raw  # a stem-sized buffer each: let go of them as soon as they are done
        with clock.stage("export stems", name):
            write_wav(stem_dir / f"{name}.wav", stem, rate)
            del stem
            summed.read(stem_dir / f"{name}.wav")

    order = sorted(names, key=lambda n: -layer_cost(midi, n, sounds.get(n)))
    return [pool.submit(layer, name) for name in order]


def _finish(jobs: list[Future]) -> None:
    """Wait for ``jobs``; on the first failure drop those not started, wait, and raise it."""
    wait(jobs, return_when=FIRST_EXCEPTION)
    for job in jobs:
        job.cancel()
    wait(jobs)
    for job in jobs:
        if not job.cancelled():
            job.result()


def _export(jobs: list[tuple[Callable[..., Path], Path]], audio: np.ndarray, rate: int,
            clock: _Clock, pool: ThreadPoolExecutor) -> None:
    """Write the master files in parallel: the MP3 encoder is by far the slowest."""
    def export(job: tuple[Callable[..., Path], Path]) -> None:
        with clock.stage("export mix", job[1].name):
            job[0](job[1], audio, rate)

    list(pool.map(export, sorted(jobs, key=lambda job: job[1].suffix != ".mp3")))


def produce_audio(midi: pretty_midi.PrettyMIDI, sounds: Mapping[str, LayerSound],
                  master: MasterSound, render: RenderSettings, out_dir: Path, *, swing: float,
                  seed: int, formats: Sequence[str] = ("wav", "mp3"),
                  only: set[str] | None = None, progress: bool = True,
                  stems_done: Callable[[], None] | None = None) -> dict[str, Any]:
    """Render ``midi`` and write stems and master under ``out_dir`` (see the module docstring).

    Parameters
    ----------
    sounds : layer -> sound; layers without one keep their MIDI program, dry and centred.
    render : SoundFont, sample rate, humanisation and tail.
    swing : 0..0.75 of a 16th; seed : base seed for humanisation and seeded effects.
    formats : master files to write, from ("wav", "mp3", "flac"); stems are always WAV.
    only : layers to re-render; the others' stems are read back from ``out_dir/stems``.
    stems_done : called once every stem is written, before the master: the master and the MP3
        leave a core idle for other work (``lofi generate`` draws its pictures then).

    Returns
    -------
    A report: seconds per stage (summed over threads) and wall seconds, loudness (LUFS) and
    true peak (dBTP) of the master (None if silent), length, layers, files written.
    """
    out_dir, rate = Path(out_dir), render.sample_rate
    layers = layer_names(midi)
    _check_request(layers, only, formats)
    check_swing(swing)
    enabled = [n for n in layers if n not in sounds or sounds[n].enabled]
    todo = [n for n in enabled if only is None or n in only]
    soundfont = find_soundfont(render.soundfont or None)
    n_samples = song_length_samples(midi, rate, swing=swing, humanize_ms=render.humanize_ms,
                                    tail_seconds=render.tail_seconds)
    stem_dir = out_dir / "stems"
    mixes = [(_WRITERS[f], out_dir / f"mix.{f}") for f in FORMATS if f in formats]
    threading.Thread(target=_import_filters, daemon=True).start()
    with _Clock(progress, 3 * len(todo) + 1 + len(mixes)) as clock, \
            ThreadPoolExecutor(WORKERS) as pool:
        summed = _StemSum(enabled, rate, n_samples)
        with LoadedSoundfont(soundfont, rate) as loaded:  # closed before the master: memory
            jobs = _start_stems(midi, todo, sounds, render, loaded, stem_dir, clock, pool,
                                summed, swing=swing, seed=seed, n_samples=n_samples)
            # The stems kept from an earlier render, and the master's noise, queued behind.
            jobs += [pool.submit(summed.read, stem_dir / f"{name}.wav")
                     for name in enabled if name not in todo]
            chains = pool.submit(master_chains, master, seed, (2, n_samples), rate)
            _finish(jobs)
        if stems_done is not None:
            stems_done()
        with clock.stage("master"):
            silence = np.zeros((2, n_samples), dtype=np.float32)
            result = (master_measured({"sum": summed.total}, master, rate, seed, chains.result(),
                                      pool)
                      if summed.total is not None
                      else Normalised(silence, -math.inf, -math.inf))
        _export(mixes, result.audio, rate, clock, pool)
    return {
        "soundfont": str(soundfont),
        "sample_rate": rate,
        "length_seconds": round(n_samples / rate, 3),
        "layers": enabled,
        "rendered": todo,
        "loudness_lufs": _finite(result.loudness_lufs),
        "true_peak_dbtp": _finite(result.true_peak_dbtp),
        "stage_seconds": {k: round(v, 3) for k, v in clock.seconds.items()},
        "wall_seconds": round(clock.wall_seconds, 3),
        "files": [str(stem_dir / f"{n}.wav") for n in todo] + [str(p) for _, p in mixes],
    }
