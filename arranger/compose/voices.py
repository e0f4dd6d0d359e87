"""The three voices the coordinator steps: chords, melody and drums.

Each voice owns its layer model (a :class:`Stepper`), its forced tokens, what it wrote, the
log-probability of its forced tokens, and the policy of its layer. At every 16th step the
coordinator asks each in turn; a voice reads what it hears from the shared context and writes
its own tokens there for the voices after it.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from arranger.compose import density, sections
from arranger.compose.phrasing import (
    breath_lean,
    breath_mask,
    chord_tone_mask,
    gap_over,
    phrase_rules,
)
from arranger.compose.plan import (
    FREE,
    PHRASE_BARS,
    Forced,
    Plan,
    chord_source,
    drum_source,
    repeat,
)
from arranger.compose.sampling import RowStreams, Stepper, choose, sample, token_logp
from arranger.evaluation.checks import LOOP_WINDOW_BARS, MIN_LOOP_CHORDS
from arranger.score import BEATS_PER_BAR, STEPS_PER_BAR, STEPS_PER_BEAT
from tracks import chords as chord_track
from tracks import drums as drum_track
from tracks import melody as melody_track
from tracks.common import BOS, Context
from tracks.layers import LAYER_SPECS
from tracks.weights_file import LayerWeights

if TYPE_CHECKING:
    import torch


class Voice:
    """What every voice holds: its stepper, forced tokens, output and forced log-probability."""

    layer = ""

    def __init__(self, weights: LayerWeights, plan: Plan, forced: Forced,
                 device: torch.device | None, loglik: bool = True) -> None:
        self.plan = plan
        self.forced = getattr(forced, self.layer)
        self.out = np.zeros_like(self.forced)
        self.logp = np.zeros(len(self.forced))
        # Nats of every token, forced or sampled: they rank candidates, so without any
        # (``loglik`` False) they are not computed, and stay None.
        self.loglik = np.zeros(len(self.forced)) if loglik else None
        self.stepper = Stepper(weights, len(self.forced), plan.layer_sampling(self.layer),
                               LAYER_SPECS[self.layer], device)

    def step(self, t: int, ctx: Context, streams: RowStreams) -> None:
        """Write this voice's token(s) of 16th step ``t`` into ``out`` and ``ctx``."""
        raise NotImplementedError

    def take(self, rows: Sequence[int]) -> None:
        """Keep only these batch rows (in this order) of everything this voice holds per row.

        Rows are independent, so a row taken on writes what it would have in the whole batch.
        Subclasses add their own per-row state.
        """
        rows = list(rows)
        self.forced, self.out, self.logp = self.forced[rows], self.out[rows], self.logp[rows]
        if self.loglik is not None:
            self.loglik = self.loglik[rows]
        self.stepper.take(rows)

    def resting_steps(self) -> np.ndarray | None:
        """Bool [steps]: where the sections leave this layer out (None without sections)."""
        form = self.plan.form
        return None if form is None else np.repeat(~form.plays[self.layer], STEPS_PER_BAR)

    def _choose(self, logits: np.ndarray, mask: np.ndarray, fixed: np.ndarray,
                streams: RowStreams) -> np.ndarray:
        tokens, logp = choose(logits, mask, fixed, self.stepper.sampling, streams)
        if logp is not None:  # (None: nothing was forced)
            self.logp = self.logp + logp
        if self.loglik is not None:
            self.loglik = self.loglik + token_logp(logits, tokens)
        return tokens


