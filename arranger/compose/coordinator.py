"""The coordinator: walks the bar-aligned 16th grid and interleaves the layer models.

At each step the chord model speaks first (on beats), then the melody (hearing the chord it sits
on), then the drums (hearing the bar, the chord change and the melody onset). Each model carries its
LSTM (h, c) state from step to step, so a song costs one LSTM step per token. A batch of
variations is generated at once. Forced tokens (a primer, the layers kept when regenerating one,
the loop and the ending) are fed through the same path, so the models hear them too.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import partial
from typing import TYPE_CHECKING

import numpy as np

from arranger.compose import density, sections
from arranger.compose.candidates import choose_rows, style_distance
from arranger.compose.plan import FREE, Forced, Plan
from arranger.compose.sampling import no_grad
from arranger.compose.staging import SURVIVORS, Walk, kept_rows, stage_bar
from arranger.compose.threads import generation_mode
from arranger.compose.voices import Voice
from arranger.evaluation.checks import expect_of
from arranger.score import BEATS_PER_BAR, STEPS_PER_BAR, Score
from tracks import bass as bass_track
from tracks import chords as chord_track
from tracks import drums as drum_track
from tracks import melody as melody_track
from tracks.layers import LAYER_SPECS
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

    def until(self, bars: int) -> Generated:
        """The first ``bars`` bars of every row (log-probabilities as they are: a generation
        stopped there holds just those bars' nats)."""
        beats, steps = bars * BEATS_PER_BAR, bars * STEPS_PER_BAR
        return Generated(self.chords[:, :beats], self.melody[:, :steps], self.drums[:, :steps],
                         self.forced_logp, self.melody_shift, self.loglik)

    @classmethod
    def of(cls, voices: list[Voice]) -> Generated:
        """What the voices (chords, melody, drums) have written so far."""
        chords, melody, drums = voices
        return cls(chords.out, melody.out, drums.out, {v.layer: v.logp for v in voices},
                   melody.shift, {v.layer: v.loglik for v in voices if v.loglik is not None})


def generate_tokens(models: Models, plan: Plan, forced: Forced, seed: int,
                    device: torch.device | None = None, candidates: int = 1) -> Generated:
    """Run the coordinated generation for a batch; ``forced`` fixes tokens where not FREE.

    With ``device`` None the LSTMs step in numpy (:mod:`tracks.inference`, fastest on a CPU);
    otherwise PyTorch runs them on that device ("cpu" or "cuda").
    """
    with no_grad(device):
        walk = Walk.start(models, plan, forced, seed, device, candidates)
        walk.run(0, forced.melody.shape[1])
    return Generated.of(walk.voices)


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
    """Write ``variations`` songs following ``plan``, generated as one batch (with
    ``plan.song.candidates`` per song, the best kept: :func:`best_candidates`).

    ``device`` None (the default) is the fast CPU path; see :func:`generate_tokens`.
    """
    forced = forced if forced is not None else Forced.free(variations, plan.song.bars)
    ending_forced(forced, plan, models)
    k = plan.song.candidates
    many = Forced(*(np.repeat(a, k, axis=0) for a in (forced.chords, forced.melody,
                                                       forced.drums)))
    with generation_mode():
        gen = best_candidates(models, plan, many, seed, device, k)
    return to_scores(gen, plan, models)


def best_candidates(models: Models, plan: Plan, forced: Forced, seed: int,
                    device: torch.device | None, k: int) -> Generated:
    """Every song's best of ``k`` candidates (rows ``i * k .. i * k + k - 1`` of ``forced``).

    All ``k`` rows are written up to the stage bar (:func:`arranger.compose.staging.stage_bar`:
    beyond it the form only replays or is not judged), the best few on those bars
    (:func:`survivor_rows`) write on to the end, each exactly as it would have in the whole
    batch, and their whole songs are ranked as all ``k`` would have been.
    """
    stage = stage_bar(plan, k)
    if stage >= plan.song.bars or k <= SURVIVORS:  # nothing to save: the whole song ranks
        gen = generate_tokens(models, plan, forced, seed, device, candidates=k)
        return gen if k == 1 else keep_best(gen, plan, models, k)
    with no_grad(device):
        walk = Walk.start(models, plan, forced, seed, device, k)
        walk.run(0, stage * STEPS_PER_BAR)
        prefix = Generated.of(walk.voices).until(stage)
        keep, rows, drum_rows = survivor_rows(prefix, plan, models, k, stage, SURVIVORS)
        walk.take(keep)
        walk.run(stage * STEPS_PER_BAR, forced.melody.shape[1])
    return keep_best(Generated.of(walk.voices).take(rows, drum_rows), plan, models, SURVIVORS)


def survivor_rows(prefix: Generated, plan: Plan, models: Models, k: int, stage: int,
                  survivors: int) -> tuple[list[int], list[int], list[int]]:
    """The rows to write on from bar ``stage`` (``prefix`` holds the bars before), and where
    the survivors' chords + melody and drums sit among them: ``survivors`` per song, best
    first on the prefix (see :func:`arranger.compose.staging.kept_rows`).

    With the drums ranked apart only they get a second look: after the stage the chords and
    melody replay exactly, so the prefix judges them as the song does, but the drums' fills
    there are new (a groove of exactly 3 bars in 4 on the prefix can fall below on the song).
    """
    rows, drum_rows = best_rows(prefix, plan, models, k, stage, survivors)
    if drums_apart(models):  # every survivor's chords and melody: the song's best
        rows = [rows[i - i % survivors] for i in range(len(rows))]
    return kept_rows(rows, drum_rows)


def keep_best(gen: Generated, plan: Plan, models: Models, k: int) -> Generated:
    """Of every song's ``k`` candidate rows, the one :mod:`arranger.compose.candidates` ranks
    first (the drums chosen apart when the drum model is blind to chords and melody)."""
    return gen.take(*best_rows(gen, plan, models, k))


def best_rows(gen: Generated, plan: Plan, models: Models, k: int, bars: int | None = None,
              keep: int = 1) -> tuple[list[int], list[int]]:
    """The rows :func:`keep_best` keeps: (rows for chords and melody, rows for the drums),
    ranked on the song's first ``bars`` bars (all by default), which ``gen`` holds; the
    ``keep`` best per song, best first (see :func:`arranger.compose.candidates.choose_rows`)."""
    song = plan.song
    bars = song.bars if bars is None else bars
    head = plan if bars == song.bars else plan.with_song(bars=bars)  # the form stays the song's
    scores = [sections.judged(s, plan.form, bars)
              for s in to_scores(gen, head, models, bass=False)]
    tokens = {"chords": bars * BEATS_PER_BAR, "melody": bars * STEPS_PER_BAR,
              "drums": bars * STEPS_PER_BAR}
    loglik = {layer: gen.loglik[layer] / tokens[layer] for layer in gen.loglik}
    # A drum density asks for more (or fewer) hits than the style plays: it is not ranked then.
    steered = density.bias_nats(plan.density, "drums") != 0.0
    style = (None if not song.drum_style or steered else
             partial(style_distance, style=song.drum_style, kit=song.drum_kit))
    return choose_rows(scores, loglik, k, expect_of(song), style, drums_apart(models), keep)


def drums_apart(models: Models) -> bool:
    """Whether a song's drums may come from another candidate than its chords and melody: the
    drum model is blind to them (the shipped one is), so its drums do not depend on them."""
    return set(LAYER_SPECS["drums"].unknowable) <= set(models.drums.inference.blind_conditions)
