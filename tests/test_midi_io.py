import io

import numpy as np
import pretty_midi
import pytest

from arranger import midi_io
from arranger.errors import InputError
from arranger.score import STEPS_PER_BAR, Chord, Key
from tests.helpers import make_score


def _reread(pm):
    return midi_io.from_midi(pretty_midi.PrettyMIDI(io.BytesIO(midi_io.midi_bytes(pm))))


@pytest.mark.parametrize("key", ["C major", "Eb major", "F# minor", "A minor"])
@pytest.mark.parametrize("tempo", [72.0, 78.0, 91.5])
def test_score_round_trips_through_midi(key, tempo):
    score = make_score(bars=4, key=key, tempo_bpm=tempo)
    score.swing = 0.2
    back = _reread(midi_io.to_midi(score))
    assert back.equals(score)


def test_midi_layout():
    score = make_score(bars=8)
    pm = midi_io.to_midi(score, {"chords": 5, "melody": 11, "bass": 33})
    names = {i.name: i for i in pm.instruments}
    assert set(names) == {"chords", "bass", "melody", "drums"}
    assert names["drums"].is_drum and not names["bass"].is_drum
    assert names["chords"].program == 5 and names["melody"].program == 11
    step = score.seconds_per_step
    for inst in pm.instruments:  # every onset on the straight 16th grid
        onsets = np.array([n.start for n in inst.notes]) / step
        assert np.allclose(onsets, np.round(onsets), atol=1e-6)
    # exactly 8 bars long
    assert pm.get_end_time() == pytest.approx(8 * STEPS_PER_BAR * step)


def test_melody_pitches_are_key_relative():
    score = make_score(bars=1, key="D major")
    pm = midi_io.to_midi(score)
    melody = next(i for i in pm.instruments if i.name == "melody")
    first_pitch = melody.notes[0].pitch
    assert first_pitch == int(score.melody[0]) + 2


def test_chords_are_recognised_without_text_events():
    score = make_score(bars=4, key="Bb major")
    pm = midi_io.to_midi(score)
    pm.text_events = [t for t in pm.text_events if t.text.startswith("lofi:")]
    back = midi_io.from_midi(pm)
    assert back.chords == score.chords


@pytest.mark.parametrize("name,chord", [("Dm7", Chord(2, "m7")), ("G7", Chord(7, "7")),
                                        ("Cmaj9", Chord(0, "maj9")), ("F#m7b5", Chord(6, "m7b5")),
                                        ("N", None)])
def test_parse_chord_name(name, chord):
    assert midi_io.parse_chord_name(name, Key(0)) == chord


def test_assign_layers_by_program_and_drum_flag():
    pm = pretty_midi.PrettyMIDI()
    for program, drum in [(33, False), (0, True), (4, False), (73, False)]:
        inst = pretty_midi.Instrument(program, is_drum=drum, name="track")
        inst.notes.append(pretty_midi.Note(80, 60, 0, 1))
        pm.instruments.append(inst)
    layers = midi_io.assign_layers(pm)
    assert {k: v.program for k, v in layers.items()} == {"bass": 33, "drums": 0, "chords": 4,
                                                         "melody": 73}


