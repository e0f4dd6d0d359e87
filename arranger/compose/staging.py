"""Staged candidate search: rank a song's K candidates where the form stops saying anything new,
then finish only the chosen ones.

With K candidates per song, generating all K rows to the song's end wastes most of the work
when the song has a form: later sections replay earlier ones exactly
(:func:`arranger.compose.sections.repeat_source`), and bars where fewer layers play (a drumless
outro) are not judged by the checks (:meth:`arranger.compose.sections.Form.judged_bars`). So
the batch is walked to the *stage bar* (:func:`stage_bar`), ranked there, narrowed to the rows
chosen (:meth:`Walk.take`) and walked on to the end.

Rows are independent (each its own random stream), so a row finished in the narrowed batch
writes the tokens it would have written in the whole K-row batch: staging changes which
candidate is chosen (ranked on the prefix), not what a candidate is. (Up to float rounding:
OpenBLAS chooses its kernel by batch size, and a row's logits at batch 1, or at a batch that is
not a multiple of 4 for the melody's 51-token head, differ in their last bits; a token changes
only if a draw lands within that of a boundary. The same song and seed still give the same
bytes: the batches are the same each time.)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from arranger.compose.plan import Forced, Plan
from arranger.compose.sampling import RowStreams
from arranger.compose.threads import keep_pace
from arranger.compose.voices import VOICES, Voice, song_context
from arranger.score import STEPS_PER_BAR
from tracks.common import Context
from tracks.layers import MODEL_LAYERS

if TYPE_CHECKING:
    import torch

    from arranger.compose.coordinator import Models


# Drum takes per song (of K) that the prefix ranking keeps for a second look on the whole song
# (joint rows when the drums are not ranked apart). On the prefix a groove of exactly 3 bars in
# 4 passes, and the new fills of the replayed sections can tip it below. Keeping one, 16 songs
# of dusty-boom-bap and worn-tape passed the groove check 0.81 and 0.88 (1.00 ranked on the
# whole song); two, worn-tape 0.94; three (or four), 1.00 as before, for every preset at seeds
# 0 and 1, 32 and 56 bars. Each row kept costs: the shipped models step one row in 0.2 ms (a
# matrix-vector product), 2-4 rows in 0.4-0.5 ms, 8 in 0.6 ms, 24 in 0.9-1.0 ms.
SURVIVORS = 3


def stage_bar(plan: Plan, k: int) -> int:
    """How many bars all K candidates of a song are written for before they are ranked.

    It is the end of the last bar that the checks judge and that has material of its own: some
    model layer plays there and does not repeat an earlier bar (``form.source[layer][bar] <
    0``). What follows is replayed or unjudged, so the ranking would learn little from it.
    Without a form, or with one candidate, it is the song's end (nothing is staged).
    """
    bars, form = plan.song.bars, plan.form
    if form is None or k <= 1:
        return bars
    own = np.zeros(bars, bool)
    for layer in MODEL_LAYERS:
        own |= form.plays[layer] & (form.source[layer] < 0)
    decisive = np.flatnonzero(own & form.judged_bars())
    return int(decisive[-1]) + 1 if len(decisive) else bars


def kept_rows(rows: Sequence[int], drum_rows: Sequence[int]
              ) -> tuple[list[int], list[int], list[int]]:
    """The rows to walk on (``rows`` and ``drum_rows`` together, ascending, each once), and
    where ``rows`` and ``drum_rows`` sit among them.

    A row chosen only for its drums is walked on whole: the layers share each row's random
    stream, so its drums draw where they do only if its chords and melody draw too.
    """
    keep = sorted(set(rows) | set(drum_rows))
    at = {r: i for i, r in enumerate(keep)}
    return keep, [at[r] for r in rows], [at[r] for r in drum_rows]


@dataclass
class Walk:
    """A batch being written step by step: the voices (chords, melody, drums), the shared
    context and the rows' random streams. Everything a row's song depends on lives here."""

    voices: list[Voice]
    ctx: Context
    streams: RowStreams

    @classmethod
    def start(cls, models: Models, plan: Plan, forced: Forced, seed: int,
              device: torch.device | None, candidates: int) -> Walk:
        """A walk at step 0, the drums' pre-roll played (call under ``no_grad(device)``)."""
        batch = forced.melody.shape[0]
        ctx = song_context(plan, batch, plan.song.bars)
        # Row r samples as a song of seed + r alone (with candidates: see RowStreams).
        streams = RowStreams(seed, batch, candidates)
        voices = [VOICES[layer](getattr(models, layer), plan, forced, device, candidates > 1)
                  for layer in MODEL_LAYERS]
        _, _, drums = voices
        drums.preroll(streams)
        return cls(voices, ctx, streams)

    def run(self, start: int, stop: int) -> None:
        """Write 16th steps ``start`` .. ``stop - 1``."""
        for t in range(start, stop):
            if t % STEPS_PER_BAR == 0:
                keep_pace()  # a second BLAS thread whose core got taken is let go
            for voice in self.voices:  # chords (on beats), then the melody, then the drums
                voice.step(t, self.ctx, self.streams)

    def take(self, rows: Sequence[int]) -> None:
        """Keep only these rows (in this order) in every voice, the context and the streams:
        the walk goes on with them as the whole batch would have."""
        for voice in self.voices:
            voice.take(rows)
        self.ctx.take(rows)
        self.streams.take(rows)
