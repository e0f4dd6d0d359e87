"""The whole pipeline: preset -> coordinator -> score -> files (MIDI, manifest, audio).

Everything that can fail on bad input (preset, weights, soundfont, primer) is checked before a
single file is written; the output folder is built in a staging copy and swapped in whole.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from arranger import midi_io
from arranger.atomic import staged_dir
from arranger.compose.coordinator import FREE, Forced, Models, compose, generation_mode
from arranger.manifest import Manifest, package_versions
from arranger.preset import Preset, from_dict
from arranger.score import BEATS_PER_BAR, STEPS_PER_BAR, Score, sounding
from arranger.weights import load_models, weights_hash
from tracks import chords as chord_track
from tracks import drums as drum_track
from tracks import melody as melody_track

MAX_BARS = 512  # longer songs would hold minutes of audio in memory per stem


@dataclass(frozen=True)
class Output:
    """What to write besides ``score.mid`` and ``manifest.json``."""

    render: bool = True
    formats: tuple[str, ...] = ("wav", "mp3")
    pictures: bool = True  # pianoroll.png and score.musicxml
    progress: bool = True


def check_bars(bars: int) -> None:
    if not 1 < bars <= MAX_BARS:
        raise ValueError(f"--bars {bars}: expected 2..{MAX_BARS} bars")


def generate(preset: Preset, out: Path, *, seed: int, bars: int | None = None,
             weights: Path | None = None, variations: int = 1, primer: Path | None = None,
             output: Output = Output(), force: bool = False, device: str = "auto"
             ) -> list[Path]:
    """Write ``variations`` songs to ``out`` (``out/01``, ``out/02``... when more than one)."""
    bars = bars or preset.song.bars
    scores = compose_songs(preset, seed=seed, bars=bars, weights=weights,
                           variations=variations, primer=primer, check_render=output.render,
                           device=device)
    # Absolute paths: regenerate and --from-manifest may run from another folder.
    base = Manifest(preset.to_dict(), seed, bars, variations, 0, _absolute(weights),
                    weights_hash(weights), _absolute(primer), seed, [], package_versions())
    folders = []
    with staged_dir(out, force=force) as stage:
        for i, score in enumerate(scores):
            folder = stage / f"{i + 1:02d}" if variations > 1 else stage
            base.index = i
            write_song(folder, score, preset, base, output)
            folders.append(out / folder.relative_to(stage))
    return folders


def _absolute(path: Path | None) -> str:
    return str(Path(path).resolve()) if path else ""


def compose_songs(preset: Preset, *, seed: int, bars: int, weights: Path | None = None,
                  variations: int = 1, primer: Path | None = None,
                  check_render: bool = False, device: str = "auto") -> list[Score]:
    """Validate the inputs, then write ``variations`` scores as one batch."""
    check_bars(bars)
    torch_device = generation_device(device)
    if not 1 <= variations <= 64:
        raise ValueError(f"--variations {variations}: expected 1..64")
    models = load_models(weights)
    if check_render:
        _check_soundfont(preset)
    primer_score = _read_primer(primer) if primer else None
    plan = preset.plan(bars, bass_seed=seed)
    if primer_score is not None:
        plan = replace(plan, key=primer_score.key)  # the song continues the primer's key
    forced = Forced.free(variations, bars)
    if primer_score is not None:
        _force_primer(forced, primer_score, models, bars)
    return compose(models, plan, seed=seed, variations=variations, forced=forced,
                   device=torch_device)


def generation_device(name: str):
    """``auto``/``cpu``: the numpy CPU path (step-by-step generation is launch-bound on a GPU,
    and it needs no torch import); ``cuda``: PyTorch on the GPU."""
    if name in ("auto", "cpu"):
        return None
    from arranger.training.train import resolve_device

    return resolve_device(name)


def write_song(folder: Path, score: Score, preset: Preset, manifest: Manifest, output: Output,
               only: set[str] | None = None) -> None:
    """Write score.mid, manifest.json and (optionally) pictures and audio into ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    midi_io.write_midi(folder / "score.mid", score, preset.programs())
    manifest.save(folder)
    pictures = _Pictures(folder, score, preset) if output.pictures else None
    try:
        if output.render:
            from arranger.audio.produce import produce_audio

            produce_audio(midi_io.to_midi(score, preset.programs()), preset.layers,
                          preset.master, preset.render, folder, swing=score.swing,
                          seed=manifest.render_seed, formats=output.formats, only=only,
                          progress=output.progress,
                          stems_done=pictures.go if pictures is not None else None)
        if pictures is not None:
            pictures.go()
    except BaseException:
        if pictures is not None:
            pictures.terminate()  # the staging folder it writes into is about to go
        raise
    finally:
        if pictures is not None:
            pictures.join()
    if pictures is not None and pictures.exitcode != 0:
        raise RuntimeError(f"drawing pianoroll.png / score.musicxml in {folder} failed")