@pytest.mark.parametrize("damage", ["empty", "truncated", "garbage"])
def test_unreadable_midi_is_one_line_naming_the_file(tmp_path, damage):
    data = midi_io.midi_bytes(midi_io.to_midi(make_score(bars=2)))
    path = tmp_path / "score.mid"
    path.write_bytes({"empty": b"", "truncated": data[: len(data) // 2],
                      "garbage": b"MThd" + bytes(range(200))}[damage])
    with pytest.raises(InputError) as error:
        midi_io.read_midi(path)
    line = str(error.value)
    assert line.startswith(f"{path}: ") and "\n" not in line
    assert ("empty" if damage == "empty" else "MIDI data") in line
    with pytest.raises(FileNotFoundError, match="no such MIDI file"):
        midi_io.read_midi(tmp_path / "missing.mid")


def test_regenerate_of_a_truncated_score_is_one_line_not_aborted(tmp_path):
    from typer.testing import CliRunner

    from arranger.cli.main import app
    from tests.helpers import save_models, tiny_models

    runner = CliRunner()
    weights = save_models(tiny_models(), tmp_path / "w")
    song = tmp_path / "song"
    made = runner.invoke(app, ["generate", "--bars", "4", "--out", str(song), "--weights",
                               str(weights), "--no-render"])
    assert made.exit_code == 0, made.output
    score = song / "score.mid"
    score.write_bytes(score.read_bytes()[:60])
    before = {p.name: p.read_bytes() for p in song.iterdir() if p.is_file()}
    result = runner.invoke(app, ["regenerate", str(song), "--layer", "drums", "--no-render"])
    assert result.exit_code == 2, result.output
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "score.mid" in lines[0] and "truncated" in lines[0], lines
    assert {p.name: p.read_bytes() for p in song.iterdir() if p.is_file()} == before


def _drum_velocities(pm: pretty_midi.PrettyMIDI, note: int) -> list[int]:
    drums = next(i for i in pm.instruments if i.name == "drums")
    return [n.velocity for n in drums.notes if n.pitch == note]


def test_each_drum_hit_keeps_its_own_velocity_through_midi():
    from arranger.score import DRUM_CLASS_NOTES, DRUM_VELOCITIES

    score = make_score(bars=2)
    plain = midi_io.to_midi(score)  # no hit velocities: one per step level, as before
    assert set(_drum_velocities(plain, DRUM_CLASS_NOTES[1][0])) == {DRUM_VELOCITIES[1]}
    hits = score.hit_velocities().astype(int)
    hits[:, 1] = np.where(hits[:, 1] > 0, 99, 0)  # snares at 99, hats and kicks at 85
    hits[:, 2] = np.where(hits[:, 2] > 0, 52, 0)
    score.drum_hit_velocity = hits
    pm = midi_io.to_midi(score)
    assert set(_drum_velocities(pm, DRUM_CLASS_NOTES[1][0])) == {99}
    assert set(_drum_velocities(pm, DRUM_CLASS_NOTES[2][0])) == {52}
    back = _reread(pm)
    np.testing.assert_array_equal(back.hit_velocities(), score.hit_velocities())
    assert back.equals(score) and not back.equals(make_score(bars=2))
    again = midi_io.midi_bytes(midi_io.to_midi(back))
    assert again == midi_io.midi_bytes(pm)  # a song read back writes the same bytes


def test_a_drum_model_with_a_velocity_table_writes_its_velocities():
    """Songs written with a table: each hit at its table velocity, levels read back as
    generated; without a table (weights from before): one velocity per step level."""
    from arranger.compose.coordinator import compose
    from arranger.preset import load_preset
    from arranger.score import DRUM_CLASSES, DRUM_VELOCITIES
    from tests.helpers import tiny_models
    from tracks import drums as drum_track

    shape = (len(DRUM_CLASSES), STEPS_PER_BAR, drum_track.LEVELS)
    table = np.full(shape, 60)
    table[:, :, 1], table[:, :, 2] = 75, 105
    table[DRUM_CLASSES.index("snare"), [4, 12]] = (40, 95, 120)
    models = tiny_models()
    plan = load_preset("dusty-boom-bap").plan(8, bass_seed=1)
    before = compose(models, plan, seed=3)[0]
    assert before.drum_hit_velocity is None
    models.drums.card = drum_track.VelocityTable({"": table}).to_card()
    song = compose(models, plan, seed=3)[0]
    np.testing.assert_array_equal(song.drums, before.drums)  # the same hits, other velocities
    back = _reread(midi_io.to_midi(song))
    np.testing.assert_array_equal(back.drum_velocity, song.drum_velocity)
    assert set(np.unique(before.hit_velocities())) <= {0, *DRUM_VELOCITIES}
    looked_up = drum_track.VelocityTable({"": table}).hit_velocities(
        song.drums, song.drum_velocity, plan.song.drum_style)
    np.testing.assert_array_equal(song.hit_velocities(), looked_up)
    np.testing.assert_array_equal(back.hit_velocities(), looked_up)
    assert set(np.unique(looked_up)) & {60, 75, 95, 105, 120}
