"""Find a General MIDI SoundFont (.sf2/.sf3) to render with.

Lookup order (first hit wins):

1. the explicit path (``--soundfont`` or the preset's ``render.soundfont``);
2. ``$LOFI_SOUNDFONT``;
3. ``.sf2``/``.sf3`` files in the project's ``soundfonts/`` folder (alphabetical);
4. the distribution's GM SoundFonts (Debian/Ubuntu ``fluid-soundfont-gm``, ``timgm6mb-soundfont``,
   ``musescore-general-soundfont``; the Arch/Fedora equivalents);
5. the TimGM6mb.sf2 that ships inside the pretty_midi wheel.

An explicit path or ``$LOFI_SOUNDFONT`` that does not point at a SoundFont is an error, not a
reason to fall back: the user asked for that sound.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Iterator
from pathlib import Path

ENV_VAR = "LOFI_SOUNDFONT"
SUFFIXES = (".sf2", ".sf3")
PROJECT_DIR = Path(__file__).resolve().parents[2] / "soundfonts"
SYSTEM_SOUNDFONTS = (
    Path("/usr/share/sounds/sf2/FluidR3_GM.sf2"),
    Path("/usr/share/sounds/sf2/TimGM6mb.sf2"),
    Path("/usr/share/sounds/sf3/MuseScore_General.sf3"),
    Path("/usr/share/sounds/sf3/FluidR3Mono_GM.sf3"),
    Path("/usr/share/sounds/sf2/default-GM.sf2"),
    Path("/usr/share/sounds/sf3/default-GM.sf3"),
    Path("/usr/share/soundfonts/FluidR3_GM.sf2"),
    Path("/usr/share/soundfonts/default.sf2"),
)
INSTALL_HINT = (
    "no SoundFont found: pass --soundfont PATH, set $LOFI_SOUNDFONT, drop a .sf2/.sf3 file into "
    f"{PROJECT_DIR}, or install one (Debian/Ubuntu: sudo apt-get install "
    "--no-install-recommends fluid-soundfont-gm)"
)


def is_soundfont(path: Path) -> bool:
    """Whether ``path`` is a readable file with a SoundFont (RIFF ``sfbk``) header."""
    try:
        with path.open("rb") as f:
            header = f.read(12)
    except OSError:
        return False
    return header[:4] == b"RIFF" and header[8:12] == b"sfbk"


def folder_soundfonts(folder: Path) -> list[Path]:
    """SoundFont files directly inside ``folder``, sorted by name (empty if no such folder)."""
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in SUFFIXES and p.is_file())


def bundled_soundfont() -> Path | None:
    """The TimGM6mb.sf2 inside the installed pretty_midi package, if there is one."""
    spec = importlib.util.find_spec("pretty_midi")
    if spec is None or spec.origin is None:
        return None
    return Path(spec.origin).parent / "TimGM6mb.sf2"


def _requested(path: str, source: str) -> Path:
    """Resolve a user-requested SoundFont (a file, or a folder holding one) or fail loudly."""
    candidate = Path(path).expanduser()
    if candidate.is_dir():
        inside = [p for p in folder_soundfonts(candidate) if is_soundfont(p)]
        if inside:
            return inside[0]
    elif is_soundfont(candidate):
        return candidate
    raise FileNotFoundError(
        f"SoundFont {path!r} (from {source}) is not a readable .sf2/.sf3 file or a folder "
        "holding one"
    )


def fallback_soundfonts() -> Iterator[Path]:
    """The lookup's candidates after the explicit path and ``$LOFI_SOUNDFONT``, in order."""
    yield from folder_soundfonts(PROJECT_DIR)
    yield from SYSTEM_SOUNDFONTS
    bundled = bundled_soundfont()
    if bundled is not None:
        yield bundled


def find_soundfont(explicit: str | os.PathLike | None = None) -> Path:
    """Return the SoundFont to render with, following the module's lookup order.

    Parameters
    ----------
    explicit : path of a .sf2/.sf3 file (or a folder holding one); empty or None to look one up.

    Raises
    ------
    FileNotFoundError
        If the explicit path or ``$LOFI_SOUNDFONT`` is not a SoundFont, or nothing is found; the
        message says how to install one.
    """
    if explicit:
        return _requested(os.fspath(explicit), "--soundfont / preset")
    if os.environ.get(ENV_VAR):
        return _requested(os.environ[ENV_VAR], f"${ENV_VAR}")
    for candidate in fallback_soundfonts():
        if is_soundfont(candidate):
            return candidate
    raise FileNotFoundError(INSTALL_HINT)
