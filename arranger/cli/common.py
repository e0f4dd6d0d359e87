"""What every command shares: calling into the library, one-line errors, shared options.

Errors and anything the user wrote are printed as plain text: no markup is interpreted, so a
``[62, 84]`` or a ``[red]`` in a message reaches the terminal as written.
"""

from __future__ import annotations

import shlex
import sys
from collections.abc import Callable, Collection
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer

from arranger.errors import InputError, clip

DeviceOpt = Annotated[str, typer.Option("--device", help="auto (CUDA when present), cpu or cuda.")]
GenDeviceOpt = Annotated[str, typer.Option(
    "--device", help="auto or cpu: a fast CPU path (a GPU is slower for step-by-step "
                     "generation); cuda: PyTorch on the GPU. Same seed, same device, same MIDI.")]
ForceOpt = Annotated[bool, typer.Option("--force", help="Replace an existing output folder.")]
WeightsOpt = Annotated[list[Path] | None, typer.Option(
    "--weights", help="Folder of trained weights from `lofi train` (default: shipped weights); "
                      "repeat for an ensemble: the models' probabilities are averaged.")]

RenderOpt = Annotated[bool, typer.Option(
    "--render/--no-render", help="Render stems and the mix (WAV + MP3), or write MIDI only.")]
FlacOpt = Annotated[bool, typer.Option("--flac", help="Also write mix.flac.")]
SoundfontOpt = Annotated[Path | None, typer.Option(
    "--soundfont", help="A .sf2/.sf3 file (or a folder holding one) to render with; see "
                        "soundfonts/README.md for the lookup order when not given.")]


def weights_value(weights: list[Path] | None) -> Path | None:
    """The library's ``weights`` for the ``--weights`` given (several: an ensemble)."""
    from arranger.weights import joined

    return joined(weights)


def say(text: str) -> None:
    """One line of plain text on stdout."""
    typer.echo(text)


def warn(text: str) -> None:
    """One line of plain text on stderr."""
    typer.echo(text, err=True)


def fail(line: str, code: int = 2) -> NoReturn:
    """Print ``error: line`` on stderr (plain, "error:" in red on a terminal) and exit."""
    typer.echo(typer.style("error:", fg="red", bold=True) + " " + line, err=True)
    raise typer.Exit(code)


def run(ctx: typer.Context | None, fn: Callable, *args: Any,
        interrupted: str = "nothing was changed", **kwargs: Any) -> Any:
    """Call into the library; a problem with the user's input is one line and exit code 2.

    ``ctx`` is the command's context: an :class:`InputError` about one of its options (no
    ``where``) is worded as that flag, e.g. ``--bars 9-x: expected A-B, e.g. 9-16``.
    """
    try:
        return fn(*args, **kwargs)
    except (ValueError, FileNotFoundError, FileExistsError) as e:  # InputError, WeightsError...
        fail(error_line(e, command_flags(ctx)))
    except KeyboardInterrupt:
        warn(f"interrupted: {interrupted}")
        raise typer.Exit(130) from None


def command_flags(ctx: typer.Context | None) -> set[str]:
    """The long option names (``--bars``, ``--no-render``...) of the running command."""
    if ctx is None:
        return set()
    return {o for p in ctx.command.params for o in (*p.opts, *p.secondary_opts)
            if o.startswith("--")}


def error_line(e: BaseException, flags: Collection[str]) -> str:
    """The one line for an error: an argument's field as its flag, else the message."""
    if isinstance(e, InputError) and not e.where:
        flag = "--" + e.field.replace("_", "-")
        if flag in flags:
            return flag_line(flag, e.value, e.expected)
    text = str(e).strip()
    return text.splitlines()[0] if text else type(e).__name__


def flag_line(flag: str, value: Any, expected: str) -> str:
    """``--key 'Q minor': expected ...``: the value as one would type it in a shell."""
    shown = clip(shlex.quote(f"{value:g}" if isinstance(value, float) else str(value)), value)
    return f"{flag} {shown}: expected {expected}"


def progress() -> bool:
    """Progress bars only when someone watches (stderr is a terminal)."""
    return sys.stderr.isatty()


def formats(flac: bool) -> tuple[str, ...]:
    """The audio formats of the mix to write."""
    return ("wav", "mp3", "flac") if flac else ("wav", "mp3")
