"""Melody phrasing rules: a repeated phrase comes back varied, and phrases end on chord tones.

A song's ``melody_form`` (e.g. ``"AABA"``) repeats a phrase's melody where its letter comes
back. Played verbatim six times in a 32-bar song, the tune wears out; so a repeat is an A':

- its rhythm stays (holds and rests are copied), and so does its contour: a varied note moves
  the same way from the note before it as the original did, by at most :data:`MAX_MOVE`
  semitones from the original pitch;
- every :data:`VARY_EVERY`-th note of the phrase (a different set on each repeat; never the
  first) is sampled anew under those constraints;
- every other repeat (the 1st, 3rd, ...) also gets a new ending: its last bar is written anew.

In the last bar of every phrase, notes on the beat and notes in its last two beats are chord
tones of the chord they sit on, so a phrase comes to rest on the harmony.

A melody breathes at phrase ends, not in the middle of a phrase (:func:`gap_over`): a bar
inside a 4-bar phrase that has gone :data:`NOTE_BY` steps without a new note makes one ever
more likely, while a phrase's last bar may rest (up to ``melody_gap_bars``), and a breath
taken there lasts to the phrase's end (:func:`breath_lean`). A breath follows a chord tone
(:func:`breath_mask`): after a note off the chord, a rest may not reach a beat, so the melody
moves on (the non-chord tone resolves) before it stops.

All functions are pure; melody tokens are those of :mod:`tracks.melody`.
"""

from __future__ import annotations

import numpy as np

from arranger.compose import sections
from arranger.compose.plan import FREE, Plan, form_phrase, form_source, repeat
from arranger.evaluation.checks import BREATH_STEPS, PHRASE_BARS
from arranger.score import STEPS_PER_BAR, STEPS_PER_BEAT
from tracks import melody as melody_track

VARY_EVERY = 3  # one note in this many is varied in a repeated phrase
MAX_MOVE = 3  # semitones a varied note may move from the original
END_STEPS = 2 * STEPS_PER_BEAT  # a phrase's last steps whose notes must be chord tones
NOTE_BY = STEPS_PER_BEAT  # steps a bar inside a phrase goes without a new note before pressure
BREATH_NATS = 2.0  # off the note-on logits while a breath lasts to its phrase's end
PICKUP_STEPS = STEPS_PER_BEAT // 2  # a phrase's last steps, free for the next one's pickup
_PITCHES = np.arange(melody_track.VOCAB_SIZE) - melody_track.FIRST_PITCH_TOKEN + melody_track.LOW
_IS_PITCH = np.arange(melody_track.VOCAB_SIZE) >= melody_track.FIRST_PITCH_TOKEN
_PITCH_CLASSES = _PITCHES % 12


def occurrence(form: str, phrase: int) -> int:
    """How many phrases before ``phrase`` (the form cycling) have the same letter; 0 = first."""
    letter = form[phrase % len(form)]
    return sum(form[p % len(form)] == letter for p in range(phrase))


def new_ending(occurrence_index: int) -> bool:
    """Whether a repeat (occurrence >= 1) writes its last bar anew: every other repeat."""
    return occurrence_index % 2 == 1


def varies_note(onset_index: np.ndarray, occurrence_index: int) -> np.ndarray:
    """Bool [B]: whether the ``onset_index``-th note (0-based, per row) of the phrase varies
    in the repeat ``occurrence_index`` (the first note never does, nor the first statement)."""
    onset_index = np.asarray(onset_index)
    if occurrence_index < 1:
        return np.zeros(onset_index.shape, bool)
    return (onset_index > 0) & ((onset_index + occurrence_index) % VARY_EVERY == 0)


def contour_mask(original: np.ndarray, before_original: np.ndarray, before: np.ndarray,
                 after_original: np.ndarray) -> np.ndarray:
    """Bool [B, V]: pitch tokens that vary a note and keep the contour.

    ``original`` int [B]: the pitch (MIDI, model register) the phrase had here;
    ``before_original``: the pitch before it in the original phrase; ``before``: the pitch
    before it now; ``after_original``: the pitch after it in the original phrase, which the
    repeat plays next (-1 for none: that side is not judged). Allowed: pitches 1 to
    :data:`MAX_MOVE` semitones from the original that move from the note before, and to the
    note after, the way (up, down or the same note) the original did.
    """
    p = _PITCHES[None, :]
    o, bo, b, ao = (np.asarray(a, np.int64)[:, None]
                    for a in (original, before_original, before, after_original))
    move = np.abs(p - o)
    ok = _IS_PITCH[None, :] & (move >= 1) & (move <= MAX_MOVE)
    from_before = (np.sign(p - b) == np.sign(o - bo)) | (b < 0) | (bo < 0)
    to_after = (np.sign(ao - p) == np.sign(ao - o)) | (ao < 0)
    return ok & from_before & to_after


