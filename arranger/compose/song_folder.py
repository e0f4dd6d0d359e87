"""A song folder's files: score.mid, manifest.json, pictures, stems and mix, kept consistent.

Every file derived from ``score.mid`` either matches it or is not there: a file that was not
rewritten for a changed score (``regenerate --no-render``, a master format not asked for this
time, pictures turned off) is removed, and the names of what was removed are returned.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from arranger import midi_io
from arranger.compose.drawing import Pictures
from arranger.manifest import Manifest
from arranger.preset import Preset
from arranger.score import LAYERS, STEPS_PER_BAR, Score

PICTURES = ("pianoroll.png", "score.musicxml")  # what arranger.pictures.write_pictures writes


@dataclass(frozen=True)
class Output:
    """What to write besides ``score.mid`` and ``manifest.json``."""

    render: bool = True
    formats: tuple[str, ...] = ("wav", "mp3")
    pictures: bool = True  # pianoroll.png and score.musicxml
    progress: bool = True
    loop: bool = False  # loop/: one chord loop made to repeat seamlessly (arranger.audio.loop)


def write_song(folder: Path, score: Score, preset: Preset, manifest: Manifest, output: Output,
               only: set[str] | None = None) -> list[str]:
    """Write score.mid, manifest.json and (optionally) pictures and audio into ``folder``.

    Parameters
    ----------
    only : the layers whose notes changed (None: all); the other layers' stems are kept from
        an earlier render in ``folder`` when there is one, else rendered too.

    Returns
    -------
    list[str]
        Files (relative to ``folder``) removed because they no longer matched the score.
    """
    folder.mkdir(parents=True, exist_ok=True)
    midi_io.write_midi(folder / "score.mid", score, preset.programs())
    manifest.save(folder)
    stale = _stale_files(folder, output, only)
    for name in stale:
        (folder / name).unlink()
    if output.pictures:
        with Pictures(folder, score, preset):
            _render(folder, score, preset, manifest, output, only)
    else:
        _render(folder, score, preset, manifest, output, only)
    return stale


def _render(folder: Path, score: Score, preset: Preset, manifest: Manifest, output: Output,
            only: set[str] | None) -> None:
    if not output.render:
        return
    from arranger.audio.produce import produce_audio

    midi = midi_io.to_midi(score, preset.programs())
    title = f"{preset.name} (seed {manifest.seed})"
    produce_audio(midi, preset.layers, preset.master, preset.render, folder, swing=score.swing,
                  seed=manifest.render_seed, formats=output.formats,
                  only=_to_render(folder, only, midi), progress=output.progress,
                  title=title, section_effects=_section_effects(score, preset))
    if output.loop or (folder / "loop").is_dir():  # a loop kept must match the score, too
        from arranger.audio.loop import produce_loop

        produce_loop(midi, preset, folder / "loop", seed=manifest.render_seed, bars=score.bars,
                     title=title)


def _section_effects(score: Score, preset: Preset) -> list:
    """Where the song's sections add effects to a layer, in seconds of the score."""
    from arranger.compose.sections import Form, effect_spans

    seconds_per_bar = score.seconds_per_step * STEPS_PER_BAR
    return effect_spans(Form.of(preset.song.sections, score.bars), seconds_per_bar)


def _to_render(folder: Path, only: set[str] | None, midi) -> set[str] | None:
    """The changed layers plus any whose stem is missing (never rendered, or removed as stale)."""
    if only is None:
        return None
    from arranger.audio.render import layer_names

    present = set(layer_names(midi))
    missing = {n for n in present if not (folder / "stems" / f"{n}.wav").exists()}
    return (set(only) | missing) & present


def _stale_files(folder: Path, output: Output, only: set[str] | None) -> list[str]:
    """Derived files in ``folder`` that this write will not replace although the score changed."""
    from arranger.audio.produce import FORMATS

    changed = set(LAYERS) if only is None else set(only)
    names = [] if output.pictures else list(PICTURES)
    if output.render:
        names += [f"mix.{f}" for f in FORMATS if f not in output.formats]
    else:  # every per-layer file of a changed layer (its stem, its notes...) and the mix
        names += [f"mix.{f}" for f in FORMATS]
        names += sorted(f"stems/{p.name}" for p in (folder / "stems").glob("*")
                        if p.stem in changed)
        names += sorted(f"loop/{p.name}" for p in (folder / "loop").glob("*.wav"))
    return [name for name in names if (folder / name).exists()]
