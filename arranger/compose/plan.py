"""What the coordinator is asked to write: the plan, the forced tokens and the repeat rules.

The plan is the preset's :class:`arranger.song_settings.SongSettings` plus what generation adds (the
parsed key, sampling per layer, the bass seed); everything else is derived from the song
settings here, never restated.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from functools import cached_property

import numpy as np

from arranger.compose import sections
from arranger.evaluation.checks import PHRASE_BARS
from arranger.score import BEATS_PER_BAR, STEPS_PER_BAR, Chord, Key
from arranger.song_settings import Sampling, SongSettings
from tracks import chords as chord_track

FREE = -1  # forced-token value meaning "the model chooses"


@dataclass(frozen=True)
class Plan:
    """What to write: the song settings, sampling per layer, the bass seed and the density
    per layer (0..1, :mod:`arranger.compose.density`; a layer left out plays as it learnt).

    ``key`` is ``song.key`` parsed; to write in another key (a primer's, a regenerated
    song's), change the song: ``plan.with_song(key=str(other))``.
    """

    song: SongSettings = field(default_factory=SongSettings)
    sampling: Mapping[str, Sampling] = field(default_factory=dict)
    bass_seed: int = 0
    density: Mapping[str, float] = field(default_factory=dict)
    key: Key = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "key", Key.parse(self.song.key))

    def with_song(self, **changes) -> Plan:
        """This plan with some song settings changed."""
        return replace(self, song=replace(self.song, **changes))

    @cached_property
    def form(self) -> sections.Form | None:
        """The song's sections fitted to its length, bar by bar (None without sections)."""
        return sections.Form.of(self.song.sections, self.song.bars)

    def layer_sampling(self, layer: str) -> Sampling:
        return self.sampling.get(layer, Sampling())

    @property
    def phrase_steps(self) -> int:
        """Steps of a melody phrase: ``loop_bars`` bars, ``PHRASE_BARS`` if 0."""
        return (self.song.loop_bars or PHRASE_BARS) * STEPS_PER_BAR

    @property
    def max_gap_steps(self) -> int:
        """Steps without a new melody note past which a new one gets more likely (0 = off)."""
        return round(self.song.melody_gap_bars * STEPS_PER_BAR)

    @property
    def final_chord(self) -> Chord:
        """The tonic the song ends on, in the song's chord colour (a triads song ends on a
        triad)."""
        tonic = Chord(0, "maj7" if self.key.mode == "major" else "m9")
        return chord_track.recolor([tonic], self.song.chord_color, self.key.mode)[0]


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


def repeat(forced: np.ndarray, written: np.ndarray, at: int, source: int | None,
           remap: np.ndarray | None = None) -> np.ndarray:
    """Forced tokens of position ``at``: the caller's, else, from a repeat rule's ``source``
    position, what was written there (through ``remap`` if given). A new array.

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


def chord_source(plan: Plan, beat: int) -> int | None:
    """The beat a chord repeats: its section's first occurrence, else one loop back within
    its section (not in the final bar of an ending)."""
    song = plan.song
    if song.ending and beat >= (song.bars - 1) * BEATS_PER_BAR:
        return None
    repeated = sections.repeat_source(plan.form, "chords", beat, BEATS_PER_BAR)
    if repeated is not None:
        return repeated
    loop = song.loop_bars * BEATS_PER_BAR
    if not loop or beat - sections.part_start(plan.form, beat, BEATS_PER_BAR) < loop:
        return None
    return beat - loop


def _is_fill_bar(step: int) -> bool:
    return (step // STEPS_PER_BAR) % PHRASE_BARS == PHRASE_BARS - 1


def _groove_step(plan: Plan, step: int) -> bool:
    """Whether ``step`` holds the groove: not in a fill bar (a phrase's or a section's last),
    nor in a section without drums."""
    bar, form = step // STEPS_PER_BAR, plan.form
    if _is_fill_bar(step):
        return False
    return form is None or bool(form.plays["drums"][bar]) and not sections.is_last_bar(form, bar)


def drum_source(plan: Plan, step: int) -> int | None:
    """The step a drum hit repeats: its section's first occurrence, else one drum loop back,
    skipping fills and the bars of sections without drums (a new section keeps the groove).

    The last bar of every phrase and of every section stays free, for a fill, and is never
    what gets repeated.
    """
    if _is_fill_bar(step) or sections.is_last_bar(plan.form, step // STEPS_PER_BAR):
        return None
    repeated = sections.repeat_source(plan.form, "drums", step, STEPS_PER_BAR)
    if repeated is not None:
        return repeated
    loop = plan.song.drum_loop_bars * STEPS_PER_BAR
    if not loop or step < loop:
        return None
    source = step - loop
    while source >= loop and not _groove_step(plan, source):
        source -= loop  # repeat the groove, not a fill
    return source if plan.form is None or _groove_step(plan, source) else None


def form_phrase(plan: Plan, step: int) -> int:
    """The phrase (of ``loop_bars`` bars, ``PHRASE_BARS`` if 0) holding ``step``, counted from
    the start of its section (of the song without sections)."""
    return (step - sections.part_start(plan.form, step, STEPS_PER_BAR)) // plan.phrase_steps


def form_source(plan: Plan, step: int) -> int | None:
    """The step a melody note repeats: the same step of the first phrase with this phrase's
    letter in ``song.melody_form`` (phrases of ``loop_bars`` bars, ``PHRASE_BARS`` if 0),
    within the step's section."""
    form = plan.song.melody_form
    if not form:
        return None
    phrase = form_phrase(plan, step)
    first = form.index(form[phrase % len(form)])
    return None if first == phrase else step - (phrase - first) * plan.phrase_steps
