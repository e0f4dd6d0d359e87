"""The pictures of a song (pianoroll.png, score.musicxml), drawn in a process that dies with us.

The drawing process is forked early, while this one is small, and starts drawing on ``go()``:
once the stems are done, as the master and MP3 stages leave the second core idle. Drawing
earlier only slows the stems down: it is pure Python (music21 alone takes a second to import)
and takes the CPU whenever an audio thread waits for the GIL.

It waits for the go on a pipe, so it ends when we do, however we end (an end of file instead of
the go); on Linux it also asks the kernel to kill it when we die while it draws.
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


class Pictures:
    """``with Pictures(folder, score, preset) as p: ...; p.go()``: drawn by exit, or stopped.

    Leaving the block by an exception (Ctrl-C, SIGTERM, a failed render) stops the drawing:
    the staging folder it writes into is about to go.
    """

    def __init__(self, folder: Path, score: Score, preset: Preset) -> None:
        import multiprocessing as mp

        self.process = self._writer = None
        if "fork" not in mp.get_all_start_methods():  # draw here, now
            _draw(folder, score, preset)
            return
        context = mp.get_context("fork")
        reader, self._writer = context.Pipe(duplex=False)
        self.process = context.Process(target=_draw_on_go, daemon=True,
                                       args=(reader, self._writer, os.getpid(), folder, score,
                                             preset))
        self.process.start()
        reader.close()

    def go(self) -> None:
        """Start drawing (a second call does nothing)."""
        if self._writer is not None and not self._writer.closed:
            self._writer.send_bytes(b"go")
            self._writer.close()

    def __enter__(self) -> Pictures:
        return self

    def __exit__(self, kind, value, traceback) -> None:
        if self.process is None:
            return
        if kind is not None:
            self._stop()
            return
        try:
            self.go()  # drawn by the end of the block, whether or not go() was called
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
        if self._writer is not None and not self._writer.closed:
            self._writer.close()  # no go will come: a process still waiting ends at once
        self.process.terminate()
        self.process.join()


def _draw_on_go(reader, writer, parent: int, folder: Path, score: Score, preset: Preset) -> None:
    """In the forked process: wait for the go, then draw at a lower priority."""
    writer.close()  # our copy of the parent's end: only the parent's may keep the pipe open
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the parent, which stops us
    signal.signal(signal.SIGTERM, signal.SIG_DFL)  # not the parent's handler, forked with us
    _die_with(parent)
    try:
        reader.recv_bytes()
    except EOFError:  # the parent is gone or gave up
        return
    os.nice(10)  # the audio threads come first
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
