"""Song sections: the form, layers that rest, repeats, regenerating a section, effects."""

from dataclasses import replace

import numpy as np
import pytest

from arranger import midi_io
from arranger.audio.config import EffectSpec, LayerSound
from arranger.audio.sections import section_window, with_section_effects
from arranger.compose.coordinator import compose, ending_forced, generate_tokens
from arranger.compose.generate import generate
from arranger.compose.plan import Forced, Plan
from arranger.compose.regenerate import regenerate
from arranger.compose.sections import Form, Section, fit
from arranger.compose.song_folder import Output
from arranger.errors import InputError
from arranger.preset import load_preset
from arranger.song_settings import SongSettings
from tests.helpers import save_models, tiny_models

MIDI_ONLY = Output(render=False, pictures=False, progress=False)
FORM_28 = """inherits = "rainy-night"
[song]
candidates = 2
[[song.sections]]
name = "intro"
bars = 4
layers = ["chords", "melody"]
effects = { chords = [{ type = "LowPass", cutoff_frequency_hz = 800.0 }] }
[[song.sections]]
name = "A"
bars = 8
[[song.sections]]
name = "break"
bars = 4
layers = ["chords", "melody", "bass"]
[[song.sections]]
name = "A"
bars = 8
[[song.sections]]
name = "outro"
bars = 4
layers = ["chords"]
"""
A1, A2 = slice(4 * 16, 12 * 16), slice(16 * 16, 24 * 16)  # the two A sections, in steps


