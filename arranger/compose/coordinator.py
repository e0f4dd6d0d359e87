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
from contextlib import nullcontext
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from arranger.score import BEATS_PER_BAR, STEPS_PER_BAR, STEPS_PER_BEAT, Chord, Key, Score
from arranger.settings import Sampling
from tracks import bass as bass_track
from tracks import chords as chord_track
from tracks import drums as drum_track
from tracks import melody as melody_track
from tracks.common import BOS, Context
from tracks.inference import NumpyStep, fast_step
from tracks.weights_file import LayerWeights

if TYPE_CHECKING:
    import torch

FREE = -1  # forced-token value meaning "the model chooses"
MODEL_LAYERS = ("chords", "melody", "drums")


@dataclass(frozen=True)
class Plan:
    """What to write: length, key, feel, loop and sampling per layer."""

    bars: int = 32
    tempo_bpm: float = 80.0
    key: Key = Key(0, "major")
    swing: float = 0.0
    loop_bars: int = 4  # the chord progression repeats every loop_bars bars (0 = never)
    ending: bool = True  # last bar: tonic chord, a final melody note, a crash
    melody_low: int = 60  # absolute MIDI range of the melody
    melody_high: int = 84
    sampling: dict[str, Sampling] = field(default_factory=dict)
    bass_seed: int = 0
    chord_color: str = "natural"  # triads, natural, sevenths or ninths (applied to sampled chords)
    drum_kit: str = "full"  # full, sparse (kick/snare/ride/crash) or none
    drum_loop_bars: int = 0  # drums repeat every N bars, the last bar of each 4 left free for a
    # fill (0 = every bar free)
    max_gap_steps: int = 0  # past this many steps without a new melody note, a new one gets
    # more likely (0 = off)
    melody_form: str = ""  # a letter per phrase of loop_bars (4 if 0) bars, cycling: a letter
    # seen before repeats that phrase's melody ("" = every phrase new)


@dataclass
class Forced:
    """Forced tokens per layer, ``FREE`` where the model chooses. Shapes [B, beats] / [B, steps]."""

    chords: np.ndarray
    melody: np.ndarray
    drums: np.ndarray

    @classmethod
    def free(cls, batch: int, bars: int) -> Forced:
        beats, steps = bars * BEATS_PER_BAR, bars * STEPS_PER_BAR
        return cls(np.full((batch, beats), FREE, np.int64), np.full((batch, steps), FREE, np.int64),
                   np.full((batch, steps), FREE, np.int64))


@dataclass
class Models:
    """The three layer models (weights + vocabularies)."""

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


class _Stepper:
    """One model with its carried state and sampling rule."""

    def __init__(self, weights: LayerWeights, batch: int, sampling: Sampling, allowed=None,
                 module=None, device: torch.device | None = None):
        self.device = device
        self.model = fast_step(weights) if device is None else weights.model.to(device)
        blind = weights.card.get("blind_conditions", [])
        self.blind = list(blind)
        self.blind_multi = module is not None and module.MULTI_FOLLOWS in blind
        self.sampling = sampling
        self.prev = np.full(batch, BOS, dtype=np.int64)
        self.state = None
        vocab = self.model.config.vocab_size
        self.allowed = np.ones(vocab, bool) if allowed is None else allowed
        self.allowed[BOS] = False

    def logits(self, cond: np.ndarray, multi: np.ndarray | None) -> np.ndarray:
        """Logits [B, V] of this step; the state moves on."""
        if self.blind:
            cond[..., self.blind] = 0  # see arranger.training.train.blind_conditions
            if self.blind_multi:
                multi = np.zeros_like(multi)
        m = None if multi is None else multi[:, -1]
        if isinstance(self.model, NumpyStep):  # the per-step hot path: no tensors at all
            out, self.state = self.model.step(self.prev, cond[:, -1], m, self.state)
            return out
        import torch

        def tensor(a: np.ndarray) -> torch.Tensor:
            return torch.as_tensor(a, device=self.device)

        out, self.state = self.model(tensor(self.prev[:, None]), tensor(cond),
                                     None if m is None else tensor(multi), self.state)
        return out[:, -1].float().cpu().numpy()

    def advance(self, tokens: np.ndarray) -> None:
        self.prev = tokens.astype(np.int64)


