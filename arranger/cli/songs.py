"""`lofi generate`, `lofi regenerate`, `lofi render`: parse options, call the library, report."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Annotated

import typer

from arranger.cli.common import (
    FlacOpt,
    ForceOpt,
    GenDeviceOpt,
    RenderOpt,
    SoundfontOpt,
    WeightsOpt,
    fail,
    flag_line,
    formats,
    progress,
    run,
    say,
    weights_value,
)
from arranger.cli.summary import layer_mapping_lines, song_lines
from arranger.errors import InputError
from arranger.preset import DEFAULT_PRESET, Preset

# The preset fields a generate flag overrides: (flag, field of [song]).
OVERRIDES = (("--key", "key"), ("--tempo", "tempo_bpm"))


def generate(
    ctx: typer.Context,
    preset: Annotated[str, typer.Option(help="Preset name from `lofi presets`, or a .toml file.")
                      ] = DEFAULT_PRESET,
    seed: Annotated[int, typer.Option(help="Same preset + seed = the same score.mid, byte for "
                                           "byte.")] = 0,
    bars: Annotated[int | None, typer.Option(help="Song length in bars (default: the preset's)."
                                             )] = None,
    key: Annotated[str | None, typer.Option(
        help="Key instead of the preset's, e.g. \"D minor\", Eb, F#m.")] = None,
    tempo: Annotated[float | None, typer.Option(
        help="Tempo in bpm instead of the preset's (40..200).")] = None,
    out: Annotated[Path, typer.Option(help="Output folder.")] = Path("out"),
    weights: WeightsOpt = None,
    variations: Annotated[int, typer.Option(help="Write N songs in one batch: OUT/01, OUT/02...")
                          ] = 1,
    primer: Annotated[Path | None, typer.Option(
        help="A MIDI file whose opening bars the song continues (its key is kept).")] = None,
    from_manifest: Annotated[Path | None, typer.Option(
        "--from-manifest", help="Reproduce a song from its manifest.json (other song options "
                                "are ignored).")] = None,
    render: RenderOpt = True,
    flac: FlacOpt = False,
    loop: Annotated[bool, typer.Option(
        "--loop", help="Also write loop/: one chord loop (song.loop_bars bars) that plays "
                       "back seamlessly, as stems and a mastered mix.wav.")] = False,
    soundfont: SoundfontOpt = None,
    device: GenDeviceOpt = "auto",
    force: ForceOpt = False,
) -> None:
    """Compose a song and write it into OUT.

    OUT gets score.mid, stems/, mix.wav, mix.mp3, manifest.json, pianoroll.png and
    score.musicxml; a summary of the song and its files is printed.
    """
    from arranger.compose.generate import generate as generate_songs
    from arranger.compose.reproduce import reproduce
    from arranger.preset import load_preset

    output = replace(_output(render, flac), loop=loop)
    if from_manifest:
        folders = [run(ctx, reproduce, from_manifest, out, output=output, force=force)]
    else:
        p = run(ctx, load_preset, preset)
        p = with_soundfont(with_overrides(p, key=key, tempo=tempo), soundfont)
        folders = run(ctx, generate_songs, p, out, seed=seed, bars=bars,
                      weights=weights_value(weights),
                      variations=variations, primer=primer, output=output, force=force,
                      device=device)
    for folder in folders:
        for line in song_lines(folder):
            say(line)


def with_overrides(preset: Preset, *, key: str | None, tempo: float | None) -> Preset:
    """``preset`` with ``--key``/``--tempo`` in place of its own, validated as preset fields.

    A bad value exits with one line naming the flag, e.g. ``--tempo 500.0: expected ...``.
    """
    from arranger.preset import from_dict

    values = {"--key": key, "--tempo": tempo}
    for flag, field in OVERRIDES:
        if values[flag] is None:
            continue
        d = preset.to_dict()
        d["song"][field] = values[flag]
        try:  # one field at a time: the preset itself was valid, so an error is this flag's
            preset = from_dict(d, preset.source)
        except ValueError as e:
            fail(flag_line(flag, values[flag], _expected(e)))
    return preset


def _expected(e: ValueError) -> str:
    """What a preset field allows, from its validation error."""
    if isinstance(e, InputError):
        return e.expected
    return str(e).split(": expected ", 1)[-1]


def with_soundfont(preset: Preset, soundfont: Path | None) -> Preset:
    """``preset`` rendering with ``soundfont`` (unchanged when None)."""
    if soundfont is None:
        return preset
    return replace(preset, render=replace(preset.render, soundfont=str(soundfont)))


def _output(render: bool, flac: bool, pictures: bool = True):
    from arranger.compose.song_folder import Output

    return Output(render=render, formats=formats(flac), pictures=pictures, progress=progress())


def regenerate(
    ctx: typer.Context,
    folder: Annotated[Path, typer.Argument(help="A folder written by `lofi generate`.")],
    layer: Annotated[str | None, typer.Option(
        help="chords, melody, bass or drums. Regenerating chords also re-derives the bass of "
             "those bars and the bar before them (the bass follows the chords); melody and "
             "drums are kept as they are. With --section and no --layer: every layer.")
                     ] = None,
    bars: Annotated[str | None, typer.Option(
        help="Only these bars, e.g. 9-16 (1-based, inclusive). The models hear the bars before "
             "and the kept bars after, so the edit joins smoothly.")] = None,
    section: Annotated[str | None, typer.Option(
        help="Every occurrence of this section of the preset's [[song.sections]], e.g. A: "
             "a repeated section stays a repeat.")] = None,
    seed: Annotated[int | None, typer.Option(help="Seed for the new material (default: a new "
                                                  "one per call, printed).")] = None,
    render: RenderOpt = True,
    flac: FlacOpt = False,
    device: GenDeviceOpt = "auto",
) -> None:
    """Resample one layer (or some bars of it, or a section).

    Every other layer stays exactly as it was; score.mid, that layer's stem and the mix are
    rewritten. The seed used is printed and recorded in manifest.json.
    """
    from arranger.compose import regenerate as regeneration

    done = run(ctx, regeneration.regenerate, folder, layer, bars=bars, seed=seed,
               output=_output(render, flac), device=device, section=section)
    used = done.seed
    where = f" section {section} (bars {done.bars})" if section else f" bars {bars}" if bars else ""
    say(f"regenerated {done.layer}{where} in {folder}/ with seed {used} (kept in manifest.json; "
        f"--seed {used} on the song as it was gives this take again)")
    if done.removed:  # --no-render: audio that no longer matches score.mid is not kept
        say(f"removed {', '.join(done.removed)}: they no longer matched score.mid "
            "(a regenerate without --no-render renders them again)")


def render_cmd(
    ctx: typer.Context,
    score: Annotated[Path, typer.Argument(help="A multi-track MIDI file (e.g. edited in a DAW).")],
    preset: Annotated[str, typer.Option(help="Preset giving instruments and effects.")
                      ] = DEFAULT_PRESET,
    out: Annotated[Path, typer.Option(help="Output folder.")] = Path("out"),
    seed: Annotated[int, typer.Option(help="Seed of humanisation and noise.")] = 0,
    flac: FlacOpt = False,
    soundfont: SoundfontOpt = None,
    force: ForceOpt = False,
) -> None:
    """Render any multi-track MIDI to stems and a mix.

    Tracks map to layers by name (chords, melody, bass, drums), then drum flag, then GM
    program family; the mapping is printed.
    """
    from arranger.audio.render_file import render_midi_file

    run(ctx, render_midi_file, score, preset, out, seed=seed, soundfont=soundfont,
        formats=formats(flac), force=force, progress=progress())
    say(f"rendered {score} into {out}/, tracks mapped to layers:")
    for line in layer_mapping_lines(score):
        say(line)