class ChordVoice(Voice):
    """A chord per beat: the loop, the preset's colour, and the model fed its own chords."""

    layer = "chords"

    def __init__(self, weights: LayerWeights, plan: Plan, forced: Forced,
                 device: torch.device | None, loglik: bool = True) -> None:
        super().__init__(weights, plan, forced, device, loglik)
        mask = self.stepper.allowed.copy()
        mask[chord_track.N_TOKEN] = False  # a lo-fi song always has a chord
        # Only chords that keep to the key and mode, as the model wrote them and as coloured.
        self.mask = (mask & chord_track.scale_mask(plan.song.chord_color, plan.key.mode))[None]
        self.color = chord_track.recolor_table(plan.song.chord_color, plan.key.mode)
        self.window_bars = min(plan.song.loop_bars or LOOP_WINDOW_BARS, LOOP_WINDOW_BARS)
        self.slots = chord_track.change_slots(self.window_bars, MIN_LOOP_CHORDS)
        self.own = np.zeros_like(self.forced)  # as the chord model wrote them (uncoloured)
        self.change_nats = density.bias_nats(plan.density, self.layer)

    def step(self, t: int, ctx: Context, streams: RowStreams) -> None:
        if t % STEPS_PER_BEAT:
            return
        b = t // STEPS_PER_BEAT
        cond, multi = chord_track.conditions(ctx, b, b + 1)
        source = chord_source(self.plan, b)
        loop = repeat(self.forced, self.out, b, source)
        logits = self.stepper.logits(cond, multi)
        if b:  # density: keeping the chord of the beat before is less (or more) likely
            logits = density.lean_off(logits, self.own[:, b - 1], self.change_nats)
        tok = self._choose(logits, self._moving(b), loop, streams)
        # The colour re-spells sampled chords and the melody hears the chord as written, but
        # the chord model goes on from its own: fed a maj9 it never wrote (nor saw much), it
        # would take each beat for a new chord and change chords every beat.
        sampled = loop == FREE
        written = np.where(sampled, self.color[tok], tok)
        own = np.where(sampled, tok, repeat(self.forced, self.own, b, source))
        self.out[:, b], self.own[:, b] = written, own
        ctx.chord_root[:, b], ctx.chord_quality[:, b] = chord_track.context_values(written)
        self.stepper.advance(own)

    def take(self, rows: Sequence[int]) -> None:
        super().take(rows)
        self.own = self.own[list(rows)]

    def _moving(self, beat: int) -> np.ndarray:
        """Bool [B or 1, V]: the chords allowed, of those that keep every 4-bar window (of the
        loop, if shorter) holding at least MIN_LOOP_CHORDS chords
        (:func:`tracks.chords.move_mask`, which masks nothing off its change slots)."""
        window = self.window_bars * BEATS_PER_BAR
        start = beat // window * window
        if beat - start not in self.slots:
            return self.mask
        return self.mask & chord_track.move_mask(self.out[:, start:beat], beat - start,
                                                 self.window_bars, MIN_LOOP_CHORDS)


GAP_PRESSURE = 0.4  # nats taken off the rest and hold logits per step beyond the limit


def gap_pressure(logits: np.ndarray, over: np.ndarray) -> np.ndarray:
    """Make a long stretch without a new melody note ever less likely to go on.

    Sampling favours the token that just happened: after a few bars of rests (or of one held
    note) the melody model rarely finds its way back, and a lo-fi loop wants its tune. Past
    its limit (``over`` int [B] >= 0: steps past it, :func:`arranger.compose.phrasing.gap_over`)
    the rest and hold logits drop linearly, so the model still picks where and what to play.
    Returns ``logits`` itself when nothing changes, else a new array.
    """
    if (over < 0).all():
        return logits
    logits = logits.copy()
    penalty = GAP_PRESSURE * np.maximum(over + 1, 0)
    logits[:, melody_track.REST_TOKEN] -= penalty
    logits[:, melody_track.HOLD_TOKEN] -= penalty
    return logits


def final_note_mask(plan: Plan) -> np.ndarray:
    """Melody tokens allowed on the last bar's downbeat: tones of the final chord."""
    mask = np.zeros(melody_track.VOCAB_SIZE, bool)
    tonic = plan.final_chord.pitch_classes()
    for p in range(melody_track.LOW, melody_track.HIGH):
        mask[melody_track.FIRST_PITCH_TOKEN + p - melody_track.LOW] = p % 12 in tonic
    return mask