def _sample(logits: np.ndarray, mask: np.ndarray, sampling: Sampling,
            rng: np.random.Generator) -> np.ndarray:
    """Temperature + nucleus (top-p) sampling by inverse CDF; deterministic for ``rng``.

    The nucleus is cut at a probability value (the smallest one kept), found by sorting the
    values alone: cheaper than an argsort, and ties are all in or all out, so no tie order
    (which differs between sort algorithms) can change a song.
    """
    z = np.where(mask, logits, -np.inf)
    z *= 1.0 / max(sampling.temperature, 1e-4)
    z -= z.max(axis=1, keepdims=True)
    p = np.exp(z, out=z)
    if sampling.top_p < 1.0:
        desc = np.sort(p, axis=1)[:, ::-1]
        cum = np.cumsum(desc, axis=1)
        kept = ((cum - desc) < sampling.top_p * cum[:, -1:]).sum(axis=1)  # the nucleus's size
        p[p < desc[np.arange(len(p)), kept - 1][:, None]] = 0.0
    cum = np.cumsum(p, axis=1)
    u = rng.random((len(p), 1)) * cum[:, -1:]
    return np.minimum((cum <= u).sum(axis=1), p.shape[1] - 1)


def _choose(logits, mask, forced, sampling, rng, logp_acc) -> np.ndarray:
    """Sample where free, take forced tokens elsewhere (accumulating their log-probability)."""
    is_forced = forced != FREE
    tokens = forced.copy()
    if not is_forced.all():
        tokens = np.where(is_forced, forced, _sample(logits, mask, sampling, rng))
    if is_forced.any():
        rows = np.flatnonzero(is_forced)
        z = logits[rows].astype(np.float64)
        top = z.max(axis=1, keepdims=True)
        logz = np.log(np.exp(z - top).sum(axis=1)) + top[:, 0]
        logp_acc[rows] += z[np.arange(len(rows)), forced[rows]] - logz
    return tokens


