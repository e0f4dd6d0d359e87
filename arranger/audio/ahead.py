"""SoundFonts loaded ahead, on a side thread, for the render that comes next.

``lofi generate`` knows its SoundFont before it composes: loading it (~0.25 s for FluidR3_GM;
FluidSynth reads it without holding the GIL) overlaps the models' work instead of delaying the
first layer's synthesis.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from concurrent.futures import Future
from contextlib import contextmanager
from pathlib import Path

from arranger.audio.render import LoadedSoundfont

_AHEAD: dict[tuple[Path, int], Future] = {}  # SoundFonts loading ahead, by file and rate
_AHEAD_LOCK = threading.Lock()


def load_ahead(path: Path, sample_rate: int) -> None:
    """Start loading the SoundFont at ``path`` on a side thread, for the next
    :func:`open_soundfont` of it; :func:`drop_ahead` closes one never opened."""
    key, future = (Path(path).resolve(), sample_rate), Future()
    with _AHEAD_LOCK:
        if key in _AHEAD:
            return
        _AHEAD[key] = future

    def load() -> None:
        try:
            future.set_result(LoadedSoundfont(path, sample_rate))
        except BaseException as error:  # raised again where it is opened
            future.set_exception(error)

    threading.Thread(target=load, daemon=True).start()


def open_soundfont(path: Path, sample_rate: int) -> LoadedSoundfont:
    """The SoundFont at ``path`` loaded for ``sample_rate``: the one loaded ahead (waited for),
    else loaded now. The caller closes it."""
    with _AHEAD_LOCK:
        future = _AHEAD.pop((Path(path).resolve(), sample_rate), None)
    return future.result() if future is not None else LoadedSoundfont(path, sample_rate)


@contextmanager
def closed_if_unused() -> Iterator[None]:
    """Around a run that loads ahead: on the way out, close what no render opened (the run
    stopped before its audio)."""
    try:
        yield
    finally:
        drop_ahead()


def drop_ahead() -> None:
    """Close the SoundFonts loaded ahead and never opened (a run that stopped before its audio)."""
    with _AHEAD_LOCK:
        futures = list(_AHEAD.values())
        _AHEAD.clear()
    for future in futures:
        if future.exception() is None:
            future.result().close()
