"""`lofi`: the command line. It parses options and calls library functions, nothing more."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from arranger.preset import DEFAULT_PRESET

app = typer.Typer(
    help="Write and produce lo-fi tracks: conditioned LSTMs compose chords, melody and drums "
         "(bass follows the chords), FluidSynth and lo-fi effects make the record.\n\n"
         "Start with:  lofi generate --preset rainy-night --seed 7 --out my-track",
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode="rich",
)
presets_app = typer.Typer(help="List presets or print one fully resolved.",
                          invoke_without_command=True)
app.add_typer(presets_app, name="presets")
err = Console(stderr=True)
console = Console()

DeviceOpt = Annotated[str, typer.Option("--device", help="auto (CUDA when present), cpu or cuda.")]
GenDeviceOpt = Annotated[str, typer.Option(
    "--device", help="auto or cpu: a fast CPU path (a GPU is slower for step-by-step "
                     "generation); cuda: PyTorch on the GPU. Same seed, same device, same MIDI.")]
ForceOpt = Annotated[bool, typer.Option("--force", help="Replace an existing output folder.")]
WeightsOpt = Annotated[Path | None, typer.Option(
    "--weights", help="Folder of trained weights from `lofi train` (default: shipped weights).")]
RenderOpt = Annotated[bool, typer.Option(
    "--render/--no-render", help="Render stems and the mix (WAV + MP3), or write MIDI only.")]
FlacOpt = Annotated[bool, typer.Option("--flac", help="Also write mix.flac.")]
SoundfontOpt = Annotated[Path | None, typer.Option(
    "--soundfont", help="A .sf2/.sf3 file (or a folder holding one) to render with; see "
                        "soundfonts/README.md for the lookup order when not given.")]


def _with_soundfont(preset, soundfont: Path | None):
    from dataclasses import replace

    if soundfont is None:
        return preset
    return replace(preset, render=replace(preset.render, soundfont=str(soundfont)))


def _run(fn: Callable, *args, interrupted: str = "nothing was changed", **kwargs):
    """Call into the library; a problem with the user's input is one line and exit code 2."""
    from arranger.preset import PresetError
    from tracks.weights_file import WeightsError

    try:
        return fn(*args, **kwargs)
    except (PresetError, WeightsError, ValueError, FileNotFoundError, FileExistsError) as e:
        err.print(f"[bold red]error:[/] {e}", highlight=False, soft_wrap=True)
        raise typer.Exit(2) from None
    except KeyboardInterrupt:
        err.print(f"interrupted: {interrupted}")
        raise typer.Exit(130) from None


def _output(render: bool, flac: bool, pictures: bool = True):
    from arranger.compose.song import Output

    formats = ("wav", "mp3", "flac") if flac else ("wav", "mp3")
    return Output(render=render, formats=formats, pictures=pictures,
                  progress=sys.stderr.isatty())


@app.command()
def generate(
    preset: Annotated[str, typer.Option(help="Preset name from `lofi presets`, or a .toml file.")
                      ] = DEFAULT_PRESET,
    seed: Annotated[int, typer.Option(help="Same preset + seed = the same score.mid, byte for "
                                           "byte.")] = 0,
    bars: Annotated[int | None, typer.Option(help="Song length in bars (default: the preset's)."
                                             )] = None,
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
    soundfont: SoundfontOpt = None,
    device: GenDeviceOpt = "auto",
    force: ForceOpt = False,
) -> None:
    """Compose a song from a preset and write score.mid, stems/, mix.wav, mix.mp3, manifest.json,
    pianoroll.png and score.musicxml into OUT."""
    from arranger.compose import song
    from arranger.preset import load_preset

    output = _output(render, flac)
    if from_manifest:
        folder = _run(song.reproduce, from_manifest, out, output=output, force=force)
        out_msg = [folder]
    else:
        p = _with_soundfont(_run(load_preset, preset), soundfont)
        out_msg = _run(song.generate, p, out, seed=seed, bars=bars, weights=weights,
                       variations=variations, primer=primer, output=output, force=force,
                       device=device)
    for folder in out_msg:
        console.print(f"wrote {folder}/")


@app.command()
def regenerate(
    folder: Annotated[Path, typer.Argument(help="A folder written by `lofi generate`.")],
    layer: Annotated[str, typer.Option(
        help="chords, melody, bass or drums. Regenerating chords also re-derives the bass of "
             "those bars and the bar before them (the bass follows the chords); melody and "
             "drums are kept as they are.")],
    bars: Annotated[str | None, typer.Option(
        help="Only these bars, e.g. 9-16 (1-based, inclusive). The models hear the bars before "
             "and the kept bars after, so the edit joins smoothly.")] = None,
    seed: Annotated[int | None, typer.Option(help="Seed for the new material (default: a new "
                                                  "one per call).")] = None,
    render: RenderOpt = True,
    flac: FlacOpt = False,
    device: GenDeviceOpt = "auto",
) -> None:
    """Resample one layer (or some bars of it) while every other layer stays exactly as it was;
    rewrites score.mid, that layer's stem and the mix."""
    from arranger.compose import song

    _run(song.regenerate, folder, layer, bars=bars, seed=seed, output=_output(render, flac),
         device=device)
    console.print(f"regenerated {layer}{' bars ' + bars if bars else ''} in {folder}/")