class _Pictures:
    """Draws the pictures in a process forked now, while this one is small, that starts
    drawing on ``go()``: once the stems are done, as the master and MP3 stages leave the second
    core idle. Drawing earlier only slows the stems down: it is pure Python (music21 alone takes
    a second to import) and takes the CPU whenever an audio thread waits for the GIL.
    """

    def __init__(self, folder: Path, score: Score, preset: Preset) -> None:
        import multiprocessing as mp

        self.event = None
        if "fork" not in mp.get_all_start_methods():  # draw here, now
            _write_pictures(folder, score, preset)
            self.process = None
            return
        context = mp.get_context("fork")
        self.event = context.Event()
        self.process = context.Process(target=_write_pictures_later,
                                       args=(self.event, folder, score, preset))
        self.process.start()

    def go(self) -> None:
        if self.event is not None:
            self.event.set()

    def terminate(self) -> None:
        if self.process is not None:
            self.process.terminate()

    def join(self) -> None:
        if self.process is not None:
            self.process.join()

    @property
    def exitcode(self) -> int | None:
        return 0 if self.process is None else self.process.exitcode


def _write_pictures_later(event, folder: Path, score: Score, preset: Preset) -> None:
    """Wait for the go, then draw at a lower priority: the audio threads come first."""
    import os

    event.wait()
    os.nice(10)
    _write_pictures(folder, score, preset)


def _write_pictures(folder: Path, score: Score, preset: Preset) -> None:
    from arranger.pictures import write_pictures

    write_pictures(folder, score, preset.programs())


def _check_soundfont(preset: Preset) -> None:
    from arranger.audio.soundfont import find_soundfont

    find_soundfont(preset.render.soundfont or None)


def _read_primer(path: Path) -> Score:
    from arranger.corpus.files import read_file
    from arranger.corpus.piece import SkipSong

    try:
        songs = read_file(Path(path))
    except SkipSong as e:
        raise ValueError(f"{path}: cannot use as a primer ({e.reason})") from None
    if not songs:
        raise ValueError(f"{path}: cannot use as a primer (no usable music)")
    song = songs[0]
    return song.score


def _force_primer(forced: Forced, primer: Score, models: Models, bars: int) -> None:
    """Feed the primer's bars as forced tokens (all layers it has) so the song continues it."""
    n_bars = min(primer.bars, bars - 1)
    steps, beats = n_bars * STEPS_PER_BAR, n_bars * BEATS_PER_BAR
    if any(c is not None for c in primer.chords[:beats]):
        forced.chords[:, :beats] = chord_track.encode(primer)[:beats]
    if (primer.melody[:steps] >= 0).any():
        line = melody_track.fit_range(primer.melody, center=False)  # keep the primer's register
        forced.melody[:, :steps] = melody_track.tokens_of(line)[:steps]
    if primer.drums[:steps].any():
        forced.drums[:, :steps] = drum_track.encode(primer, models.drum_vocab)[:steps]


# --- regenerate one layer ---------------------------------------------------------------------

REGENERABLE = ("chords", "melody", "bass", "drums")
CANDIDATES = 8  # bar-range regeneration samples this many and keeps the smoothest join


def parse_bars(text: str | None, total: int) -> tuple[int, int]:
    """``"9-16"`` -> (8, 16): zero-based first bar, exclusive end. None -> the whole song."""
    if not text:
        return 0, total
    try:
        a, _, b = text.partition("-")
        first, last = int(a), int(b or a)
    except ValueError:
        raise ValueError(f"--bars {text!r}: expected A-B, e.g. 9-16") from None
    if not 1 <= first <= last <= total:
        raise ValueError(f"--bars {text!r}: expected 1 <= A <= B <= {total}")
    return first - 1, last


def regenerate(folder: Path, layer: str, *, bars: str | None = None, seed: int | None = None,
               output: Output = Output(), device: str = "auto") -> Score:
    """Resample one layer (or a bar range of it) of the song in ``folder``, in place."""
    if layer not in REGENERABLE:
        raise ValueError(f"--layer {layer!r}: choose one of {', '.join(REGENERABLE)}")
    manifest = Manifest.load(folder)
    preset = from_dict(manifest.preset, f"{folder}/manifest.json")
    old = midi_io.read_midi(Path(folder) / "score.mid")
    first, end = parse_bars(bars, old.bars)
    seed = seed if seed is not None else manifest.seed + len(manifest.history) + 1
    weights = Path(manifest.weights) if manifest.weights else None
    new = _resample(old, preset, layer, first, end, seed, weights, manifest.seed,
                    generation_device(device))
    manifest.history.append({"layer": layer, "bars": f"{first + 1}-{end}", "seed": seed})
    touched = {layer} | ({"bass"} if layer == "chords" else set())
    with staged_dir(Path(folder), keep=True) as stage:
        write_song(stage, new, preset, manifest, output, only=touched)
    return new