def generate_tokens(models: Models, plan: Plan, forced: Forced, seed: int,
                    device: torch.device | None = None) -> Generated:
    """Run the coordinated generation for a batch; ``forced`` fixes tokens where not FREE.

    With ``device`` None the LSTMs step in numpy (:mod:`tracks.inference`, fastest on a CPU);
    otherwise PyTorch runs them on that device ("cpu" or "cuda").
    """
    batch, steps = forced.melody.shape
    ctx = Context.empty(batch, plan.bars, plan.key.mode)
    gen = np.random.default_rng(int(seed))
    sp = {layer: plan.sampling.get(layer, Sampling()) for layer in MODEL_LAYERS}
    chords = _Stepper(models.chords, batch, sp["chords"], _allowed(models.chords), chord_track,
                      device)
    melody = _Stepper(models.melody, batch, sp["melody"], _allowed(models.melody), melody_track,
                      device)
    drums = _Stepper(models.drums, batch, sp["drums"], _allowed(models.drums), drum_track,
                     device)
    chords.allowed[chord_track.N_TOKEN] = False
    kit = _kit_map(models.drum_vocab, plan.drum_kit)
    no_crash = _kit_map(models.drum_vocab, "no_crash")
    color = chord_track.recolor_table(plan.chord_color)
    chord_allowed, drum_allowed = chords.allowed[None], drums.allowed[None]
    out = {k: np.zeros_like(getattr(forced, k)) for k in MODEL_LAYERS}
    own_chords = np.zeros_like(forced.chords)  # as the chord model wrote them (uncoloured)
    logp = {k: np.zeros(batch) for k in MODEL_LAYERS}
    mel_low, mel_high = plan.melody_low - plan.key.tonic, plan.melody_high - plan.key.tonic + 1
    # The model writes in the register it learnt; the song's range is whole octaves away.
    shift = melody_track.register_shift(mel_low, mel_high)
    mel_low, mel_high = mel_low + shift, mel_high + shift
    forced_melody = np.where(forced.melody == FREE, FREE,
                             melody_track.shift_tokens(forced.melody, shift))
    final_step = (plan.bars - 1) * STEPS_PER_BAR if plan.ending and plan.bars > 1 else -1
    final_mask = _final_note_mask(plan)
    waiting = np.zeros(batch, np.int64)  # melody steps since the last note-on
    with _no_grad(device):
        _drum_preroll(drums, batch, plan.key.mode, drum_allowed, gen)
        for t in range(steps):
            if t % STEPS_PER_BEAT == 0:
                b = t // STEPS_PER_BEAT
                cond, multi = chord_track.conditions(ctx, b, b + 1)
                mask = chord_allowed
                source = _chord_source(plan, b)
                loop = _repeat(forced.chords, out["chords"], b, source)
                tok = _choose(chords.logits(cond, multi), mask, loop, chords.sampling, gen,
                              logp["chords"])
                # The colour re-spells sampled chords and the melody hears the chord as written,
                # but the chord model goes on from its own: fed a maj9 it never wrote (nor saw
                # much), it would take each beat for a new chord and change chords every beat.
                written = np.where(loop == FREE, color[tok], tok)
                own = np.where(loop == FREE, tok, _repeat(forced.chords, own_chords, b, source))
                out["chords"][:, b], own_chords[:, b] = written, own
                ctx.chord_root[:, b], ctx.chord_quality[:, b] = chord_track.context_values(
                    written)
                chords.advance(own)
                # The melody hears only the chords: a beat's conditions are known at its start.
                beat_cond, beat_multi = melody_track.conditions(ctx, t, t + STEPS_PER_BEAT)
            i = t % STEPS_PER_BEAT
            cond, multi = beat_cond[:, i : i + 1], beat_multi[:, i : i + 1]
            mask = melody_track.token_mask(melody.prev, mel_low, mel_high)
            if t == final_step:
                mask &= final_mask
            logits = _gap_pressure(melody.logits(cond, multi), waiting, plan.max_gap_steps)
            fixed = _repeat(forced_melody, out["melody"], t, _form_source(plan, t))
            tok = _choose(logits, mask, fixed, melody.sampling, gen, logp["melody"])
            waiting = np.where(tok >= melody_track.FIRST_PITCH_TOKEN, 0, waiting + 1)
            out["melody"][:, t] = tok
            ctx.melody[:, t] = melody_track.decode(tok)
            melody.advance(tok)
            cond, _ = drum_track.conditions(ctx, t, t + 1)
            # A repeated crash only where a 4-bar phrase starts.
            fixed = _repeat(forced.drums, out["drums"], t, _drum_source(plan, t),
                            None if t % (4 * STEPS_PER_BAR) == 0 else no_crash)
            tok = _choose(drums.logits(cond, None), drum_allowed, fixed, drums.sampling, gen,
                          logp["drums"])
            tok = np.where(fixed == FREE, kit[tok], tok)
            out["drums"][:, t] = tok
            drums.advance(tok)
    return Generated(out["chords"], out["melody"], out["drums"], logp, shift)


DRUM_PREROLL_BARS = 2


def _drum_preroll(drums: _Stepper, batch: int, mode: str, allowed: np.ndarray,
                  rng: np.random.Generator) -> None:
    """Let the drummer play two bars, unheard, before the song starts.

    The drum model learnt from whole performances, which open with count-ins, lone crashes and
    sparse intros; the song's first bars become its looped groove, so starting cold too often
    loops an intro. The two bars sit at the end of a 4-bar phrase (the second one where fills
    go), so the song starts as a groove does after a fill.
    """
    ctx = Context.empty(batch, 4, mode)  # no chords or melody heard: the drums are blind to them
    for t in range((4 - DRUM_PREROLL_BARS) * STEPS_PER_BAR, 4 * STEPS_PER_BAR):
        cond, _ = drum_track.conditions(ctx, t, t + 1)
        drums.advance(_sample(drums.logits(cond, None), allowed, drums.sampling, rng))