def ends_phrase(step: int, phrase_steps: int) -> bool:
    """Whether a note at ``step`` must be a chord tone: in a phrase's last bar, on a beat or in
    its last :data:`END_STEPS` steps."""
    at = step % phrase_steps
    if at < phrase_steps - STEPS_PER_BAR:
        return False
    return at % STEPS_PER_BEAT == 0 or at >= phrase_steps - END_STEPS


def chord_tone_mask(pitch_classes: np.ndarray) -> np.ndarray:
    """Bool [B, V]: rests, holds and the note-ons whose pitch class is a chord tone.

    ``pitch_classes`` float or bool [B, 12]: the sounding chord's key-relative pitch classes
    (the melody register is whole octaves from the song's, so pitch classes agree). A row
    without a chord allows every note.
    """
    pcs = np.asarray(pitch_classes) > 0
    tone = pcs[:, _PITCH_CLASSES]
    tone |= ~np.logical_or.reduce(pcs, axis=1, keepdims=True)
    tone[:, : melody_track.FIRST_PITCH_TOKEN] = True  # rests and holds
    return tone


def last_pitches(tokens: np.ndarray) -> np.ndarray:
    """Int [B]: the last note-on's pitch in each row of melody ``tokens`` [B, n], -1 if none."""
    tokens = np.asarray(tokens)
    if tokens.shape[1] == 0:
        return np.full(len(tokens), -1, np.int64)
    is_pitch = tokens >= melody_track.FIRST_PITCH_TOKEN
    last = np.where(is_pitch, np.arange(tokens.shape[1]), -1).max(axis=1)
    picked = tokens[np.arange(len(tokens)), np.maximum(last, 0)]
    return np.where(last >= 0, _PITCHES[picked], -1)


def first_pitches(tokens: np.ndarray) -> np.ndarray:
    """Int [B]: the first note-on's pitch in each row of melody ``tokens`` [B, n], -1 if none."""
    return last_pitches(np.asarray(tokens)[:, ::-1])


def phrase_rules(plan: Plan, t: int, forced: np.ndarray, written: np.ndarray,
                 mask: np.ndarray, tones: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The melody's fixed tokens and mask at step ``t``: the caller's forced tokens, the
    melody form's repeats (:func:`arranger.compose.plan.form_source`), and the phrasing rules.

    ``forced`` int [B, steps]: the caller's forced tokens; ``written`` [B, steps]: the melody
    so far; ``mask`` bool [B, V]; ``tones`` bool [B, V]: the sounding chord's tones
    (:func:`chord_tone_mask`). Returns new arrays, fixed int [B] (``FREE`` where sampled) and
    the mask: a repeat's varied notes and new ending become FREE (with the contour mask on
    varied notes), and notes ending a phrase are held to chord tones. Caller-forced tokens
    never change.
    """
    phrase_steps = plan.phrase_steps
    source = form_source(plan, t)
    fixed = repeat(forced, written, t, source)
    repeated = (forced[:, t] == FREE) & (fixed != FREE) if source is not None else None
    at = t % phrase_steps
    if repeated is not None:
        occ = occurrence(plan.song.melody_form, form_phrase(plan, t))
        if new_ending(occ) and at >= phrase_steps - STEPS_PER_BAR:
            fixed[repeated] = FREE
        else:
            fixed, mask = _vary_notes(written, fixed, mask, repeated, source, t,
                                      phrase_steps, occ)
    if ends_phrase(t, phrase_steps):
        mask = narrow(mask, np.where((fixed == FREE)[:, None], tones, True))
    return fixed, mask


def narrow(mask: np.ndarray, extra: np.ndarray) -> np.ndarray:
    """``mask & extra`` in the rows where that still allows a token, ``mask`` elsewhere."""
    both = mask & extra
    return np.where(both.any(axis=1, keepdims=True), both, mask)


def _vary_notes(written: np.ndarray, fixed: np.ndarray, mask: np.ndarray, repeated: np.ndarray,
                source: int, t: int, phrase_steps: int, occ: int
                ) -> tuple[np.ndarray, np.ndarray]:
    """A repeat's notes that vary (:func:`varies_note`), sampled under the contour mask."""
    first = source - source % phrase_steps  # the original phrase's first step
    onset = (written[:, first:source] >= melody_track.FIRST_PITCH_TOKEN).sum(axis=1)
    vary = repeated & (fixed >= melody_track.FIRST_PITCH_TOKEN) & varies_note(onset, occ)
    if not vary.any():
        return fixed, mask
    contour = contour_mask(_PITCHES[fixed], last_pitches(written[:, first:source]),
                           last_pitches(written[:, t - t % phrase_steps:t]),
                           first_pitches(written[:, source + 1:first + phrase_steps]))
    ok = vary & (contour & mask).any(axis=1)  # no pitch fits: the note stays as it was
    fixed[ok] = FREE
    return fixed, np.where(ok[:, None], mask & contour, mask)


