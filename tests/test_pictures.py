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