def _no_grad(device: torch.device | None):
    """PyTorch's inference mode on its path; nothing (no torch import) on the numpy one."""
    if device is None:
        return nullcontext()
    import torch

    return torch.inference_mode()


GAP_PRESSURE = 0.4  # nats taken off the rest and hold logits per step beyond the limit


def _gap_pressure(logits: np.ndarray, waiting: np.ndarray, limit: int) -> np.ndarray:
    """Make a long stretch without a new melody note ever less likely to go on.

    Sampling favours the token that just happened: after a few bars of rests (or of one held
    note) the melody model rarely finds its way back, and a lo-fi loop wants its tune. Past
    ``limit`` steps the rest and hold logits drop linearly, so the model still picks where and
    what to play.
    """
    over = waiting - limit
    if not limit or (over < 0).all():
        return logits
    logits = logits.copy()
    penalty = GAP_PRESSURE * np.maximum(over + 1, 0)
    logits[:, melody_track.REST_TOKEN] -= penalty
    logits[:, melody_track.HOLD_TOKEN] -= penalty
    return logits


def _allowed(weights: LayerWeights) -> np.ndarray | None:
    allowed = weights.card.get("allowed_tokens")
    if allowed is None:
        return None
    mask = np.zeros(weights.config.vocab_size, bool)
    mask[np.asarray(allowed, dtype=np.int64)] = True
    return mask


_SPARSE_KIT = 1 | 1 << 1 | 1 << 7 | 1 << 8  # kick, snare, crash, ride
_KITS = {"full": (1 << 9) - 1, "sparse": _SPARSE_KIT, "none": 0,
         "no_crash": (1 << 9) - 1 - (1 << 7)}


def _kit_map(vocab: drum_track.DrumVocab, kit: str) -> np.ndarray:
    """Token -> the token the kit plays instead: the same hits without the missing drums.

    The model samples its groove as it learnt it and the kit drops what it lacks (hat + kick
    becomes kick, a lone hat becomes silence), so a smaller kit really plays less.
    """
    keep = _KITS[kit]
    masks, levels = vocab.mask_of(np.arange(vocab.size)), vocab.level_of(np.arange(vocab.size))
    mapped = [vocab.token(int(m) & keep, int(lv)) for m, lv in zip(masks, levels, strict=True)]
    mapped[BOS] = BOS
    return np.array(mapped, dtype=np.int64)


def _repeat(forced: np.ndarray, written: np.ndarray, at: int, source: int | None,
            remap: np.ndarray | None = None) -> np.ndarray:
    """Forced tokens of position ``at``: the caller's, else, from a repeat rule's ``source``
    position, what was written there (through ``remap`` if given).

    A position repeats only where its source was also ours to write: when regenerating a range,
    copying from the kept bars would just reproduce the old material (the range's first loop is
    new, and then repeats).
    """
    tokens = forced[:, at].copy()
    if source is not None:
        copy = (tokens == FREE) & (forced[:, source] == FREE)
        repeated = written[copy, source]
        tokens[copy] = repeated if remap is None else remap[repeated]
    return tokens


def _chord_source(plan: Plan, beat: int) -> int | None:
    """The beat a chord repeats: one loop back (not in the final bar of an ending)."""
    loop = plan.loop_bars * BEATS_PER_BAR
    if not loop or beat < loop or (plan.ending and beat >= (plan.bars - 1) * BEATS_PER_BAR):
        return None
    return beat - loop


