"""The pictures of a song (pianoroll.png, score.musicxml), drawn in a process that dies with us.

The drawing process is forked once the score exists and draws at once, at a lower priority
(nice 10): it is pure Python (music21 alone takes a second to import) and so runs in the gaps
the audio leaves (the first layers' synthesis waiting for the GIL during scipy's import, the
serial end of the MP3 check). Held back until the stems were done, it finished alone after the
MP3, which takes both cores (0.4-0.7 s slower a song: benchmarks/RESULTS.md). On Linux it asks
the kernel to kill it when we die.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys
from pathlib import Path

from arranger.preset import Preset
from arranger.score import Score

_PR_SET_PDEATHSIG = 1  # linux/prctl.h
NICE = 10  # the audio threads come first


class Pictures:
    """``with Pictures(folder, score, preset): ...``: drawn by the end of the block, or stopped.

    Leaving the block by an exception (Ctrl-C, SIGTERM, a failed render) stops the drawing:
    the staging folder it writes into is about to go.
    """

    def __init__(self, folder: Path, score: Score, preset: Preset) -> None:
        import multiprocessing as mp

        self.process = None
        if "fork" not in mp.get_all_start_methods():  # draw here, now
            _draw(folder, score, preset)
            return
        self.process = mp.get_context("fork").Process(
            target=_draw_behind, daemon=True, args=(os.getpid(), folder, score, preset))
        self.process.start()

    def __enter__(self) -> Pictures:
        return self

    def __exit__(self, kind, value, traceback) -> None:
        if self.process is None:
            return
        if kind is not None:
            self._stop()
            return
        try:
            self.process.join()
        except BaseException:  # Ctrl-C or SIGTERM while waiting for the drawing
            self._stop()
            raise
        if self.process.exitcode != 0:
            # The pictures are extras: a drawing process that died must not throw the song away.
            print(f"warning: pianoroll.png / score.musicxml not drawn (exit code "
                  f"{self.process.exitcode}); the song is kept", file=sys.stderr, flush=True)

    def _stop(self) -> None:
        """End the drawing process and wait for it: nothing may write into the folder after."""
        self.process.terminate()
        self.process.join()


def _draw_behind(parent: int, folder: Path, score: Score, preset: Preset) -> None:
    """In the forked process: draw at a lower priority, dying with ``parent``."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the parent, which stops us
    signal.signal(signal.SIGTERM, signal.SIG_DFL)  # not the parent's handler, forked with us
    _die_with(parent)
    os.nice(NICE)
    _draw(folder, score, preset)


def _die_with(parent: int) -> None:
    """Ask Linux to SIGKILL this process when ``parent`` dies (elsewhere: the pipe's EOF)."""
    if sys.platform != "linux":
        return
    ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent:  # it died before the request took effect
        os._exit(0)


def _draw(folder: Path, score: Score, preset: Preset) -> None:
    from arranger.pictures import write_pictures

    write_pictures(folder, score, preset.programs())
