"""What a command tells its user after writing: the song's facts and the files it wrote.

Everything is read back from what was written (manifest.json, the folder), so the summary says
what the song is, not what was asked for.
"""

from __future__ import annotations

from pathlib import Path

from arranger.score import BEATS_PER_BAR


def song_lines(folder: Path) -> list[str]:
    """Two lines for a written song: its facts, then its files.

    Parameters
    ----------
    folder : Path
        A folder written by ``lofi generate`` (holding ``manifest.json``).
    """
    from arranger.manifest import Manifest
    from arranger.preset import from_dict

    manifest = Manifest.load(folder)
    preset = from_dict(manifest.preset, str(folder))
    song = preset.song
    batch = (f" (song {manifest.index + 1} of a batch of {manifest.variations})"
             if manifest.variations > 1 else "")
    facts = (f"wrote {folder}/: preset {preset.name}, {song.key}, {song.tempo_bpm:g} bpm, "
             f"{manifest.bars} bars, {mm_ss(song_seconds(manifest.bars, song.tempo_bpm))}, "
             f"seed {manifest.seed}{batch}")
    return [facts, "  files: " + files_text(folder)]


def song_seconds(bars: int, tempo_bpm: float) -> float:
    """Length of ``bars`` 4/4 bars at ``tempo_bpm`` quarter notes per minute, in seconds."""
    return bars * BEATS_PER_BAR * 60.0 / tempo_bpm


def mm_ss(seconds: float) -> str:
    """``107.4`` -> ``"1:47"`` (minutes and whole seconds, rounded)."""
    whole = round(seconds)
    return f"{whole // 60}:{whole % 60:02d}"


def files_text(folder: Path) -> str:
    """The files under ``folder``, a sub-folder's files grouped: ``stems/{bass,drums}.wav``."""
    top, grouped = [], {}
    for path in sorted(Path(folder).rglob("*")):
        if not path.is_file() or path.name.startswith("."):
            continue
        rel = path.relative_to(folder)
        if len(rel.parts) == 1:
            top.append(rel.name)
        else:
            grouped.setdefault((rel.parent.as_posix(), path.suffix), []).append(path.stem)
    groups = [f"{parent}/{{{','.join(stems)}}}{suffix}" if len(stems) > 1
              else f"{parent}/{stems[0]}{suffix}"
              for (parent, suffix), stems in grouped.items()]
    return " ".join(top + groups)


def layer_mapping_lines(midi_path: Path) -> list[str]:
    """How ``lofi render`` maps the tracks of ``midi_path`` to layers, one line per layer.

    Read with the same rule the renderer uses (:func:`arranger.midi_io.group_layers`: name,
    then drum flag, then GM program family).
    """
    import pretty_midi

    from arranger.midi_io import group_layers

    lines = []
    for layer, instruments in group_layers(pretty_midi.PrettyMIDI(str(midi_path))).items():
        tracks = ", ".join(_track_text(inst) for inst in instruments)
        lines.append(f"  {layer:<7} <- {tracks}")
    return lines


def _track_text(inst) -> str:
    name = repr(inst.name) if inst.name.strip() else "(unnamed)"
    what = "drum channel" if inst.is_drum else f"program {inst.program}"
    return f"{name} ({what}, {len(inst.notes)} notes)"