def breathes(plan: Plan, t: int) -> bool:
    """Whether step ``t`` lies in the last bar of a 4-bar phrase (:data:`PHRASE_BARS`, counted
    from its section's start): where a melody may take a breath of a whole bar."""
    bar = (t - sections.part_start(plan.form, t, STEPS_PER_BAR)) // STEPS_PER_BAR
    return bar % PHRASE_BARS == PHRASE_BARS - 1


def gap_over(plan: Plan, t: int, waiting: np.ndarray) -> np.ndarray:
    """Int [B]: steps each row's wait for a new melody note is past its limit (< 0: within).

    ``waiting`` int [B]: steps since the last note-on. The limit is ``plan.max_gap_steps``
    (``melody_gap_bars``; 0 turns both rules off); inside a phrase, a bar that has gone
    :data:`NOTE_BY` steps without a note-on is past its limit too, so whole empty bars come
    at phrase ends (:func:`breathes`) rather than in the middle of phrases.
    """
    waiting = np.asarray(waiting)
    if not plan.max_gap_steps:
        return np.full(waiting.shape, -1)
    over = waiting - plan.max_gap_steps
    if breathes(plan, t):
        return over
    return np.maximum(over, np.minimum(waiting, t % STEPS_PER_BAR) - NOTE_BY)


def breath_mask(written: np.ndarray, t: int, settled: np.ndarray, mask: np.ndarray
                ) -> np.ndarray:
    """``mask`` without the rest token in the rows where a rest would reach
    :data:`BREATH_STEPS` steps after a note off the chord (``settled`` bool [B] False: the
    last note-on was not a chord tone), so a phrase ends on a chord tone. ``written`` [B,
    steps]: the melody so far. Returns ``mask`` itself when no row is concerned."""
    # (The reductions called as ufuncs: ``all``/``any`` wrap them in Python, per step.)
    if t < BREATH_STEPS - 1 or np.logical_and.reduce(settled):  # no note off the chord
        return mask
    resting = np.logical_and.reduce(written[:, t - BREATH_STEPS + 1:t] == melody_track.REST_TOKEN,
                                    axis=1)
    stop = resting & ~settled
    if not np.logical_or.reduce(stop):
        return mask
    no_rest = np.ones(mask.shape[1], bool)
    no_rest[melody_track.REST_TOKEN] = False
    return narrow(mask, np.where(stop[:, None], no_rest[None, :], True))


def breath_lean(plan: Plan, t: int, written: np.ndarray, logits: np.ndarray,
                notes: np.ndarray) -> np.ndarray:
    """``logits`` [B, V] with :data:`BREATH_NATS` off the note-ons (bool ``notes`` [V]) in the
    rows that have rested :data:`BREATH_STEPS` steps, in a phrase's last bar (:func:`breathes`)
    before its pickup: a breath once taken lasts to the phrase's end rather than being broken
    by a stray note. Returns ``logits`` itself when no row is concerned (or the gap rules are
    off: ``melody_gap_bars`` 0)."""
    if (not plan.max_gap_steps or t < BREATH_STEPS or not breathes(plan, t)
            or t % STEPS_PER_BAR >= STEPS_PER_BAR - PICKUP_STEPS):
        return logits
    resting = (written[:, t - BREATH_STEPS:t] == melody_track.REST_TOKEN).all(axis=1)
    if not resting.any():
        return logits
    return logits - np.where(resting[:, None] & notes[None, :], np.float32(BREATH_NATS),
                             np.float32(0.0))
