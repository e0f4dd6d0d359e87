"""From a MIDI song to a finished record on disk: render, process, master, export.

Layout written under ``out_dir``::

    stems/<layer>.wav   processed stems (24-bit), equal length, peaks <= -1 dBFS
    stems/<layer>.mid   that layer's notes alone: one track with tempo, key and time signature
    stems/fx.wav        the master bus's own noise (crackle, hiss), when it makes some: the
                        stems sum to the master chain's input, nothing in the mix is missing
    mix.wav             master (24-bit), target loudness, true peak <= the ceiling
    mix.mp3, mix.flac   the master again, as asked for in ``formats``

The WAVs and the MP3 carry tempo, key and title (``arranger.audio.tags``).

Each layer goes render -> effects -> stem file on its own thread (two at a time, longest
first), so one layer's effects overlap the next layer's synthesis; the master chain's noise is
made on the same workers meanwhile, and the master chain then runs one channel per worker
where its effects allow (``fx.channel_chains``: the same output, bit for bit). With ``only``,
just those layers are rendered and their stems rewritten; the other stems are not touched, not
even rewritten. The master is always built from the stems as read back from disk, so a partial
re-render gives exactly the master a full render of the same song would.
"""

from __future__ import annotations

import functools
import math
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import FIRST_EXCEPTION, Future, ThreadPoolExecutor, wait
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pretty_midi

from arranger.atomic import atomic_path, write_bytes
from arranger.audio import kernels
from arranger.audio.ahead import open_soundfont
from arranger.audio.config import LayerSound, MasterSound, RenderSettings
from arranger.audio.effects import EFFECTS
from arranger.audio.files import read_audio, write_flac
from arranger.audio.mix import (
    Limited,
    Normalised,
    as_stereo,
    master_chains,
    master_measured,
    master_noise,
    process_stem,
    write_mp3_master,
)
from arranger.audio.render import (
    LoadedSoundfont,
    check_swing,
    layer_instruments,
    layer_names,
    render_layer,
    song_length_samples,
)
from arranger.audio.sections import (
    SectionEffects,
    with_section_effects,
)
from arranger.audio.soundfont import find_soundfont
from arranger.audio.tags import SongTags, song_tags, tag_mp3, write_tagged_wav
from arranger.midi_io import layer_midi_bytes

FORMATS = ("wav", "mp3", "flac")
STAGES = ("render", "effects", "export stems", "master", "export mix")
WORKERS = 2  # the machine this targets has 2 cores; FluidSynth and pedalboard release the GIL
DEFAULT_TITLE = "lofi track"
NOISE_STEM = "fx"  # the master bus's noise; "fx_master" should a layer be called "fx"


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

    Float addition is order-sensitive: summing in name order gives the same bytes
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


def _finite(value: float | None) -> float | None:
    return round(value, 2) if value is not None and math.isfinite(value) else None


_NOTE_RING_S = 0.25  # a drum hit's MIDI note is short, its sample is not


def layer_cost(midi: pretty_midi.PrettyMIDI, name: str, sound: LayerSound | None) -> float:
    """A rough relative CPU cost of one layer: synthesis (mean polyphony) + its effects.

    Only the order matters: layers start longest first, so two workers finish together.
    """
    notes = [n for i, _ in layer_instruments(midi, name) for n in midi.instruments[i].notes]
    length = max(midi.get_end_time(), 1.0)
    polyphony = sum(max(n.end - n.start, _NOTE_RING_S) for n in notes) / length
    effects = sum(EFFECTS[e.type].cost for e in (sound.effects if sound else ()))
    return 1.0 + 0.5 * polyphony + effects


def _start_stems(midi: pretty_midi.PrettyMIDI, names: list[str],
                 sounds: Mapping[str, LayerSound], render: RenderSettings,
                 loaded: LoadedSoundfont, stem_dir: Path, clock: _Clock,
                 pool: ThreadPoolExecutor, summed: _StemSum, *, swing: float, seed: int,
                 n_samples: int, tags: SongTags,
                 section_effects: Sequence[SectionEffects] = ()) -> list[Future]:
    """Queue render -> effects -> stem files (WAV, MIDI) -> read back for each layer, longest
    first."""
    rate = render.sample_rate

    def layer(name: str) -> None:
        sound = sounds.get(name)
        with clock.stage("render", name):
            raw = render_layer(loaded, midi, name, n_samples, swing=swing,
                               humanize_ms=render.humanize_ms,
                               humanize_velocity=render.humanize_velocity, seed=seed,
                               program=sound.program if sound else None)
        with clock.stage("effects", name):
            sound = sound or LayerSound(program=0)
            stem = process_stem(raw, sound, rate, seed, name)
            stem = with_section_effects(raw, stem, sound, rate, seed, name, section_effects)
        del raw  # a stem-sized buffer each: let go of them as soon as they are done
        with clock.stage("export stems", name):
            write_tagged_wav(stem_dir / f"{name}.wav", stem, rate, tags)
            del stem
            indices = [i for i, _ in layer_instruments(midi, name)]
            write_bytes(stem_dir / f"{name}.mid", layer_midi_bytes(midi, indices))
            summed.read(stem_dir / f"{name}.wav")

    order = sorted(names, key=lambda n: -layer_cost(midi, n, sounds.get(n)))
    return [pool.submit(layer, name) for name in order]