class MelodyVoice(Voice):
    """A note, hold or rest per step: the song's range moved to the model's register, the
    melody form, gap pressure and a chord tone to end on."""

    layer = "melody"

    def __init__(self, weights: LayerWeights, plan: Plan, forced: Forced,
                 device: torch.device | None, loglik: bool = True) -> None:
        super().__init__(weights, plan, forced, device, loglik)
        low, high = (p - plan.key.tonic for p in plan.song.melody_range)
        # The model writes in the register it learnt; the song's range is whole octaves away.
        self.shift = melody_track.register_shift(low, high + 1)
        self.low, self.high = low + self.shift, high + 1 + self.shift
        self.forced = np.where(self.forced == FREE, FREE,
                               melody_track.shift_tokens(self.forced, self.shift))
        song = plan.song
        self.final_step = (song.bars - 1) * STEPS_PER_BAR if song.ending and song.bars > 1 else -1
        self.final_mask = final_note_mask(plan)
        # Steps since the last note-on. A melody starting, or coming back in where the sections
        # left it out, has waited its gap: heard rests breed rests, so it is drawn in at once.
        self.max_gap = plan.max_gap_steps
        self.waiting = np.full(len(self.forced), self.max_gap, np.int64)
        self.resting = self.resting_steps()  # where the melody rests, no gap is counted
        self.settled = np.ones(len(self.forced), bool)  # the last note-on was a chord tone
        self.note_nats = density.bias_nats(plan.density, self.layer)
        tokens = np.arange(len(self.stepper.allowed))
        self.notes = tokens >= melody_track.FIRST_PITCH_TOKEN
        # Per token: the next step's mask after it (token_mask), and its decoded value.
        self.masks = melody_track.token_mask(tokens, self.low, self.high)
        self.decoded = melody_track.decode(tokens)
        self.beat_conditions: tuple[np.ndarray, np.ndarray] | None = None
        self.tones: np.ndarray | None = None  # bool [B, V]: the beat's chord tones

    def step(self, t: int, ctx: Context, streams: RowStreams) -> None:
        i = t % STEPS_PER_BEAT
        if not i:  # the melody hears only the chords: a beat's conditions are known at its start
            self._hear_beat(ctx, t)
        beat_cond, beat_multi = self.beat_conditions
        mask = self.masks[self.stepper.prev]  # a new array
        if t == self.final_step:
            mask &= self.final_mask
        logits = self._leaned(t, self.stepper.logits(beat_cond[:, i : i + 1],
                                                     beat_multi[:, i : i + 1]))
        again = sections.repeat_source(self.plan.form, self.layer, t, STEPS_PER_BAR)
        if again is not None:  # a repeated section replays its melody exactly
            fixed = repeat(self.forced, self.out, t, again)
        else:
            fixed, mask = phrase_rules(self.plan, t, self.forced, self.out, mask, self.tones)
            mask = breath_mask(self.out, t, self.settled, mask)
        tok = self._choose(logits, mask, fixed, streams)
        note = tok >= melody_track.FIRST_PITCH_TOKEN
        if self.max_gap:  # (only the gap rules read it)
            self.waiting = np.where(note, 0, self.waiting + 1)
        self.settled = np.where(note, self.tones[np.arange(len(tok)), tok], self.settled)
        if self.resting is not None and self.resting[t]:
            self.waiting[:], self.settled[:] = self.max_gap, True
        self.out[:, t] = tok
        ctx.melody[:, t] = self.decoded[tok]
        self.stepper.advance(tok)

    def take(self, rows: Sequence[int]) -> None:
        super().take(rows)
        rows = list(rows)
        self.waiting, self.settled = self.waiting[rows], self.settled[rows]
        if self.beat_conditions is not None:
            self.beat_conditions = tuple(None if a is None else a[rows]
                                         for a in self.beat_conditions)
            self.tones = self.tones[rows]

    def _hear_beat(self, ctx: Context, t: int) -> None:
        """The conditions of the beat starting at step ``t``, and the tones of its chord
        (:func:`arranger.compose.phrasing.chord_tone_mask`): its steps share the chord."""
        self.beat_conditions = melody_track.conditions(ctx, t, t + STEPS_PER_BEAT)
        self.tones = chord_tone_mask(self.beat_conditions[1][:, 0])

    def _leaned(self, t: int, logits: np.ndarray) -> np.ndarray:
        """The step's logits with the gap pressure, the density and the breath lean on (in
        this order: float sums are added as they always were)."""
        if self.max_gap:  # (off, the gap rules change nothing)
            logits = gap_pressure(logits, gap_over(self.plan, t, self.waiting))
        logits = density.lean(logits, self.notes, self.note_nats)
        return breath_lean(self.plan, t, self.out, logits, self.notes)


DRUM_PREROLL_BARS = 2


def song_context(plan: Plan, batch: int, bars: int) -> Context:
    """An empty context of ``bars`` for ``batch`` songs of ``plan``: its mode, drum style and
    tempo known, every layer still unknown."""
    song = plan.song
    return Context.empty(batch, bars, plan.key.mode, song.drum_style, song.tempo_bpm)


@functools.lru_cache(maxsize=16)
def kit_map(vocab: drum_track.DrumVocab, keep: int) -> np.ndarray:
    """Token -> the token a kit playing only the drums of mask ``keep`` plays instead: the
    same hits without the missing drums (read-only; built once per vocabulary and kit).

    The model samples its groove as it learnt it and the kit drops what it lacks (hat + kick
    becomes kick, a lone hat becomes silence), so a smaller kit really plays less.
    """
    masks, levels = vocab.mask_of(np.arange(vocab.size)), vocab.level_of(np.arange(vocab.size))
    mapped = [vocab.token(int(m) & keep, int(lv)) for m, lv in zip(masks, levels, strict=True)]
    mapped[BOS] = BOS
    table = np.array(mapped, dtype=np.int64)
    table.flags.writeable = False
    return table


