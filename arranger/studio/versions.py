"""Earlier versions of a song, kept so that undo gives back the very bytes.

Before a regenerate, the song's files are hard-linked (copied where links are not possible)
into ``.studio/versions/<song>/<k>``, ``k`` being the number of regenerate steps in that
version's manifest. Every writer of a song folder replaces whole files or the whole folder
(``arranger.atomic``), never a file in place, so a link keeps the old bytes. Undo swaps the
kept version back in; where none was kept (the song was changed with the CLI, or the version
was dropped to save space), it replays the manifest's history without its last step, which
gives the same ``score.mid`` (``lofi generate --from-manifest``).
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

from arranger.atomic import staged_dir
from arranger.manifest import MANIFEST, Manifest
from arranger.studio.library import Library

KEEP = 20  # versions kept per song; older ones are replayed from the manifest when undone


def save(library: Library, song_id: str) -> int:
    """Keep the song's current version; returns its number ``k`` (its history length)."""
    folder = library.song(song_id)
    k = len(Manifest.load(folder).history)
    root = library.versions_dir(song_id)
    _drop(root, lambda n: n >= k or n < k - KEEP + 1)  # a redo branch, and the oldest
    root.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{k}.", dir=root))
    try:
        _link_tree(folder, tmp)
        os.replace(tmp, root / str(k))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return k


def discard(library: Library, song_id: str, k: int) -> None:
    """Forget version ``k`` (the change it was kept for failed)."""
    shutil.rmtree(library.versions_dir(song_id) / str(k), ignore_errors=True)


def undo(library: Library, song_id: str, output) -> None:
    """Put the version before the last regenerate step back in place."""
    folder = library.song(song_id)
    current = Manifest.load(folder)
    if not current.history:
        raise ValueError(f"song {song_id!r}: nothing to undo (it has no regenerate history)")
    k = len(current.history) - 1
    kept = library.versions_dir(song_id) / str(k)
    if _matches(kept, current.history[:k]):
        with staged_dir(folder, force=True) as stage:
            _link_tree(kept, stage)
        discard(library, song_id, k)
    else:
        _replay(folder, current, k, output)


def _matches(kept: Path, history: list[dict]) -> bool:
    try:
        return json.loads((kept / MANIFEST).read_text(encoding="utf-8"))["history"] == history
    except (OSError, ValueError, KeyError):
        return False


def _replay(folder: Path, current: Manifest, k: int, output) -> None:
    from arranger.compose.reproduce import reproduce

    current.history = current.history[:k]
    with tempfile.TemporaryDirectory(prefix=".undo.", dir=folder.parent) as tmp:
        current.save(Path(tmp))
        reproduce(Path(tmp) / MANIFEST, folder, output=output, force=True)


def _link_tree(src: Path, dst: Path) -> None:
    shutil.copytree(src, dst, dirs_exist_ok=True, copy_function=_link_or_copy,
                    ignore=_not_song_files)


def _not_song_files(folder: str, names: list[str]) -> set[str]:
    """Hidden names and links: a link is no part of the song, and may point anywhere."""
    return {n for n in names if n.startswith(".") or os.path.islink(os.path.join(folder, n))}


def _link_or_copy(src: str, dst: str) -> None:
    try:
        os.link(src, dst)
    except OSError:  # a file system without hard links
        shutil.copy2(src, dst)


def _drop(root: Path, which) -> None:
    if not root.is_dir():
        return
    for p in root.iterdir():
        if p.name.isdigit() and which(int(p.name)):
            shutil.rmtree(p, ignore_errors=True)