def _resample(old: Score, preset: Preset, layer: str, first: int, end: int, seed: int,
              weights: Path | None, bass_seed: int, device=None) -> Score:
    from tracks.bass import bass_line

    new = old.copy()
    s0, s1 = first * STEPS_PER_BAR, end * STEPS_PER_BAR
    if layer == "bass":
        new.bass[s0:s1] = bass_line(old, seed=seed, loop_bars=preset.song.loop_bars)[s0:s1]
        return _clean_line_edges(new, "bass", s0, s1)
    models = load_models(weights)
    plan = preset.plan(old.bars)
    plan = replace(plan, key=old.key, tempo_bpm=old.tempo_bpm, swing=old.swing)
    forced = _forced_from(old, models, CANDIDATES)
    free = {"chords": slice(first * BEATS_PER_BAR, end * BEATS_PER_BAR), "melody": slice(s0, s1),
            "drums": slice(s0, s1)}[layer]
    getattr(forced, layer)[:, free] = FREE
    with generation_mode():
        from arranger.compose.coordinator import ending_forced, generate_tokens, to_scores

        ending_forced(forced, plan, models)
        gen = generate_tokens(models, plan, forced, seed, device)
    best = int(np.argmax(gen.forced_logp[layer]))  # the candidate that best leads into the rest
    picked = to_scores(gen, plan, models)[best]
    return _splice(old, new, picked, layer, first, end, bass_seed, preset)


def _forced_from(score: Score, models: Models, batch: int) -> Forced:
    forced = Forced.free(batch, score.bars)
    forced.chords[:] = chord_track.encode(score)
    forced.melody[:] = melody_track.tokens_of(score.melody)  # as written: no octave refit
    forced.drums[:] = drum_track.encode(score, models.drum_vocab)
    return forced


def _splice(old: Score, new: Score, picked: Score, layer: str, first: int, end: int,
            bass_seed: int, preset: Preset) -> Score:
    from tracks.bass import bass_line

    s0, s1 = first * STEPS_PER_BAR, end * STEPS_PER_BAR
    if layer == "chords":
        b0, b1 = first * BEATS_PER_BAR, end * BEATS_PER_BAR
        new.chords = old.chords[:b0] + picked.chords[b0:b1] + old.chords[b1:]
        # The bass follows the chords: bars A-1..B are re-derived with the song's bass seed
        # (the bar before the range too, since its last notes approach the next chord).
        b0 = max(0, s0 - STEPS_PER_BAR)
        derived = bass_line(new, seed=bass_seed, loop_bars=preset.song.loop_bars)
        new.bass[b0:s1] = derived[b0:s1]
        new = _clean_line_edges(new, "bass", b0, s1)
    elif layer == "melody":
        new.melody[s0:s1] = picked.melody[s0:s1]
        new = _clean_line_edges(new, "melody", s0, s1)
    else:
        new.drums[s0:s1] = picked.drums[s0:s1]
        new.drum_velocity[s0:s1] = picked.drum_velocity[s0:s1]
    return new


def _clean_line_edges(score: Score, layer: str, s0: int, s1: int) -> Score:
    """Keep a monophonic line valid across the edited range's edges."""
    from arranger.score import HOLD

    line = getattr(score, layer)
    if s0 < len(line) and line[s0] == HOLD and (s0 == 0 or line[s0 - 1] == -1):
        line[s0] = -1
    if s1 < len(line) and line[s1] == HOLD:
        # The kept note after the range was held over from a note that is gone: re-strike it.
        old_pitch = _sounding_before(line, s1)
        line[s1] = old_pitch if old_pitch >= 0 else -1
    return score


def _sounding_before(line: np.ndarray, step: int) -> int:
    return int(sounding(line[: step + 1])[-1])


def reproduce(manifest_path: Path, out: Path, *, output: Output = Output(),
              force: bool = False) -> Path:
    """Generate again from a manifest, replaying its regenerate history: the same score.mid."""
    m = Manifest.load(manifest_path)
    preset = from_dict(m.preset, str(manifest_path))
    weights = Path(m.weights) if m.weights else None
    score = compose_songs(preset, seed=m.seed, bars=m.bars, weights=weights,
                          variations=m.variations, primer=Path(m.primer) if m.primer else None,
                          check_render=output.render)[m.index]
    for step in m.history:
        first, end = parse_bars(step["bars"], score.bars)
        score = _resample(score, preset, step["layer"], first, end, step["seed"], weights, m.seed)
    with staged_dir(out, force=force) as stage:
        write_song(stage, score, preset, m, output)
    return out
