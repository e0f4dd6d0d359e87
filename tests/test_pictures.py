"""Piano roll and MusicXML: the picture has the song's extent; notation software reads the score."""

import numpy as np
import pytest

from arranger.pictures import write_musicxml, write_pianoroll
from tests.helpers import make_score


def test_pianoroll_is_a_png_with_content(tmp_path):
    path = tmp_path / "roll.png"
    write_pianoroll(path, make_score(bars=8))
    import matplotlib.image

    img = matplotlib.image.imread(path)
    assert img.shape[0] > 300 and img.shape[1] > 600
    assert img[..., :3].std() > 0.05  # not a blank canvas


def test_every_layer_is_drawn_in_its_colour(tmp_path):
    """The lanes' notes are drawn (as collections): each layer's colour covers some pixels."""
    import matplotlib.colors
    import matplotlib.image

    from arranger.pictures import _COLORS

    path = tmp_path / "roll.png"
    write_pianoroll(path, make_score(bars=8))
    rgb = matplotlib.image.imread(path)[..., :3]
    for layer, colour in _COLORS.items():
        close = np.abs(rgb - matplotlib.colors.to_rgb(colour)).max(axis=-1) < 0.02
        assert close.sum() > 20, layer


def test_musicxml_names_its_parts(tmp_path):
    music21 = pytest.importorskip("music21")
    path = tmp_path / "score.musicxml"
    write_musicxml(path, make_score(bars=4))
    assert [p.partName for p in music21.converter.parse(str(path)).parts] == [
        "melody", "chords", "bass"]


def test_musicxml_holds_the_melody_chord_symbols_and_length(tmp_path):
    music21 = pytest.importorskip("music21")
    score = make_score(bars=4, key="Eb major")
    path = tmp_path / "score.musicxml"
    write_musicxml(path, score)
    parsed = music21.converter.parse(str(path))
    melody = parsed.parts[0]
    assert len(melody.getElementsByClass("Measure")) == 4
    pitches = [n.pitch.midi for n in melody.recurse().notes if n.isNote]
    expected = score.melody[score.melody >= 0] + score.key.tonic
    assert pitches == expected.tolist()
    symbols = [h.figure for h in melody.recurse().getElementsByClass("ChordSymbol")]
    assert symbols[:3] == ["Fm7", "B-7", "E-maj7"]
    assert np.isclose(parsed.parts[2].duration.quarterLength, 16.0)


@pytest.mark.parametrize("key", ["C major", "Eb major", "F# minor", "Db major"])
def test_every_chord_quality_is_written_and_reads_back_as_its_pitches(tmp_path, key):
    """music21 10.5 rejects 'Cmaj9': every quality must still give a symbol that parses back."""
    music21 = pytest.importorskip("music21")
    from arranger.score import QUALITIES, Chord, Score

    qualities = list(QUALITIES)
    score = Score(len(qualities), key=make_score(key=key).key,
                  chords=tuple(Chord((3 * i) % 12, q) for i, q in enumerate(qualities)
                               for _ in range(4)))
    path = tmp_path / "score.musicxml"
    write_musicxml(path, score)
    symbols = list(music21.converter.parse(str(path)).parts[0].recurse()
                   .getElementsByClass("ChordSymbol"))
    assert len(symbols) == len(qualities)
    for symbol, chord in zip(symbols, score.chords[::4], strict=True):
        expected = {(pc + score.key.tonic) % 12 for pc in chord.pitch_classes()}
        assert {p.pitchClass for p in symbol.pitches} == expected, symbol.figure
        assert music21.harmony.ChordSymbol(symbol.figure).pitches  # the figure itself parses


def test_a_failing_picture_is_one_warning_and_the_other_is_kept(tmp_path, monkeypatch, capsys):
    from arranger import pictures

    def broken(*args, **kwargs):
        raise ValueError("Invalid chord abbreviation 'maj9'")

    monkeypatch.setattr(pictures, "write_musicxml", broken)
    warnings = pictures.write_pictures(tmp_path, make_score(bars=4))
    assert (tmp_path / "pianoroll.png").stat().st_size > 1000
    assert not (tmp_path / "score.musicxml").exists()
    assert len(warnings) == 1 and "score.musicxml" in warnings[0] and "maj9" in warnings[0]
    assert capsys.readouterr().err.strip() == warnings[0]


def test_a_dead_picture_process_keeps_the_song(tmp_path, monkeypatch, capsys):
    import os

    from arranger.compose import drawing, song_folder
    from arranger.manifest import Manifest
    from arranger.preset import load_preset

    monkeypatch.setattr(drawing, "_draw", lambda *a: os._exit(3))  # dies mid-drawing
    preset = load_preset("rainy-night")
    manifest = Manifest(preset.to_dict(), seed=0, bars=4)
    song_folder.write_song(tmp_path / "s", make_score(bars=4), preset, manifest,
                           song_folder.Output(render=False))
    assert (tmp_path / "s" / "score.mid").is_file()
    assert "the song is kept" in capsys.readouterr().err


def test_a_chord_music21_has_no_kind_for_is_named_from_its_pitches(monkeypatch):
    pytest.importorskip("music21")
    from arranger import pictures
    from arranger.score import Chord

    monkeypatch.setattr(pictures, "_kinds", lambda: {})  # as if a release dropped its table
    score = make_score(key="Eb major")
    symbol = pictures.chord_symbol(Chord(2, "m7"), score)
    assert {p.pitchClass for p in symbol.pitches} == {5, 8, 0, 3}  # F Ab C Eb