class DrumVoice(Voice):
    """Drum hits per step: an unheard pre-roll, the drum loop, crashes only where a phrase
    starts, and the preset's kit."""

    layer = "drums"

    def __init__(self, weights: LayerWeights, plan: Plan, forced: Forced,
                 device: torch.device | None, loglik: bool = True) -> None:
        super().__init__(weights, plan, forced, device, loglik)
        vocab = drum_track.DrumVocab.from_list(weights.vocab)
        self.mask = self.stepper.allowed[None]
        self.no_crash = kit_map(vocab, drum_track.ALL_DRUMS & ~drum_track.drum_mask("crash"))
        self.hits = np.arange(len(self.stepper.allowed)) > drum_track.SILENCE_TOKEN
        self.resting = self.resting_steps()
        self.hit_nats = density.bias_nats(plan.density, self.layer)
        # Blind to all the other layers write, the model hears at a step only what the song
        # fixes from the start (position, and what the context holds before any step): the
        # whole song's conditions are then taken at once, on the first step.
        self.foresees = set(LAYER_SPECS[self.layer].unknowable) <= set(self.stepper.blind)
        self.song_conditions: np.ndarray | None = None

    def preroll(self, streams: RowStreams) -> None:
        """Let the drummer play two bars, unheard, before the song starts.

        The drum model learnt from whole performances, which open with count-ins, lone crashes
        and sparse intros; the song's first bars become its looped groove, so starting cold too
        often loops an intro. The two bars sit at the end of a phrase (the second one where
        fills go), so the song starts as a groove does after a fill.
        """
        # No chords or melody heard (the drums are blind to them); the song's style and tempo.
        ctx = song_context(self.plan, len(self.forced), PHRASE_BARS)
        start = (PHRASE_BARS - DRUM_PREROLL_BARS) * STEPS_PER_BAR
        cond, _ = drum_track.conditions(ctx, start, PHRASE_BARS * STEPS_PER_BAR)  # all known
        for i in range(cond.shape[1]):
            logits = self.stepper.logits(cond[:, i : i + 1], None)
            self.stepper.advance(sample(logits, self.mask, self.stepper.sampling,
                                        streams.uniform()))

    def step(self, t: int, ctx: Context, streams: RowStreams) -> None:
        if self.resting is not None and self.resting[t]:
            # Where the sections leave the drums out the drummer sits out: the model is not
            # stepped, so it comes back in where it stopped (after an intro: as a song starts,
            # after the pre-roll), with a groove rather than the sparse start that hearing
            # bars of its own silence leads it to.
            self.out[:, t] = drum_track.SILENCE_TOKEN
            return
        cond = self._conditions(ctx, t)
        # A repeated crash only where a phrase starts (a repeated section replays exactly).
        source = drum_source(self.plan, t)
        exact = source == sections.repeat_source(self.plan.form, self.layer, t, STEPS_PER_BAR)
        remap = None if exact or t % (PHRASE_BARS * STEPS_PER_BAR) == 0 else self.no_crash
        fixed = repeat(self.forced, self.out, t, source, remap)
        logits = density.lean(self.stepper.logits(cond, None, blinded=True), self.hits,
                              self.hit_nats)
        tok = self._choose(logits, self.mask, fixed, streams)
        self.out[:, t] = tok
        self.stepper.advance(tok)

    def take(self, rows: Sequence[int]) -> None:
        super().take(rows)
        if self.song_conditions is not None:
            self.song_conditions = self.song_conditions[list(rows)]

    def _conditions(self, ctx: Context, t: int) -> np.ndarray:
        """Step ``t``'s conditions [B, 1, C], blinded as the model hears them."""
        if not self.foresees:
            return self.stepper.blinded(*drum_track.conditions(ctx, t, t + 1))[0]
        if self.song_conditions is None:
            whole = drum_track.conditions(ctx, 0, self.forced.shape[1])
            self.song_conditions = self.stepper.blinded(*whole)[0]
        return self.song_conditions[:, t : t + 1]


VOICES: dict[str, type[Voice]] = {v.layer: v for v in (ChordVoice, MelodyVoice, DrumVoice)}
