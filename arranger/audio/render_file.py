"""`lofi render`: stems and a mix from any multi-track MIDI, with a preset's sound.

Everything that can be refused is refused before any synthesis and before the output folder is
touched, in one line naming the file: an unreadable MIDI (``midi_io.read_pretty_midi``), and one
beyond what ``generate`` itself writes (``MAX_BARS`` 4/4 bars, as long as that many bars at the
slowest preset tempo) or too dense for FluidSynth (``MAX_TRACKS``, ``MAX_NOTES``,
``MAX_POLYPHONY``). Those bounds keep a refused file's memory small (< 0.6 GB at worst) and
FluidSynth from being asked for more voices than it has.

Rendering a MIDI that lives inside the output folder (``lofi render SONG/score.mid --out SONG
--force``) keeps the folder's other files (score, manifest, pictures): only the stems and the
mix are replaced. A folder that cannot be written (read-only, disk full) is one line too, and
the folder is left as it was.
"""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np
import pretty_midi

from arranger.atomic import check_output, staged_dir
from arranger.compose.generate import MAX_BARS
from arranger.errors import InputError
from arranger.midi_io import group_layers, read_pretty_midi
from arranger.preset import load_preset
from arranger.score import BEATS_PER_BAR
from arranger.settings import spec_of
from arranger.song_settings import SongSettings

SLOWEST_TEMPO_BPM = spec_of(SongSettings, "tempo_bpm").low
MAX_SECONDS = MAX_BARS * BEATS_PER_BAR * 60.0 / SLOWEST_TEMPO_BPM  # generate's longest song
MAX_TRACKS = 64  # instruments with notes; a generated score has 4
MAX_NOTES = 200_000  # a 512-bar generated score holds well under 60,000
MAX_POLYPHONY = 128  # notes sounding at once in one layer: FluidSynth has 256 voices
MIX_FILES = ("mix.wav", "mix.mp3", "mix.flac")


def read_layers(path: Path) -> pretty_midi.PrettyMIDI:
    """The MIDI at ``path`` with its instruments merged into the layers they play.

    Raises ``FileNotFoundError`` or ``InputError`` (one line naming the file) for a missing,
    unreadable, too long or too dense file, or one without notes.
    """
    pm = read_pretty_midi(path)
    check_size(pm, str(path))
    layers = group_layers(pm)
    if not layers:
        raise InputError("notes", 0, "at least one instrument with notes to render", str(path))
    pm.instruments = []
    for name, insts in layers.items():
        # Several tracks of one layer (two guitars, say) become one stem.
        merged = pretty_midi.Instrument(insts[0].program, is_drum=name == "drums", name=name)
        merged.notes = sorted((n for inst in insts for n in inst.notes), key=lambda n: n.start)
        check_polyphony(merged, str(path))
        pm.instruments.append(merged)
    return pm


def check_size(pm: pretty_midi.PrettyMIDI, where: str) -> None:
    """Refuse a MIDI with more tracks or notes, or longer, than the module's bounds."""
    tracks = sum(1 for inst in pm.instruments if inst.notes)
    if tracks > MAX_TRACKS:
        raise InputError("tracks", tracks, f"at most {MAX_TRACKS} instruments with notes", where)
    notes = sum(len(inst.notes) for inst in pm.instruments)
    if notes > MAX_NOTES:
        raise InputError("notes", notes, f"at most {MAX_NOTES} notes", where)
    end_s = pm.get_end_time()
    # One tick of slack: the tick of a time read back from seconds may round up.
    bars = float(pm.time_to_tick(end_s) - 1) / pm.resolution / BEATS_PER_BAR
    if bars > MAX_BARS:
        raise InputError("bars", round(bars, 1),
                         f"at most {MAX_BARS} bars of 4/4, as `lofi generate` writes", where)
    if end_s > MAX_SECONDS:
        raise InputError("length_s", round(float(end_s)),
                         f"at most {MAX_SECONDS:.0f} s ({MAX_BARS} bars at "
                         f"{SLOWEST_TEMPO_BPM:g} bpm, as `lofi generate` writes)", where)


def polyphony(instrument: pretty_midi.Instrument) -> int:
    """Most notes of ``instrument`` sounding at once (a note ending as another starts: not)."""
    notes = [n for n in instrument.notes if n.velocity > 0 and n.end > n.start]
    times = np.array([n.start for n in notes] + [n.end for n in notes], dtype=np.float64)
    steps = np.concatenate([np.ones(len(notes)), -np.ones(len(notes))])
    order = np.lexsort((steps, times))  # at one time, ends (-1) before starts (+1)
    return int(np.cumsum(steps[order]).max(initial=0))


def check_polyphony(instrument: pretty_midi.Instrument, where: str) -> None:
    """Refuse a layer with more than ``MAX_POLYPHONY`` notes at once (FluidSynth would drop
    voices and flood its event queue)."""
    voices = polyphony(instrument)
    if voices > MAX_POLYPHONY:
        raise InputError(f"{instrument.name} notes at once", voices,
                         f"at most {MAX_POLYPHONY} in one layer", where)


def render_midi_file(path: Path, preset_name: str, out: Path, *, seed: int = 0,
                     formats: Sequence[str] = ("wav", "mp3"), force: bool = False,
                     progress: bool = True, soundfont: Path | None = None) -> dict:
    """Render the MIDI at ``path`` with ``preset_name``'s sound into ``out``.

    Returns ``produce_audio``'s report. Raises ``FolderExistsError`` for a non-empty ``out``
    without ``force``, ``InputError``/``FileNotFoundError`` for what the module refuses.
    """
    from arranger.audio.produce import produce_audio
    from arranger.audio.render import fluid
    from arranger.audio.soundfont import find_soundfont

    preset = load_preset(preset_name)
    if soundfont is not None:
        preset = replace(preset, render=replace(preset.render, soundfont=str(soundfont)))
    pm = read_layers(Path(path))
    find_soundfont(preset.render.soundfont or None)
    fluid()  # a missing libfluidsynth is refused before the output folder is touched
    out = Path(out)
    check_output(out, force=force)
    # A full disk or a read-only folder is one line from staged_dir, the folder as it was.
    with staged_dir(out, force=True) as stage:
        if _inside(Path(path), out):
            _keep_song_files(out, stage)
        return produce_audio(pm, preset.layers, preset.master, preset.render, stage,
                             swing=preset.song.swing, seed=seed, formats=formats,
                             progress=progress)


def _inside(path: Path, folder: Path) -> bool:
    """Whether ``path`` lies in ``folder`` (or below it), symlinks resolved."""
    return path.resolve().is_relative_to(folder.resolve())


def _keep_song_files(song: Path, stage: Path) -> None:
    """Copy everything of ``song`` into ``stage`` but the stems and mix about to be replaced."""
    for item in song.iterdir():
        if item.name in MIX_FILES:
            continue
        if item.name == "stems" and item.is_dir():
            shutil.copytree(item, stage / "stems", ignore=shutil.ignore_patterns("*.wav", "*.mid"))
        elif item.is_dir():
            shutil.copytree(item, stage / item.name, symlinks=True)
        else:
            shutil.copy2(item, stage / item.name, follow_symlinks=False)
