"""`lofi render`: stems and a mix from any multi-track MIDI, with a preset's sound."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import pretty_midi

from arranger.atomic import staged_dir
from arranger.midi_io import group_layers
from arranger.preset import load_preset


def read_layers(path: Path) -> pretty_midi.PrettyMIDI:
    """The MIDI at ``path`` with its instruments renamed to the layers they play."""
    try:
        pm = pretty_midi.PrettyMIDI(str(path))
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: no such MIDI file") from None
    except Exception as e:  # mido/pretty_midi raise many types for corrupt files
        raise ValueError(f"{path}: not a readable MIDI file ({str(e).splitlines()[0]})") from None
    layers = group_layers(pm)
    if not layers:
        raise ValueError(f"{path}: holds no instrument with notes to render")
    pm.instruments = []
    for name, insts in layers.items():
        # Several tracks of one layer (two guitars, say) become one stem.
        merged = pretty_midi.Instrument(insts[0].program, is_drum=name == "drums", name=name)
        merged.notes = sorted((n for inst in insts for n in inst.notes), key=lambda n: n.start)
        pm.instruments.append(merged)
    return pm


def render_midi_file(path: Path, preset_name: str, out: Path, *, seed: int = 0,
                     formats: Sequence[str] = ("wav", "mp3"), force: bool = False,
                     progress: bool = True, soundfont: Path | None = None) -> dict:
    """Render the MIDI at ``path`` with ``preset_name``'s sound into ``out``."""
    from arranger.audio.produce import produce_audio
    from arranger.audio.soundfont import find_soundfont

    preset = load_preset(preset_name)
    if soundfont is not None:
        preset = replace(preset, render=replace(preset.render, soundfont=str(soundfont)))
    pm = read_layers(Path(path))
    find_soundfont(preset.render.soundfont or None)
    with staged_dir(out, force=force) as stage:
        return produce_audio(pm, preset.layers, preset.master, preset.render, stage,
                             swing=preset.song.swing, seed=seed, formats=formats,
                             progress=progress)