def noise_stem_name(layers: Sequence[str]) -> str:
    """The name of the master bus's noise stem: ``NOISE_STEM`` unless a layer has it."""
    return NOISE_STEM if NOISE_STEM not in layers else f"{NOISE_STEM}_master"


def _noise_stem(master: MasterSound, seed: int, n_samples: int, rate: int, path: Path,
                tags: SongTags, keep: bool) -> np.ndarray | None:
    """The ``fx`` stem as read back from ``path``: kept when ``keep`` and it fits, else made and
    written (None, and no file, when the master bus makes no noise)."""
    if keep and path.exists():
        audio, kept_rate = read_audio(path)
        if kept_rate == rate and audio.shape == (2, n_samples):
            return audio
    noise = master_noise(master, seed, (2, n_samples), rate)
    if noise is None:
        return None
    write_tagged_wav(path, noise, rate, tags)
    return read_audio(path)[0]


def _finish(jobs: list[Future]) -> None:
    """Wait for ``jobs``; on the first failure drop those not started, wait, and raise it."""
    wait(jobs, return_when=FIRST_EXCEPTION)
    for job in jobs:
        job.cancel()
    wait(jobs)
    for job in jobs:
        if not job.cancelled():
            job.result()


def _mp3(path: Path, master: np.ndarray | Limited, rate: int, ceiling_dbtp: float,
         clock: _Clock, tags: SongTags) -> float:
    """Write ``path``, the MP3 master, tagged before anyone sees it; its decoded true peak."""
    with clock.stage("export mix", path.name), atomic_path(path) as temporary:
        peak = write_mp3_master(temporary, master, rate, ceiling_dbtp)
        tag_mp3(temporary, tags)
    return peak


class _Mp3Job:
    """The MP3, started from the master's limiter input as soon as its gain is known
    (``normalise``'s ``on_limited``): the encoder, by far the slowest export, runs while the
    master's own true peak is checked and the other files are written. A master the limiter
    never reported (silence) is encoded as it is."""

    def __init__(self, path: Path | None, rate: int, ceiling_dbtp: float, clock: _Clock,
                 pool: ThreadPoolExecutor, tags: SongTags) -> None:
        self.path, self.job, self.pool = path, None, pool
        self.start = functools.partial(_mp3, path, rate=rate, ceiling_dbtp=ceiling_dbtp,
                                       clock=clock, tags=tags)

    def __call__(self, source: Limited | np.ndarray) -> None:
        """Start encoding ``source`` (once: a later call does nothing)."""
        if self.path is not None and self.job is None:
            self.job = self.pool.submit(self.start, source)

    def peak(self) -> float | None:
        """The decoded MP3's true peak in dBTP, once written (None without an MP3)."""
        return None if self.job is None else self.job.result()


def _export(paths: list[Path], master: Normalised, rate: int, clock: _Clock,
            pool: ThreadPoolExecutor, tags: SongTags) -> None:
    """Write the WAV and FLAC masters in parallel."""
    def export(path: Path) -> None:
        with clock.stage("export mix", path.name):
            if path.suffix == ".wav":
                write_tagged_wav(path, master.audio, rate, tags)
            else:
                write_flac(path, master.audio, rate)

    list(pool.map(export, paths))


