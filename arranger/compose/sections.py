"""Song sections: the form of a song as named parts, each with the layers that play in it.

A preset may give ``[[song.sections]]`` (``name``, ``bars``, ``layers``, ``effects``). The song
is then the sections one after another; a layer that does not play in a section is silent in
its bars (score, MIDI, stems): its tokens are forced to silence, so the other models hear the
arrangement as it is and the melody model hears its own rests; the drummer sits out (its model
is not stepped), so drums entering after an intro start with a groove, as a song does. A name
seen before replays the chords and melody of its first occurrence that had them, bar for bar
(the drums too, except in the section's last bar, left free for a fill).

A song asked for at another length than the sections' sum (``--bars``) keeps the first and
last section and cycles the ones between (see :func:`fit`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from arranger.audio.config import EffectSpec
from arranger.score import BEATS_PER_BAR, LAYERS, REST, STEPS_PER_BAR, Score
from arranger.settings import Settings, setting

MAX_NAME = 32
LAYERS_TEXT = (f"a list of layers from {', '.join(LAYERS)}, each once (bass only with chords: "
               "it follows them)")


def _is_name(text: str) -> bool:
    return 0 < len(text) <= MAX_NAME and text.isprintable()


def _is_layer_set(layers: tuple[str, ...]) -> bool:
    return len(set(layers)) == len(layers) and ("bass" not in layers or "chords" in layers)


@dataclass(frozen=True)
class Section(Settings):
    """One section of a song's form: its name, length and the layers that play in it."""

    name: str = setting(check=_is_name, expected=f"a name of 1..{MAX_NAME} characters",
                        help="a name seen before repeats that section's chords and melody")
    bars: int = setting(low=1, high=512, unit="bars", help="the section's length")
    layers: tuple[str, ...] = setting(LAYERS, choices=LAYERS, check=_is_layer_set,
                                      expected=LAYERS_TEXT, help="the layers that play in it")
    effects: dict[str, tuple[EffectSpec, ...]] = setting(
        default_factory=dict, choices=LAYERS,
        help="per layer, effects added after its chain in this section's bars")


@dataclass(frozen=True)
class Part:
    """A section as placed in the song: bars ``first`` .. ``first + bars - 1`` (0-based)."""

    section: Section
    first: int
    bars: int

    @property
    def end(self) -> int:
        return self.first + self.bars


def fit(sections: Sequence[Section], bars: int) -> list[Part]:
    """The sections placed one after another and fitted to ``bars`` bars.

    At their own length (the sum of their bars) they are placed as given. Otherwise the first
    and the last section are kept and those between cycle (cut where the room ends), so a longer
    song has more of the body and still its intro and outro. A song too short for both and a
    bar of body is the body alone; with fewer than three sections, the sections cycle from the
    first. Either is cut at ``bars``.
    """
    sections = list(sections)
    if sum(s.bars for s in sections) == bars or len(sections) < 3:
        return _place(sections, bars)
    head, body, tail = sections[0], sections[1:-1], sections[-1]
    room = bars - head.bars - tail.bars
    if room < 1:
        return _place(body, bars)
    middle = _place(body, room)
    order = [head] + [p.section for p in middle] + [tail]
    lengths = [head.bars] + [p.bars for p in middle] + [tail.bars]
    return _placed(order, lengths)


def _place(sections: list[Section], bars: int) -> list[Part]:
    """``sections`` cycled from the first and cut at ``bars`` bars."""
    order, lengths, total, i = [], [], 0, 0
    while total < bars:
        section = sections[i % len(sections)]
        order.append(section)
        lengths.append(min(section.bars, bars - total))
        total, i = total + lengths[-1], i + 1
    return _placed(order, lengths)


def _placed(order: list[Section], lengths: list[int]) -> list[Part]:
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(int)
    return [Part(s, int(a), n) for s, a, n in zip(order, starts, lengths, strict=True)]


@dataclass(frozen=True)
class Form:
    """A song's sections bar by bar.

    ``parts`` : the placed sections; ``part_of`` int [bars]: the part each bar belongs to;
    ``plays`` : layer -> bool [bars]; ``source`` : layer -> int [bars], the bar a repeated
    section copies that layer from (its first earlier occurrence where the layer plays), -1
    where the bar is the layer's own.
    """

    parts: tuple[Part, ...]
    part_of: np.ndarray
    plays: dict[str, np.ndarray]
    source: dict[str, np.ndarray]

    @classmethod
    def of(cls, sections: Sequence[Section], bars: int) -> Form | None:
        """The form of ``sections`` fitted to ``bars`` bars; None without sections."""
        if not sections:
            return None
        parts = tuple(fit(sections, bars))
        part_of = np.concatenate([np.full(p.bars, i) for i, p in enumerate(parts)])
        plays = {layer: np.concatenate([np.full(p.bars, layer in p.section.layers)
                                        for p in parts]) for layer in LAYERS}
        source = {layer: _sources(parts, layer) for layer in LAYERS}
        return cls(parts, part_of, plays, source)

    def part(self, bar: int) -> Part:
        return self.parts[int(self.part_of[bar])]

    def occurrences(self, name: str) -> list[tuple[int, int]]:
        """(first bar, end bar) of every part named ``name``, 0-based, end exclusive."""
        return [(p.first, p.end) for p in self.parts if p.section.name == name]

    def names(self) -> list[str]:
        """The section names in order of first appearance."""
        return list(dict.fromkeys(p.section.name for p in self.parts))

    def judged_bars(self) -> np.ndarray:
        """Bool [bars]: the bars where the most layers play, which the musical checks judge
        (a drumless intro is no missing groove)."""
        count = sum(a.astype(int) for a in self.plays.values())
        return count == count.max()


