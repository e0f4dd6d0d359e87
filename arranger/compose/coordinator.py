"""The coordinator: walks the bar-aligned 16th grid and interleaves the layer models.

At each step the chord model speaks first (on beats), then the melody (hearing the chord it sits
on), then the drums (hearing the bar, the chord change and the melody onset). Each model carries its
LSTM (h, c) state from step to step, so a song costs one LSTM step per token. A batch of
variations is generated at once. Forced tokens (a primer, the layers kept when regenerating one,
the loop and the ending) are fed through the same path, so the models hear them too.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field
from functools import partial
from typing import TYPE_CHECKING

import numpy as np

from arranger.compose import density, sections
from arranger.compose.candidates import choose_rows, style_distance
from arranger.compose.plan import FREE, Forced, Plan
from arranger.compose.sampling import RowStreams, no_grad
from arranger.compose.voices import VOICES, song_context
from arranger.evaluation.checks import expect_of
from arranger.score import BEATS_PER_BAR, STEPS_PER_BAR, Score
from tracks import bass as bass_track
from tracks import chords as chord_track
from tracks import drums as drum_track
from tracks import melody as melody_track
from tracks.layers import LAYER_SPECS, MODEL_LAYERS
from tracks.weights_file import LayerWeights

if TYPE_CHECKING:
    import torch


@dataclass
class Models:
    """The three layer models (weights + vocabularies), one field per model layer."""

    chords: LayerWeights
    melody: LayerWeights
    drums: LayerWeights

    @property
    def drum_vocab(self) -> drum_track.DrumVocab:
        return drum_track.DrumVocab.from_list(self.drums.vocab)


@dataclass
class Generated:
    """Token streams of a generated batch and the log-probability of each forced token."""

    chords: np.ndarray
    melody: np.ndarray  # in the model's register: the song's melody is ``melody_shift`` lower
    drums: np.ndarray
    forced_logp: dict[str, np.ndarray]
    melody_shift: int = 0
    # Nats of all tokens per row, per layer; only generated with candidates to rank.
    loglik: dict[str, np.ndarray] = field(default_factory=dict)

    def take(self, rows: list[int], drum_rows: list[int]) -> Generated:
        """The batch of these rows (the drums' from ``drum_rows``)."""
        def pick(layer: str, a: np.ndarray) -> np.ndarray:
            return a[drum_rows if layer == "drums" else rows]

        return Generated(self.chords[rows], self.melody[rows], self.drums[drum_rows],
                         {k: pick(k, v) for k, v in self.forced_logp.items()},
                         self.melody_shift, {k: pick(k, v) for k, v in self.loglik.items()})


def generate_tokens(models: Models, plan: Plan, forced: Forced, seed: int,
                    device: torch.device | None = None, candidates: int = 1) -> Generated:
    """Run the coordinated generation for a batch; ``forced`` fixes tokens where not FREE.

    With ``device`` None the LSTMs step in numpy (:mod:`tracks.inference`, fastest on a CPU);
    otherwise PyTorch runs them on that device ("cpu" or "cuda").
    """
    batch, steps = forced.melody.shape
    ctx = song_context(plan, batch, plan.song.bars)
    # Row r samples as a song of seed + r alone (with candidates: see RowStreams).
    streams = RowStreams(seed, batch, candidates)
    voices = [VOICES[layer](getattr(models, layer), plan, forced, device, candidates > 1)
              for layer in MODEL_LAYERS]
    chords, melody, drums = voices
    with no_grad(device):
        drums.preroll(streams)
        for t in range(steps):
            for voice in voices:  # chords (on beats), then the melody, then the drums
                voice.step(t, ctx, streams)
    return Generated(chords.out, melody.out, drums.out, {v.layer: v.logp for v in voices},
                     melody.shift, {v.layer: v.loglik for v in voices if v.loglik is not None})


# The token of each model layer that plays nothing: where a section leaves a layer out.
SILENT_TOKENS = {"chords": chord_track.N_TOKEN, "melody": melody_track.REST_TOKEN,
                 "drums": drum_track.SILENCE_TOKEN}


def ending_forced(forced: Forced, plan: Plan, models: Models) -> None:
    """Force (in place) what the plan fixes: the last bar (the tonic chord, a final melody note
    held, a kick + crash, silence), then silence where a section leaves a layer out."""
    _force_ending(forced, plan, models)
    sections.arrange(forced, plan.form, SILENT_TOKENS)


def _force_ending(forced: Forced, plan: Plan, models: Models) -> None:
    song = plan.song
    if not song.ending or song.bars < 2:
        return
    first_beat, first_step = (song.bars - 1) * BEATS_PER_BAR, (song.bars - 1) * STEPS_PER_BAR
    free = forced.chords[:, first_beat:] == FREE
    forced.chords[:, first_beat:][free] = chord_track.token_of(plan.final_chord)
    crash = models.drum_vocab.token(drum_track.drum_mask("kick", "crash"), drum_track.ACCENT)
    last = forced.drums[:, first_step:]
    last[last == FREE] = drum_track.SILENCE_TOKEN
    forced.drums[:, first_step] = np.where(forced.drums[:, first_step] == drum_track.SILENCE_TOKEN,
                                           crash, forced.drums[:, first_step])
    mel = forced.melody[:, first_step:]
    mel[:, 1:8][mel[:, 1:8] == FREE] = melody_track.HOLD_TOKEN
    mel[:, 8:][mel[:, 8:] == FREE] = melody_track.REST_TOKEN


def to_scores(gen: Generated, plan: Plan, models: Models, bass: bool = True) -> list[Score]:
    """Decode a generated batch into scores (bass derived from the chords unless ``bass`` is
    False); the drums as the preset's kit plays them (:func:`tracks.drums.on_kit`)."""
    scores = []
    vocab = models.drum_vocab
    velocities = drum_track.VelocityTable.from_card(models.drums.card)  # None: by level
    for i in range(gen.melody.shape[0]):
        masks, levels = drum_track.decode(gen.drums[i], vocab)
        masks = drum_track.on_kit(masks, plan.song.drum_kit).astype(masks.dtype)
        hits = (None if velocities is None else
                velocities.hit_velocities(masks, levels, plan.song.drum_style))
        score = Score(plan.song.bars, tempo_bpm=plan.song.tempo_bpm, key=plan.key,
                      swing=plan.song.swing,
                      chords=chord_track.decode(gen.chords[i]),
                      melody=_unshift(melody_track.decode(gen.melody[i]), gen.melody_shift),
                      drums=masks, drum_velocity=levels, drum_hit_velocity=hits,
                      style=plan.song.drum_style)
        if bass:
            score.bass = sections.arranged_bass(bass_track.bass_line(
                score, seed=plan.bass_seed, loop_bars=plan.song.loop_bars), plan.form)
        scores.append(score)
    return scores


def _unshift(line: np.ndarray, shift: int) -> np.ndarray:
    line = line.copy()
    line[line >= 0] -= shift
    return line


def compose(models: Models, plan: Plan, *, seed: int, variations: int = 1,
            forced: Forced | None = None, device: torch.device | None = None) -> list[Score]:
    """Write ``variations`` songs following ``plan``, generated as one batch.

    ``device`` None (the default) is the fast CPU path; see :func:`generate_tokens`.
    """
    forced = forced if forced is not None else Forced.free(variations, plan.song.bars)
    ending_forced(forced, plan, models)
    k = plan.song.candidates
    many = Forced(*(np.repeat(a, k, axis=0) for a in (forced.chords, forced.melody,
                                                       forced.drums)))
    with generation_mode():
        gen = generate_tokens(models, plan, many, seed, device, candidates=k)
    if k > 1:
        gen = keep_best(gen, plan, models, k)
    return to_scores(gen, plan, models)


def keep_best(gen: Generated, plan: Plan, models: Models, k: int) -> Generated:
    """Of every song's ``k`` candidate rows, the one :mod:`arranger.compose.candidates` ranks
    first (the drums chosen apart when the drum model is blind to chords and melody)."""
    # A drumless intro is no missing groove: the checks judge the bars where most layers play.
    scores = [sections.judged(s, plan.form) for s in to_scores(gen, plan, models, bass=False)]
    song = plan.song
    tokens = {"chords": song.bars * BEATS_PER_BAR, "melody": song.bars * STEPS_PER_BAR,
              "drums": song.bars * STEPS_PER_BAR}
    loglik = {layer: gen.loglik[layer] / tokens[layer] for layer in gen.loglik}
    # A drum density asks for more (or fewer) hits than the style plays: it is not ranked then.
    steered = density.bias_nats(plan.density, "drums") != 0.0
    style = (None if not song.drum_style or steered else
             partial(style_distance, style=song.drum_style, kit=song.drum_kit))
    blind = set(LAYER_SPECS["drums"].unknowable) <= set(models.drums.inference.blind_conditions)
    rows, drum_rows = choose_rows(scores, loglik, k, expect_of(song), style, blind)
    return gen.take(rows, drum_rows)


def default_blas_threads() -> int:
    """Two BLAS threads where a second core is free, else one.

    On a busy machine the second thread waits for a core at every product: 64 bars took
    25-31 s on two threads at load 10 on 2 cores, 2 s on one. The count never changes the
    results (see :class:`generation_mode`), so it may follow the load.
    """
    cores = len(os.sched_getaffinity(0))
    free = cores - os.getloadavg()[0]
    return min(2, cores) if free >= 1.0 else 1


class generation_mode:
    """One PyTorch thread, no oneDNN and at most two BLAS threads while generating.

    Step-by-step LSTM calls through oneDNN are ~30x slower on this CPU build, and one PyTorch
    thread is the fastest at batch sizes this small. numpy's products, though, run ~1.3x faster
    on two threads even at batch 1 (the weights stream through two cores' caches). Results do
    not depend on the thread count: BLAS shares a product out by output rows and columns, never
    splitting a sum, so every output is added up in the same order (a test checks it).
    PyTorch is only configured when something already imported it (its device path).
    """

    def __init__(self, blas_threads: int | None = None) -> None:
        self.blas_threads = blas_threads or default_blas_threads()

    def __enter__(self) -> None:
        from threadpoolctl import threadpool_limits

        self.torch = sys.modules.get("torch")
        if self.torch is not None:
            self.saved = self.torch.get_num_threads(), self.torch.backends.mkldnn.enabled
            self.torch.set_num_threads(1)
            self.torch.backends.mkldnn.enabled = False
        self.blas = threadpool_limits(self.blas_threads)

    def __exit__(self, *exc) -> None:
        if self.torch is not None:
            self.torch.set_num_threads(self.saved[0])
            self.torch.backends.mkldnn.enabled = self.saved[1]
        self.blas.restore_original_limits()