@app.command("render")
def render_cmd(
    score: Annotated[Path, typer.Argument(help="A multi-track MIDI file (e.g. edited in a DAW).")],
    preset: Annotated[str, typer.Option(help="Preset giving instruments and effects.")
                      ] = DEFAULT_PRESET,
    out: Annotated[Path, typer.Option(help="Output folder.")] = Path("out"),
    seed: Annotated[int, typer.Option(help="Seed of humanisation and noise.")] = 0,
    flac: FlacOpt = False,
    soundfont: SoundfontOpt = None,
    force: ForceOpt = False,
) -> None:
    """Render any multi-track MIDI to stems and a mix; instruments map to layers by name,
    drum flag or GM program."""
    from arranger.audio.render_file import render_midi_file

    _run(render_midi_file, score, preset, out, seed=seed, soundfont=soundfont,
         formats=("wav", "mp3", "flac") if flac else ("wav", "mp3"), force=force,
         progress=sys.stderr.isatty())
    console.print(f"wrote {out}/")


@app.command()
def train(
    corpus: Annotated[list[Path], typer.Argument(help="Folders, MIDI files or .zip archives.")],
    out: Annotated[Path, typer.Option(help="Folder for checkpoints and weights.")] = Path(
        "weights"),
    layers: Annotated[str, typer.Option(help="Comma-separated: chords,melody,drums.")
                      ] = "chords,melody,drums",
    epochs: Annotated[int | None, typer.Option(help="Most epochs per layer.")] = None,
    batch_size: Annotated[int | None, typer.Option(help="Windows per step.")] = None,
    lr: Annotated[float | None, typer.Option(help="Learning rate.")] = None,
    optimizer: Annotated[str | None, typer.Option(help="adamw, adam, rmsprop or adamax.")] = None,
    hidden: Annotated[int | None, typer.Option(help="LSTM units.")] = None,
    min_count: Annotated[int | None, typer.Option(
        help="Tokens seen fewer times are never sampled.")] = None,
    max_minutes: Annotated[float | None, typer.Option(
        help="Wall-clock budget per layer (0 = none).")] = None,
    threads: Annotated[int | None, typer.Option(
        help="CPU threads for training (default: all cores; fewer if the machine is busy).")
                       ] = None,
    resume: Annotated[bool, typer.Option(help="Continue from the checkpoints in OUT.")] = False,
    device: DeviceOpt = "auto",
    workers: Annotated[int | None, typer.Option(help="Processes for reading the corpus.")] = None,
    init_from: Annotated[Path | None, typer.Option(
        "--init-from", help="Fine-tune the models of this weights folder (e.g. tracks/weights) "
                            "instead of starting from scratch; keeps their vocabulary.")] = None,
    include: Annotated[list[str] | None, typer.Option(
        help="Only songs whose path matches this shell pattern (repeatable), e.g. "
             "--include '*hiphop*' --include '*soul*'.")] = None,
) -> None:
    """Train the chord, melody and drum models on your own MIDI; generate from them with
    `lofi generate --weights OUT`. Corrupt files are skipped and reported."""
    from arranger.training.run import run_training

    _run(run_training, corpus, out, layers=layers, device=device, resume=resume, workers=workers,
         interrupted="checkpoint saved; continue with the same command and --resume",
         include=include or (), init_from=init_from,
         overrides=dict(epochs=epochs, batch_size=batch_size, lr=lr, optimizer=optimizer,
                        hidden=hidden, min_count=min_count, max_minutes=max_minutes,
                        threads=threads))


@app.command("eval")
def eval_cmd(
    corpus: Annotated[list[Path], typer.Option(
        "--corpus", help="Real music to compare with (folders, MIDI, zips); repeat for several. "
                         "Its held-out songs are the real side.")],
    weights: WeightsOpt = None,
    n: Annotated[int, typer.Option("--n", help="Songs generated by each model.")] = 32,
    bars: Annotated[int, typer.Option(help="Length of generated songs and real excerpts.")] = 32,
    seed: Annotated[int, typer.Option(help="Generation and chord-shuffle seed.")] = 0,
    json_out: Annotated[Path | None, typer.Option(
        "--json", help="Also write the results as JSON to this file.")] = None,
    train_paths: Annotated[list[Path] | None, typer.Option(
        "--train-paths", help="Corpus whose training side the Markov baselines count "
                              "(default: --corpus).")] = None,
    max_files: Annotated[int | None, typer.Option(
        help="Read at most this many files, spread over the corpus.")] = None,
    workers: Annotated[int | None, typer.Option(help="Processes for reading the corpus.")] = None,
) -> None:
    """Real vs LSTM vs Markov: musical metrics, held-out bits/step per layer, and whether the
    melody really depends on its chords (true vs shuffled chords)."""
    import json

    from arranger.atomic import write_text
    from arranger.evaluation.evaluate import evaluate, format_table

    if json_out is not None and json_out.is_dir():
        _run(_fail, f"--json {json_out}: is a folder; give a file name")
    result = _run(evaluate, corpus, weights, n=n, seed=seed, bars=bars, max_files=max_files,
                  workers=workers, train_paths=train_paths, progress=sys.stderr.isatty())
    typer.echo(format_table(result))  # plain: a wide table must not be re-wrapped
    if json_out is not None:
        write_text(json_out, json.dumps(result, indent=2) + "\n")


def _fail(message: str) -> None:
    raise ValueError(message)


@presets_app.callback()
def presets_list(ctx: typer.Context) -> None:
    """List the presets with a one-line description."""
    if ctx.invoked_subcommand:
        return
    from arranger.preset import load_preset, preset_names

    for name in preset_names():
        p = _run(load_preset, name)
        console.print(f"[bold]{name:<18}[/] {p.description}", soft_wrap=True)


@presets_app.command("show")
def presets_show(name: Annotated[str, typer.Argument(help="Preset name or .toml file.")]) -> None:
    """Print a preset fully resolved (inheritance applied), as TOML."""
    from arranger.preset import dump_toml, load_preset

    p = _run(load_preset, name)
    typer.echo(dump_toml(p.to_dict()).rstrip())  # plain: the output must stay valid TOML


if __name__ == "__main__":
    app()
