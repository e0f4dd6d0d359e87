"""`lofi`: the command line. It parses options and calls library functions, nothing more.

The commands live in ``songs.py`` (generate, regenerate, render) and ``train.py`` (train,
eval); this module builds the app. Help is plain click formatting (no rich markup): it wraps
at word boundaries at any width and never eats ``[...]`` in the text.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from arranger.cli import songs, train
from arranger.cli.common import run, say
from arranger.studio.server import DEFAULT_HOST, DEFAULT_PORT

app = typer.Typer(
    help="Write and produce lo-fi tracks: conditioned LSTMs compose chords, melody and drums "
         "(bass follows the chords), FluidSynth and lo-fi effects make the record.\n\n"
         "\b\nStart with:\n  lofi generate --preset rainy-night --seed 7 --out my-track",
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode=None,
)
presets_app = typer.Typer(help="List presets or print one fully resolved.",
                          invoke_without_command=True, rich_markup_mode=None)
app.add_typer(presets_app, name="presets")
app.command()(songs.generate)
app.command()(songs.regenerate)
app.command("render")(songs.render_cmd)
app.command(cls=train.TrainDefaultsCommand)(train.train)
app.command("eval")(train.eval_cmd)


def version() -> str:
    """The installed package's version (declared once, in pyproject.toml)."""
    from importlib import metadata

    try:
        return metadata.version("lofi")
    except metadata.PackageNotFoundError:  # running from a checkout that is not installed
        return "unknown (not installed; run ./install.sh)"


def _print_version(value: bool) -> None:
    if value:
        say(f"lofi {version()}")
        raise typer.Exit()


@app.callback()
def main(
    show_version: Annotated[bool, typer.Option(
        "--version", callback=_print_version, is_eager=True,
        help="Print the version and exit.")] = False,
) -> None:
    """Write and produce lo-fi tracks."""


@app.command()
def studio(
    ctx: typer.Context,
    host: Annotated[str, typer.Option(help="Address to listen on; anything but 127.0.0.1 / "
                                           "localhost lets other machines in.")] = DEFAULT_HOST,
    port: Annotated[int, typer.Option(help="Port to listen on (0: any free one).")
                    ] = DEFAULT_PORT,
    library: Annotated[Path | None, typer.Option(
        help="Folder of song folders (default: lofi/library in your data folder, e.g. "
             "~/.local/share/lofi/library).")] = None,
) -> None:
    """Start the studio, a local web page for songs.

    Generate songs, listen, regenerate a layer or some bars, and download the mix, the stems
    and the MIDI. Prints the URL; Ctrl-C stops.
    """
    from arranger.studio.server import serve

    run(ctx, serve, host, port, library)


@presets_app.callback()
def presets_list(ctx: typer.Context) -> None:
    """List the presets with a one-line description."""
    if ctx.invoked_subcommand:
        return
    from arranger.preset import load_preset, preset_names

    for name in preset_names():
        p = run(ctx, load_preset, name)
        say(typer.style(f"{name:<18}", bold=True) + f" {p.description}")


@presets_app.command("show")
def presets_show(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Preset name or .toml file.")],
) -> None:
    """Print a preset fully resolved (inheritance applied), as TOML."""
    from arranger.preset import dump_toml, load_preset

    p = run(ctx, load_preset, name)
    say(dump_toml(p.to_dict()).rstrip())  # plain: the output must stay valid TOML


if __name__ == "__main__":
    app()