def produce_audio(midi: pretty_midi.PrettyMIDI, sounds: Mapping[str, LayerSound],
                  master: MasterSound, render: RenderSettings, out_dir: Path, *, swing: float,
                  seed: int, formats: Sequence[str] = ("wav", "mp3"),
                  only: set[str] | None = None, progress: bool = True,
                  title: str = "",
                  section_effects: Sequence[SectionEffects] = ()) -> dict[str, Any]:
    """Render ``midi`` and write stems and master under ``out_dir`` (see the module docstring).

    Parameters
    ----------
    sounds : layer -> sound; layers without one keep their MIDI program, dry and centred.
    render : SoundFont, sample rate, humanisation and tail.
    swing : 0..0.75 of a 16th; seed : base seed for humanisation and seeded effects.
    formats : master files to write, from ("wav", "mp3", "flac"); stems are always WAV.
    only : layers to re-render; the others' stems are read back from ``out_dir/stems``.
    title : the title tagged into the WAVs and the MP3 (default ``DEFAULT_TITLE``);
    section_effects : (start s, end s, layer, effects added), e.g. a low-passed intro.

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
    tags, stem_dir = song_tags(midi, title or DEFAULT_TITLE), out_dir / "stems"
    noise_path = stem_dir / f"{noise_stem_name(layers)}.wav"
    mixes = [out_dir / f"mix.{f}" for f in FORMATS if f in formats]
    threading.Thread(target=kernels.preload, daemon=True).start()  # as synthesis starts
    with _Clock(progress, 3 * len(todo) + 1 + len(mixes)) as clock, \
            ThreadPoolExecutor(WORKERS) as pool:
        summed = _StemSum(enabled, rate, n_samples)
        with open_soundfont(soundfont, rate) as loaded:  # closed before the master: memory
            jobs = _start_stems(midi, todo, sounds, render, loaded, stem_dir, clock, pool, summed,
                                swing=swing, seed=seed, n_samples=n_samples, tags=tags,
                                section_effects=section_effects)
            # The stems kept from an earlier render, and the master's noise, queued behind.
            jobs += [pool.submit(summed.read, stem_dir / f"{name}.wav")
                     for name in enabled if name not in todo]
            noise = pool.submit(_noise_stem, master, seed, n_samples, rate, noise_path, tags,
                                keep=only is not None)
            chains = pool.submit(master_chains, master, seed, (2, n_samples), rate)
            _finish([*jobs, noise])
        result, mp3_peak = _master_files(summed, master, rate, seed, chains, noise.result(),
                                         mixes, clock, pool, tags)
    files = [stem_dir / f"{n}.{kind}" for n in todo for kind in ("wav", "mid")]
    files += [noise_path] * noise_path.exists() + mixes
    return _report(soundfont, rate, n_samples, enabled, todo, result, mp3_peak, clock, files)


def _report(soundfont: Path, rate: int, n_samples: int, enabled: list[str], todo: list[str],
            result: Normalised, mp3_peak: float | None, clock: _Clock,
            files: list[Path]) -> dict[str, Any]:
    return {"soundfont": str(soundfont), "sample_rate": rate,
            "length_seconds": round(n_samples / rate, 3), "layers": enabled, "rendered": todo,
            "loudness_lufs": _finite(result.loudness_lufs),
            "true_peak_dbtp": _finite(result.true_peak_dbtp),
            "mp3_true_peak_dbtp": _finite(mp3_peak),
            "stage_seconds": {k: round(v, 3) for k, v in clock.seconds.items()},
            "wall_seconds": round(clock.wall_seconds, 3), "files": [str(f) for f in files]}


def _master_files(summed: _StemSum, master: MasterSound, rate: int, seed: int,
                  chains: Future, noise: np.ndarray | None, mixes: list[Path], clock: _Clock,
                  pool: ThreadPoolExecutor, tags: SongTags) -> tuple[Normalised, float | None]:
    """The master, and its files written (``mixes``): the master and its MP3's true peak."""
    mp3 = _Mp3Job(next((p for p in mixes if p.suffix == ".mp3"), None), rate,
                  master.true_peak_dbtp, clock, pool, tags)
    with clock.stage("master"):
        result = _master(summed, master, rate, seed, chains, pool, noise, mp3)
    mp3(result.audio)  # unless the limiter's input already started it
    _export([p for p in mixes if p.suffix != ".mp3"], result, rate, clock, pool, tags)
    return result, mp3.peak()


def _master(summed: _StemSum, master: MasterSound, rate: int, seed: int,
            chains: Future, pool: ThreadPoolExecutor, noise: np.ndarray | None,
            mp3: _Mp3Job) -> Normalised:
    """The master of the summed stems and the ``fx`` stem (``mp3`` gets its limiter's
    input); silence, unmeasured, when no layer is enabled."""
    if summed.total is None:
        return Normalised(np.zeros((2, summed.n_samples), np.float32), -math.inf, -math.inf)
    if noise is None:  # the bus makes none: nothing to add (not "make it here")
        noise = np.zeros((2, summed.n_samples), np.float32)
    return master_measured(summed.total, master, rate, seed, chains.result(), pool, noise,
                           on_limited=mp3)