def bars_with(line: np.ndarray, sounding) -> list[int]:
    """The 0-based bars of a step line where ``sounding(values)`` holds for some step."""
    return [b for b in range(len(line) // 16) if sounding(line[b * 16:(b + 1) * 16]).any()]


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    return save_models(tiny_models(), tmp_path_factory.mktemp("weights"))


@pytest.fixture(scope="module")
def form_preset(tmp_path_factory):
    path = tmp_path_factory.mktemp("presets") / "form28.toml"
    path.write_text(FORM_28)
    return load_preset(str(path))


@pytest.fixture
def song(tmp_path, weights, form_preset):
    out = tmp_path / "song"
    generate(form_preset, out, seed=3, weights=weights, output=MIDI_ONLY)
    return out


def test_song_length_is_the_sum_of_the_sections(form_preset):
    assert form_preset.song.bars == 28
    assert [s.name for s in form_preset.song.sections] == ["intro", "A", "break", "A", "outro"]


def test_layers_rest_where_their_section_leaves_them_out(song):
    score = midi_io.read_midi(song / "score.mid")
    drum_bars = bars_with(score.drums, lambda d: d > 0)
    assert set(drum_bars) <= set(range(4, 12)) | set(range(16, 24)) and drum_bars
    assert not bars_with(score.melody, lambda m: m >= 0)[-1] >= 24  # no melody in the outro
    assert max(bars_with(score.bass, lambda b: b >= 0)) < 24
    assert not bars_with(score.bass, lambda b: b >= 0)[0] < 4  # no bass in the intro
    assert all(c is not None for c in score.chords)  # chords play everywhere


def test_a_repeated_section_replays_its_chords_and_melody(song):
    score = midi_io.read_midi(song / "score.mid")
    assert score.chords[16:48] == score.chords[64:96]
    assert np.array_equal(score.melody[A1], score.melody[A2])
    # the drums too, but for fills: the section's last bar and every 4th bar are free
    groove = [b for b in range(8) if b % 4 != 3]
    d1, d2 = score.drums[A1].reshape(8, 16), score.drums[A2].reshape(8, 16)
    assert np.array_equal(d1[groove], d2[groove])


def test_regenerate_a_section_renews_every_occurrence_and_nothing_else(song):
    before = midi_io.read_midi(song / "score.mid")
    done = regenerate(song, "melody", section="A", seed=11, output=MIDI_ONLY)
    after = midi_io.read_midi(song / "score.mid")
    assert done.bars == "5-12,17-24"
    changed = bars_with(before.melody != after.melody, lambda x: x)
    assert changed and set(changed) <= set(range(4, 12)) | set(range(16, 24))
    assert set(changed) & set(range(4, 12)) and set(changed) & set(range(16, 24))
    assert np.array_equal(after.melody[A1], after.melody[A2])  # still a repeat
    assert after.chords == before.chords
    for layer in ("bass", "drums"):
        assert np.array_equal(getattr(after, layer), getattr(before, layer))


def test_regenerate_a_section_refuses_unknown_names_and_bars_with_it(song):
    with pytest.raises(InputError, match="one of intro, A, break, outro"):
        regenerate(song, "melody", section="B", output=MIDI_ONLY)
    with pytest.raises(InputError, match="no bars with a section"):
        regenerate(song, "melody", section="A", bars="1-2", output=MIDI_ONLY)


def test_a_section_regenerated_reproduces_from_the_manifest(tmp_path, song):
    from arranger.compose.reproduce import reproduce

    regenerate(song, None, section="break", seed=4, output=MIDI_ONLY)
    again = reproduce(song / "manifest.json", tmp_path / "again", output=MIDI_ONLY)
    assert (again / "score.mid").read_bytes() == (song / "score.mid").read_bytes()


def test_one_section_over_the_whole_song_changes_nothing():
    """The section machinery is neutral: a form of one all-layer section gives the tokens of
    the song without sections (so presets without sections write what they wrote)."""
    models = tiny_models()
    song = SongSettings(bars=8, drum_loop_bars=2, melody_form="AB", candidates=1)
    plain = Plan(song, {})
    one = Plan(replace(song, sections=(Section("A", 8),)), {})
    tokens = []
    for plan in (plain, one):
        forced = Forced.free(3, 8)
        ending_forced(forced, plan, models)
        gen = generate_tokens(models, plan, forced, 5)
        tokens.append((gen.chords, gen.melody, gen.drums))
    for a, b in zip(*tokens, strict=True):
        assert np.array_equal(a, b)


def test_fit_keeps_intro_and_outro_and_cycles_the_body():
    s = [Section("intro", 4), Section("A", 8), Section("B", 8), Section("outro", 4)]
    assert [(p.section.name, p.bars) for p in fit(s, 24)] == [
        ("intro", 4), ("A", 8), ("B", 8), ("outro", 4)]
    assert [(p.section.name, p.bars) for p in fit(s, 36)] == [
        ("intro", 4), ("A", 8), ("B", 8), ("A", 8), ("B", 4), ("outro", 4)]
    assert [(p.section.name, p.bars) for p in fit(s, 6)] == [("A", 6)]  # the body alone


def test_a_shorter_song_of_a_form_still_rests_where_it_says(weights):
    preset = load_preset("worn-tape")
    plan = preset.plan(12, bass_seed=0).with_song(candidates=1)
    score = compose(tiny_models(), plan, seed=1)[0]
    assert plan.form is not None and [p.section.name for p in plan.form.parts] == [
        "intro", "A", "outro"]
    assert not score.drums[:64].any() and not score.drums[-64:].any()


def test_a_repeat_copies_the_first_occurrence_that_plays_the_layer():
    form = Form.of([Section("A", 4, ("chords",)), Section("A", 4), Section("A", 4)], 12)
    assert form.source["melody"].tolist() == [-1] * 8 + [4, 5, 6, 7]
    assert form.source["chords"].tolist() == [-1] * 4 + [0, 1, 2, 3] * 2


@pytest.mark.parametrize("section, expected", [
    ({"name": "x", "bars": 4, "layers": ["bass"]}, "song.sections[0].layers = ['bass']: "
     "expected a list of layers from chords, melody, bass, drums, each once (bass only with "
     "chords: it follows them)"),
    ({"name": "x"}, "song.sections[0].bars = (missing): expected an integer in 1..512"),
    ({"name": "x", "bars": 4, "layers": ["chords", "chords"]}, "each once"),
    ({"name": "x", "bars": 4, "effects": {"horn": []}}, "song.sections[0].effects.horn"),
    ({"name": "", "bars": 4}, "song.sections[0].name = '': expected a name of 1..32"),
])
def test_bad_sections_name_the_field(section, expected):
    with pytest.raises(InputError) as e:
        SongSettings.from_dict({"sections": [section]}, "x.toml: song")
    assert expected in str(e.value) and str(e.value).startswith("x.toml: ")


def test_sections_round_trip_through_a_manifest_table(form_preset):
    song = form_preset.song
    assert SongSettings.from_dict(song.to_dict()) == song


def test_a_section_effect_changes_only_its_bars():
    rate, n = 8000, 16000
    raw = np.random.default_rng(0).standard_normal((2, n)).astype(np.float32) * 0.1
    sound = LayerSound()
    dry = with_section_effects(raw, raw.copy(), sound, rate, 0, "chords", [])
    low = EffectSpec("LowPass", {"cutoff_frequency_hz": 300.0})
    out = with_section_effects(raw, dry, sound, rate, 0, "chords", [(0.0, 1.0, "chords", (low,))])

    def high_energy(x):
        spectrum = np.abs(np.fft.rfft(x[0]))
        return spectrum[len(spectrum) // 2:].sum()

    first, second = slice(0, 7000), slice(9000, n)  # away from the 1 s crossfade
    assert high_energy(out[:, first]) < 0.1 * high_energy(dry[:, first])
    assert np.allclose(out[:, second], dry[:, second])
    w = section_window(n, 0.0, 1.0, rate)
    assert w[0] == 1.0 and w[-1] == 0.0 and np.all(np.diff(w[7000:9000]) <= 0)


def test_a_melody_comes_in_where_its_section_starts_and_is_judged_where_it_plays():
    import torch

    from arranger.compose.sections import judged, played
    from arranger.evaluation import checks
    from tracks import melody as melody_track

    models = tiny_models()
    with torch.no_grad():  # a melody model that would rather rest
        models.melody.model.head.bias[melody_track.REST_TOKEN] += 6.0
    song = SongSettings(bars=12, drum_loop_bars=0, ending=False, sections=(
        Section("intro", 4, ("chords", "drums")), Section("A", 8)))
    plan = Plan(song, {})
    entries, empty = {}, {}
    for gap in (0.0, 1.0):
        scores = compose(models, plan.with_song(melody_gap_bars=gap), seed=2, variations=8)
        cut = [played(s, plan.form, "melody") for s in scores]
        assert all(c.bars == 8 and np.array_equal(c.melody, s.melody[64:])
                   for c, s in zip(cut, scores, strict=True))
        assert all(judged(s, plan.form).bars == 8 for s in scores)  # most layers: bars 4..11
        entries[gap] = np.mean([(c.melody[:16] >= 0).any() for c in cut])
        empty[gap] = np.mean([checks.empty_melody_bars(c) for c in cut])
    assert entries[1.0] == 1.0 and entries[0.0] <= 0.25, entries  # drawn in at once
    assert empty[1.0] < 0.2 < 0.5 < empty[0.0], empty  # and its bars keep a note
    assert played(scores[0], Form.of([Section("x", 12, ("chords",))], 12), "melody") is None