def _drum_source(plan: Plan, step: int) -> int | None:
    """The step a drum hit repeats: one drum loop back, skipping fills.

    The last bar of every 4-bar phrase stays free, for a fill, and is never what gets repeated.
    """
    loop = plan.drum_loop_bars * STEPS_PER_BAR
    if not loop or step < loop or (step // STEPS_PER_BAR) % 4 == 3:
        return None
    source = step - loop
    while (source // STEPS_PER_BAR) % 4 == 3 and source >= loop:
        source -= loop  # repeat the groove, not a fill
    return source


def _form_source(plan: Plan, step: int) -> int | None:
    """The step a melody note repeats: the same step of the first phrase with this phrase's
    letter in ``plan.melody_form`` (phrases of ``loop_bars`` bars, 4 if 0)."""
    if not plan.melody_form:
        return None
    phrase_steps = (plan.loop_bars or 4) * STEPS_PER_BAR
    phrase = step // phrase_steps
    first = plan.melody_form.index(plan.melody_form[phrase % len(plan.melody_form)])
    return None if first == phrase else step - (phrase - first) * phrase_steps


def ending_forced(forced: Forced, plan: Plan, models: Models) -> None:
    """Force the last bar: the tonic chord, a final melody note held, a kick + crash, silence."""
    if not plan.ending or plan.bars < 2:
        return
    first_beat, first_step = (plan.bars - 1) * BEATS_PER_BAR, (plan.bars - 1) * STEPS_PER_BAR
    tonic = _final_chord(plan)
    free = forced.chords[:, first_beat:] == FREE
    forced.chords[:, first_beat:][free] = chord_track.token_of(tonic)
    vocab = models.drum_vocab
    crash = vocab.token(1 | 1 << 7, 2)
    last = forced.drums[:, first_step:]
    last[last == FREE] = drum_track.SILENCE_TOKEN
    forced.drums[:, first_step] = np.where(forced.drums[:, first_step] == drum_track.SILENCE_TOKEN,
                                           crash, forced.drums[:, first_step])
    mel = forced.melody[:, first_step:]
    mel[:, 1:8][mel[:, 1:8] == FREE] = melody_track.HOLD_TOKEN
    mel[:, 8:][mel[:, 8:] == FREE] = melody_track.REST_TOKEN


def _final_chord(plan: Plan) -> Chord:
    """The tonic the song ends on, in the preset's chord colour (a triads song ends on a triad)."""
    tonic = Chord(0, "maj7" if plan.key.mode == "major" else "m9")
    return chord_track.recolor([tonic], plan.chord_color)[0]


def _final_note_mask(plan: Plan) -> np.ndarray:
    """Melody tokens allowed on the last bar's downbeat: tones of the final chord."""
    mask = np.zeros(melody_track.VOCAB_SIZE, bool)
    tonic = _final_chord(plan).pitch_classes()
    for p in range(melody_track.LOW, melody_track.HIGH):
        mask[melody_track.FIRST_PITCH_TOKEN + p - melody_track.LOW] = p % 12 in tonic
    return mask


def to_scores(gen: Generated, plan: Plan, models: Models) -> list[Score]:
    """Decode a generated batch into scores (bass derived from the chords)."""
    scores = []
    vocab = models.drum_vocab
    for i in range(gen.melody.shape[0]):
        masks, levels = drum_track.decode(gen.drums[i], vocab)
        score = Score(plan.bars, tempo_bpm=plan.tempo_bpm, key=plan.key, swing=plan.swing,
                      chords=chord_track.decode(gen.chords[i]),
                      melody=_unshift(melody_track.decode(gen.melody[i]), gen.melody_shift),
                      drums=masks, drum_velocity=levels)
        score.bass = bass_track.bass_line(score, seed=plan.bass_seed, loop_bars=plan.loop_bars)
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
    forced = forced if forced is not None else Forced.free(variations, plan.bars)
    ending_forced(forced, plan, models)
    with generation_mode():
        gen = generate_tokens(models, plan, forced, seed, device)
    return to_scores(gen, plan, models)


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
        self.blas_threads = blas_threads or min(2, os.cpu_count() or 1)

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
