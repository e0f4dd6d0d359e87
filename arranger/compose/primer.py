"""A primer: the user's opening bars, which the song continues in their key and tempo."""

from __future__ import annotations

from pathlib import Path

from arranger.compose.coordinator import Models
from arranger.compose.plan import Forced
from arranger.errors import InputError
from arranger.preset import Preset, from_dict
from arranger.score import BEATS_PER_BAR, STEPS_PER_BAR, Score
from tracks import chords as chord_track
from tracks import drums as drum_track
from tracks import melody as melody_track

TEMPO_DECIMALS = 2  # a MIDI tempo is whole microseconds per beat: 80 bpm may read 79.99999


def read_primer(path: Path) -> Score:
    """The first song in the primer file (MIDI, MusicXML...), quantised and key-estimated.

    Raises
    ------
    InputError
        The file cannot be read or holds no usable 4/4 music.
    """
    from arranger.corpus.files import read_file
    from arranger.corpus.piece import SkipSong

    try:
        songs = read_file(Path(path))
    except SkipSong as e:
        raise InputError("primer", str(path), f"a MIDI file to continue ({e.reason})") from None
    if not songs:
        raise InputError("primer", str(path), "a MIDI file to continue (no usable music in it)")
    return songs[0].score


def primed_preset(preset: Preset, primer: Score, where: Path) -> Preset:
    """``preset`` with the primer's key and tempo: the song continues the primer in both.

    The result is validated like a preset (a primer at 230 bpm is refused, naming the file),
    and it is what the manifest records, so the manifest says what the song really has.
    """
    data = preset.to_dict()
    data["song"] = {**data["song"], "key": str(primer.key),
                    "tempo_bpm": round(float(primer.tempo_bpm), TEMPO_DECIMALS)}
    return from_dict(data, str(where))


def force_primer(forced: Forced, primer: Score, models: Models, bars: int) -> None:
    """Feed the primer's bars as forced tokens (all layers it has) so the song continues it."""
    n_bars = min(primer.bars, bars - 1)
    steps, beats = n_bars * STEPS_PER_BAR, n_bars * BEATS_PER_BAR
    if any(c is not None for c in primer.chords[:beats]):
        forced.chords[:, :beats] = chord_track.encode(primer)[:beats]
    if (primer.melody[:steps] >= 0).any():
        line = melody_track.fit_range(primer.melody, center=False)  # keep the primer's register
        forced.melody[:, :steps] = melody_track.tokens_of(line)[:steps]
    if primer.drums[:steps].any():
        forced.drums[:, :steps] = drum_track.encode(primer, models.drum_vocab)[:steps]