def _sources(parts: Sequence[Part], layer: str) -> np.ndarray:
    """Int [bars]: per bar, the bar it repeats for ``layer`` (see :class:`Form`), else -1."""
    out = []
    for i, part in enumerate(parts):
        earlier = [p for p in parts[:i] if p.section.name == part.section.name
                   and layer in p.section.layers]
        own = np.full(part.bars, -1)
        out.append(own if not earlier or layer not in part.section.layers
                   else earlier[0].first + np.arange(part.bars) % earlier[0].bars)
    return np.concatenate(out)


def repeat_source(form: Form | None, layer: str, position: int, per_bar: int) -> int | None:
    """The position (beat or step, ``per_bar`` to a bar) that ``position`` of ``layer``
    repeats from an earlier occurrence of its section; None where it is its own."""
    if form is None:
        return None
    bar, offset = divmod(position, per_bar)
    source = int(form.source[layer][bar])
    return None if source < 0 else source * per_bar + offset


def part_start(form: Form | None, position: int, per_bar: int) -> int:
    """The first position (beat or step) of the part holding ``position``; 0 without a
    form."""
    return 0 if form is None else form.part(position // per_bar).first * per_bar


def is_last_bar(form: Form | None, bar: int) -> bool:
    """Whether ``bar`` ends its section (a drum fill's place)."""
    return form is not None and form.part(bar).end == bar + 1


def silence(tokens: np.ndarray, plays: np.ndarray, per_bar: int, token: int) -> None:
    """Force ``token`` (in place) in the positions of ``tokens`` [B, bars * per_bar] whose bar
    does not play (``plays`` bool [bars])."""
    quiet = np.repeat(~plays, per_bar)
    tokens[:, quiet] = token


def arrange(forced, form: Form | None, tokens: dict[str, int]) -> None:
    """Force silence (in place) on ``forced`` (a :class:`arranger.compose.plan.Forced`)
    wherever a model layer does not play: ``tokens`` gives each layer's silent token."""
    if form is None:
        return
    per_bar = {"chords": BEATS_PER_BAR, "melody": STEPS_PER_BAR, "drums": STEPS_PER_BAR}
    for layer, token in tokens.items():
        silence(getattr(forced, layer), form.plays[layer], per_bar[layer], token)


def mute_line(line: np.ndarray, plays: np.ndarray, rest: int) -> np.ndarray:
    """A step line (int [bars * 16]) with ``rest`` in the bars that do not play."""
    return np.where(np.repeat(plays, STEPS_PER_BAR), line, rest).astype(line.dtype)


def effect_spans(form: Form | None, seconds_per_bar: float
                 ) -> list[tuple[float, float, str, tuple[EffectSpec, ...]]]:
    """(start s, end s, layer, effects) of every section's effect overrides, in song time."""
    if form is None:
        return []
    return [(p.first * seconds_per_bar, p.end * seconds_per_bar, layer, effects)
            for p in form.parts for layer, effects in p.section.effects.items() if effects]


def sections_bars(sections: Sequence[Section]) -> int:
    """The length of a song of these sections, in bars."""
    return sum(s.bars for s in sections)


def replace_bars(song, sections: Sequence[Section]):
    """``song`` (SongSettings) with its ``bars`` set to the sections' sum (unchanged
    without sections)."""
    return dataclasses.replace(song, bars=sections_bars(sections)) if sections else song


def arranged_bass(line: np.ndarray, form: Form | None) -> np.ndarray:
    """The bass ``line`` (int [steps]) silent in the bars where the bass does not play."""
    return line if form is None else mute_line(line, form.plays["bass"], REST)


def bars_of(score: Score, bars: np.ndarray) -> Score:
    """Bars ``bars`` (int indices, ascending, at least one) of ``score`` as a score of their
    own, every per-step layer cut alike."""
    steps = (bars[:, None] * STEPS_PER_BAR + np.arange(STEPS_PER_BAR)).ravel()
    beats = (bars[:, None] * BEATS_PER_BAR + np.arange(BEATS_PER_BAR)).ravel()
    cut = {k: getattr(score, k)[steps] for k in ("melody", "bass", "drums", "drum_velocity")}
    hits = getattr(score, "drum_hit_velocity", None)  # per-hit velocities [steps, classes]
    if hits is not None:
        cut["drum_hit_velocity"] = hits[steps]
    return dataclasses.replace(score, bars=len(bars), chords=tuple(score.chords[b] for b in beats),
                               **cut)


def judged(score: Score, form: Form | None, bars: int | None = None) -> Score:
    """The bars of ``score`` the musical checks judge (:meth:`Form.judged_bars`), as a score:
    the whole score without a form. With ``bars``, ``score`` holds only the song's first
    ``bars`` bars (a candidate ranked part-way), judged as the song's form judges them."""
    if form is None:
        return score
    judged_bars = form.judged_bars()[:bars]
    return score if judged_bars.all() else bars_of(score, np.flatnonzero(judged_bars))


def played(score: Score, form: Form | None, layer: str) -> Score | None:
    """The bars of ``score`` where the arrangement lets ``layer`` play, as a score (the whole
    score without a form; None where it never plays): what a layer's own measures judge."""
    if form is None or form.plays[layer].all():
        return score
    bars = np.flatnonzero(form.plays[layer])
    return bars_of(score, bars) if len(bars) else None
