"""What a studio job does, in the worker process: generate, regenerate or undo one song.

Each function takes only plain, picklable arguments (they cross into the worker process) and
changes one song folder, holding that song's lock (:func:`arranger.atomic.song_lock`, which
the engine takes again inside: it nests in one thread) from the undo copy to the last file.
"""

from __future__ import annotations

from pathlib import Path

from arranger.atomic import song_lock
from arranger.studio import versions
from arranger.studio.library import Library


def warm_up() -> None:
    """Import the engine, so that the first Generate does not wait for torch and friends."""
    import arranger.audio.produce  # noqa: F401
    import arranger.compose.generate  # noqa: F401
    import arranger.compose.regenerate  # noqa: F401
    import arranger.pictures  # noqa: F401


def generate_song(root: Path, song_id: str, preset: dict, seed: int, weights: Path | None,
                  output) -> None:
    """Write a new song folder ``root/song_id`` from a resolved preset dict (see ``app``)."""
    from arranger.compose.generate import generate
    from arranger.preset import from_dict

    library = Library(root)
    folder = library.folder(song_id)
    with song_lock(folder):
        generate(from_dict(preset, "request"), folder, seed=seed, weights=weights,
                 output=output)


def regenerate_song(root: Path, song_id: str, layer: str, bars: str | None, seed: int | None,
                    output) -> None:
    """Resample one layer (or bars of it) in place, keeping the version before for undo."""
    from arranger.compose.regenerate import regenerate

    library = Library(root)
    folder = library.song(song_id)
    with song_lock(folder):
        k = versions.save(library, song_id)
        try:
            regenerate(folder, layer, bars=bars, seed=seed, output=output)
        except BaseException:
            versions.discard(library, song_id, k)
            raise


def undo_song(root: Path, song_id: str, output) -> None:
    """Go back one step of the song's regenerate history."""
    library = Library(root)
    with song_lock(library.song(song_id)):
        versions.undo(library, song_id, output)

