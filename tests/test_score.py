import numpy as np
import pytest

from arranger.score import HOLD, REST, Chord, Key, Score, line_from_spans, note_spans
from tests.helpers import make_score


@pytest.mark.parametrize("text,tonic,mode", [("C", 0, "major"), ("Am", 9, "minor"),
                                             ("F# minor", 6, "minor"), ("Eb major", 3, "major"),
                                             ("A:min", 9, "minor"), ("Bb", 10, "major")])
def test_key_parse(text, tonic, mode):
    assert Key.parse(text) == Key(tonic, mode)


@pytest.mark.parametrize("bad", ["", "H", "C lydian"])
def test_key_parse_rejects(bad):
    with pytest.raises(ValueError):
        Key.parse(bad)


def test_chord_pitch_classes_and_name():
    assert Chord(2, "m7").pitch_classes() == {2, 5, 9, 0}
    assert Chord(2, "m7").name(Key(3)) == "Fm7"
    assert Chord(0, "maj").name(Key(7)) == "G"


def test_score_validates():
    with pytest.raises(ValueError, match="tempo"):
        Score(4, tempo_bpm=1000)
    with pytest.raises(ValueError, match="melody"):
        Score(2, melody=np.zeros(5))
    s = Score(2)
    assert s.steps == 32 and len(s.chords) == 8 and (s.melody == REST).all()


def test_note_spans_round_trip():
    line = np.array([60, HOLD, HOLD, REST, 62, 64, HOLD, REST], np.int16)
    spans = note_spans(line)
    assert spans == [(0, 3, 60), (4, 5, 62), (5, 7, 64)]
    assert np.array_equal(line_from_spans(spans, len(line)), line)


def test_copy_is_deep():
    s = make_score()
    c = s.copy()
    c.melody[0] = 99
    assert s.melody[0] != 99 and not s.equals(c)


def test_drum_notes_map_to_classes_as_general_midi_and_the_groove_dataset_use_them():
    from arranger.score import DRUM_CLASS_NOTES, DRUM_CLASSES, drum_class_of_pitch

    def name(pitch):
        return DRUM_CLASSES[drum_class_of_pitch(pitch)]

    # General MIDI toms from the low floor tom up: low, low, mid, mid, high, high.
    assert [name(p) for p in (41, 43, 45, 47, 48, 50)] == ["low_tom"] * 2 + ["mid_tom"] * 2 + [
        "high_tom"] * 2
    # Groove MIDI (Roland TD-11): tom 1 head/rim 48/50, tom 2 45/47, floor tom 43/58.
    assert {name(p) for p in (48, 50)} == {"high_tom"} and name(58) == "low_tom"
    assert [name(p) for p in (22, 26, 44, 52, 55, 53, 59)] == [
        "closed_hat", "open_hat", "closed_hat", "crash", "crash", "ride", "ride"]
    for cls, notes in enumerate(DRUM_CLASS_NOTES):  # what is written reads back as itself
        assert drum_class_of_pitch(notes[0]) == cls
    every = [note for notes in DRUM_CLASS_NOTES for note in notes]
    assert len(every) == len(set(every))  # no note in two classes (the high-tom bug)


@pytest.mark.parametrize(("text", "names"), [
    ("E major", ("C#m9", "G#m7")),  # a sharp key names its chords with sharps
    ("Em", ("C#m9", "G#m7")),
    ("F minor", ("Dm9", "Am7")),
    ("Db", ("Bbm9", "Fm7")),
    ("C#m", ("A#m9", "Fm7")),  # as written
])
def test_chords_are_spelt_as_the_key_signature_does(text, names):
    key = Key.parse(text)
    assert (Chord(9, "m9").name(key), Chord(4, "m7").name(key)) == names
