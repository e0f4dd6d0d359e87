"""The pipeline without audio: generate, reproduce, regenerate one layer, atomic outputs."""

import threading

import numpy as np
import pytest

from arranger import midi_io
from arranger.atomic import FolderBusyError, FolderExistsError, song_lock
from arranger.compose import generate as generate_module
from arranger.compose.generate import derive_bass, generate
from arranger.compose.regenerate import parse_bars, regenerate
from arranger.compose.reproduce import reproduce
from arranger.compose.song_folder import Output
from arranger.errors import InputError
from arranger.manifest import Manifest
from arranger.preset import load_preset
from arranger.score import DRUM_CLASSES, LAYERS, STEPS_PER_BAR
from tests.helpers import save_models, tiny_models

MIDI_ONLY = Output(render=False, pictures=False, progress=False)


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    return save_models(tiny_models(), tmp_path_factory.mktemp("weights"))


@pytest.fixture
def song(tmp_path, weights):
    out = tmp_path / "song"
    generate(load_preset("rainy-night"), out, seed=5, bars=8, weights=weights, output=MIDI_ONLY)
    return out


def test_same_seed_same_bytes_other_seed_differs(tmp_path, weights, song):
    again = tmp_path / "again"
    generate(load_preset("rainy-night"), again, seed=5, bars=8, weights=weights, output=MIDI_ONLY)
    other = tmp_path / "other"
    generate(load_preset("rainy-night"), other, seed=6, bars=8, weights=weights, output=MIDI_ONLY)
    assert (song / "score.mid").read_bytes() == (again / "score.mid").read_bytes()
    assert (song / "score.mid").read_bytes() != (other / "score.mid").read_bytes()


def test_manifest_reproduces_score_byte_for_byte(tmp_path, song):
    reproduce(song / "manifest.json", tmp_path / "copy", output=MIDI_ONLY)
    assert (tmp_path / "copy" / "score.mid").read_bytes() == (song / "score.mid").read_bytes()
    m = Manifest.load(song)
    assert m.seed == 5 and m.preset["name"] == "rainy-night" and len(m.weights_sha256) == 64
    assert m.render_seed == 5 and (m.variations, m.index) == (1, 0)
    assert m.packages["torch"].startswith("2.")


def _layers(folder):
    return midi_io.read_midi(folder / "score.mid")


def test_regenerate_drums_keeps_every_other_layer(song):
    before = _layers(song)
    result = regenerate(song, "drums", seed=11, output=MIDI_ONLY)
    after = _layers(song)
    assert after.chords == before.chords
    assert np.array_equal(after.melody, before.melody) and np.array_equal(after.bass, before.bass)
    assert not np.array_equal(after.drums, before.drums)
    assert Manifest.load(song).history == [{"layer": "drums", "bars": "1-8", "seed": 11}]
    assert (result.layer, result.bars, result.seed) == ("drums", "1-8", 11)
    assert result.score.equals(after)


def _table_weights(folder):
    """Tiny models whose drum card carries a velocity table that varies per class and step."""
    from tracks.drums import LEVEL_RANGES, LEVELS, VelocityTable

    models = tiny_models()
    rng = np.random.default_rng(3)
    cells = np.stack([rng.integers(lo, hi + 1, (len(DRUM_CLASSES), STEPS_PER_BAR))
                      for lo, hi in LEVEL_RANGES[:LEVELS]], axis=-1)
    table = VelocityTable({"": cells})
    models.drums.card.update(table.to_card())
    return save_models(models, folder), table


def test_regenerated_drum_bars_take_the_takes_velocities_and_keep_the_others(tmp_path):
    weights, table = _table_weights(tmp_path / "w")
    out = tmp_path / "song"
    generate(load_preset("rainy-night"), out, seed=5, bars=8, weights=weights, output=MIDI_ONLY)
    before = _layers(out)
    regenerate(out, "drums", bars="3-4", seed=11, output=MIDI_ONLY)
    after = _layers(out)
    s0, s1 = 2 * STEPS_PER_BAR, 4 * STEPS_PER_BAR
    assert not np.array_equal(after.drums[s0:s1], before.drums[s0:s1])
    kept = np.r_[0:s0, s1:after.steps]
    assert after.hit_velocities()[kept].tobytes() == before.hit_velocities()[kept].tobytes()
    played = table.hit_velocities(after.drums, after.drum_velocity, after.style)
    assert np.array_equal(after.hit_velocities()[s0:s1], played[s0:s1])
    assert len(np.unique(after.hit_velocities()[s0:s1][played[s0:s1] > 0])) > 3  # not by level


@pytest.mark.parametrize("old_has,take_has", [(True, False), (False, True), (False, False)])
def test_splicing_drums_handles_songs_and_takes_without_per_hit_velocities(old_has, take_has):
    from arranger.compose.regenerate import _splice
    from tests.test_checks import BOOM_BAP, drums_score

    old, take = drums_score(4, BOOM_BAP), drums_score(4, BOOM_BAP)
    take.drums[16:32] = take.drums[16:32][::-1]
    for score, has, vel in ((old, old_has, 50), (take, take_has, 90)):
        if has:
            score.drum_hit_velocity = np.where(score.hit_velocities() > 0, vel, 0)
    spliced = _splice(old, old.copy(), take, "drums", 1, 2, 0, load_preset("rainy-night"))
    assert spliced.hit_velocities()[16:32].tobytes() == take.hit_velocities()[16:32].tobytes()
    rest = np.r_[0:16, 32:64]
    assert spliced.hit_velocities()[rest].tobytes() == old.hit_velocities()[rest].tobytes()
    assert (spliced.drum_hit_velocity is None) == (not old_has and not take_has)


def test_regenerate_without_a_seed_picks_a_new_one_and_says_which(song):
    first = regenerate(song, "drums", output=MIDI_ONLY)
    second = regenerate(song, "drums", output=MIDI_ONLY)
    assert (first.seed, second.seed) == (5 + 1, 5 + 2)
    assert [h["seed"] for h in Manifest.load(song).history] == [6, 7]


def test_regenerate_melody_bars_changes_only_those_bars(song):
    before = _layers(song)
    regenerate(song, "melody", bars="3-4", seed=2, output=MIDI_ONLY)
    after = _layers(song)
    s0, s1 = 2 * STEPS_PER_BAR, 4 * STEPS_PER_BAR
    assert np.array_equal(after.melody[:s0], before.melody[:s0])
    # The first kept step after the range may be re-struck if its note was held into it.
    assert np.array_equal(after.melody[s1 + 1:], before.melody[s1 + 1:])
    assert not np.array_equal(after.melody[s0:s1], before.melody[s0:s1])
    assert np.array_equal(after.drums, before.drums) and after.chords == before.chords


def test_regenerate_chords_moves_the_bass_with_it(song):
    before = _layers(song)
    regenerate(song, "chords", bars="5-8", seed=3, output=MIDI_ONLY)
    after = _layers(song)
    assert after.chords[:16] == before.chords[:16]
    assert np.array_equal(after.bass[:3 * STEPS_PER_BAR], before.bass[:3 * STEPS_PER_BAR])
    assert np.array_equal(after.melody, before.melody)


def test_regenerated_song_reproduces_from_manifest(tmp_path, song):
    regenerate(song, "melody", bars="2-3", seed=9, output=MIDI_ONLY)
    reproduce(song / "manifest.json", tmp_path / "copy", output=MIDI_ONLY)
    assert (tmp_path / "copy" / "score.mid").read_bytes() == (song / "score.mid").read_bytes()


def test_existing_output_needs_force(tmp_path, weights, song):
    with pytest.raises(FolderExistsError, match="out = .*: expected a new or empty folder"):
        generate(load_preset("rainy-night"), song, seed=1, bars=8, weights=weights,
                 output=MIDI_ONLY)
    generate(load_preset("rainy-night"), song, seed=1, bars=8, weights=weights, output=MIDI_ONLY,
             force=True)


def test_existing_output_is_refused_before_composing(tmp_path, weights, song, monkeypatch):
    """#12.12: the folder check ran after composing (26 s into a 200-bar song)."""
    def compose_spy(*a, **k):
        raise AssertionError("composed before checking the output folder")

    monkeypatch.setattr(generate_module, "compose", compose_spy)
    with pytest.raises(FolderExistsError):
        generate(load_preset("rainy-night"), song, seed=1, bars=8, weights=weights,
                 output=MIDI_ONLY)
    with pytest.raises(FolderExistsError):
        reproduce(song / "manifest.json", song, output=MIDI_ONLY)


def test_failed_generation_leaves_previous_contents(tmp_path, weights, song, monkeypatch):
    before = (song / "score.mid").read_bytes()

    def boom(*a, **k):
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(generate_module, "write_song", boom)
    with pytest.raises(RuntimeError):
        generate(load_preset("rainy-night"), song, seed=1, bars=8, weights=weights,
                 output=MIDI_ONLY, force=True)
    assert (song / "score.mid").read_bytes() == before
    assert sorted(p.name for p in song.parent.iterdir()) == ["song"]


def test_variations_are_written_in_numbered_folders(tmp_path, weights):
    folders = generate(load_preset("rainy-night"), tmp_path / "v", seed=1, bars=4,
                       weights=weights, variations=3, output=MIDI_ONLY)
    assert [f.name for f in folders] == ["01", "02", "03"]
    midis = {(f / "score.mid").read_bytes() for f in folders}
    assert len(midis) == 3
    reproduce(folders[1] / "manifest.json", tmp_path / "copy", output=MIDI_ONLY)
    assert (tmp_path / "copy" / "score.mid").read_bytes() == (folders[1] / "score.mid").read_bytes()


def test_variation_i_has_seed_s_plus_i_for_bass_render_and_manifest(tmp_path, weights):
    """#12.15, song side: variation i of seed s is the song of seed s + i."""
    preset = load_preset("rainy-night")
    folders = generate(preset, tmp_path / "v", seed=10, bars=4, weights=weights, variations=3,
                       output=MIDI_ONLY)
    for i, folder in enumerate(folders):
        m, score = Manifest.load(folder), _layers(folder)
        assert (m.seed, m.render_seed, m.index, m.variations) == (10 + i, 10 + i, i, 3)
        assert np.array_equal(score.bass, derive_bass(score, preset, 10 + i))


def test_variation_i_is_the_single_song_of_seed_s_plus_i(tmp_path, weights):
    """#12.15: with the coordinator's per-row streams, the whole song (not only the bass)."""
    preset = load_preset("rainy-night")
    folders = generate(preset, tmp_path / "v", seed=20, bars=4, weights=weights, variations=3,
                       output=MIDI_ONLY)
    for i in (1, 2):
        single = generate(preset, tmp_path / f"s{i}", seed=20 + i, bars=4, weights=weights,
                          output=MIDI_ONLY)[0]
        assert (single / "score.mid").read_bytes() == (folders[i] / "score.mid").read_bytes()


@pytest.mark.parametrize("text,expected", [(None, (0, 8)), ("3-4", (2, 4)), ("8", (7, 8))])
def test_parse_bars(text, expected):
    assert parse_bars(text, 8) == expected


@pytest.mark.parametrize("text,expected", [("0-2", "1 <= A <= B <= 8"),
                                           ("4-3", "1 <= A <= B <= 8"),
                                           ("9-x", "A-B, e.g. 9-16"), ("1-9", "<= 8")])
def test_parse_bars_rejects_naming_the_field_not_a_flag(text, expected):
    with pytest.raises(InputError) as caught:
        parse_bars(text, 8)
    assert caught.value.field == "bars" and caught.value.value == text
    assert str(caught.value).startswith(f"bars = {text!r}: expected ")
    assert expected in caught.value.expected and "--" not in str(caught.value)


def test_huge_request_is_refused_before_any_work(tmp_path, weights):
    with pytest.raises(InputError, match=r"^bars = 10000: expected 2\.\.512 bars$"):
        generate(load_preset("rainy-night"), tmp_path / "x", seed=0, bars=10000, weights=weights,
                 output=MIDI_ONLY)
    with pytest.raises(InputError, match=r"^bars = 0: expected 2\.\.512 bars$"):
        generate(load_preset("rainy-night"), tmp_path / "x", seed=0, bars=0, weights=weights,
                 output=MIDI_ONLY)  # not "the preset's length"
    with pytest.raises(InputError, match=r"^variations = 0: expected 1\.\.64"):
        generate(load_preset("rainy-night"), tmp_path / "x", seed=0, variations=0,
                 weights=weights, output=MIDI_ONLY)
    assert not (tmp_path / "x").exists() and list(tmp_path.iterdir()) == []


def test_bad_layer_names_the_field(song):
    with pytest.raises(InputError, match=r"^layer = 'vocals': expected one of chords, "):
        regenerate(song, "vocals", output=MIDI_ONLY)


def test_regenerate_waits_for_a_locked_song_then_refuses_with_one_line(song):
    """#12.4: a second run on a song being changed must not silently lose an edit."""
    before = (song / "manifest.json").read_bytes()
    held, release = threading.Event(), threading.Event()

    def other_run():
        with song_lock(song):
            held.set()
            release.wait(10)

    thread = threading.Thread(target=other_run)
    thread.start()
    held.wait(10)
    try:
        with pytest.raises(FolderBusyError) as caught:
            regenerate(song, "drums", seed=1, output=MIDI_ONLY, lock_timeout_s=0.3)
    finally:
        release.set()
        thread.join()
    assert "busy" in str(caught.value) and "\n" not in str(caught.value)
    assert (song / "manifest.json").read_bytes() == before
    regenerate(song, "drums", seed=1, output=MIDI_ONLY, lock_timeout_s=5)  # free again
    assert len(Manifest.load(song).history) == 1


def test_regenerate_inside_the_callers_own_lock(song):
    """The studio holds the song's lock around its own steps and regenerate inside them."""
    with song_lock(song, timeout_s=1):
        regenerate(song, "drums", seed=1, output=MIDI_ONLY, lock_timeout_s=1)
    assert len(Manifest.load(song).history) == 1


def test_regenerate_midi_only_removes_pictures_it_does_not_redraw(tmp_path, weights):
    out = tmp_path / "drawn"
    generate(load_preset("rainy-night"), out, seed=2, bars=4, weights=weights,
             output=Output(render=False, progress=False))
    assert (out / "pianoroll.png").exists() and (out / "score.musicxml").exists()
    result = regenerate(out, "melody", seed=8, output=MIDI_ONLY)
    assert set(result.removed) == {"pianoroll.png", "score.musicxml"}
    assert sorted(p.name for p in out.iterdir()) == ["manifest.json", "score.mid"]


def _stems(folder):
    """Layer stems (WAV) by file name."""
    return {p.name: p.read_bytes() for p in (folder / "stems").glob("*.wav") if p.stem in LAYERS}


def test_regenerate_rewrites_only_that_stem_and_the_mix(tmp_path, weights):
    out = tmp_path / "rendered"
    audio = Output(formats=("wav",), pictures=False, progress=False)
    generate(load_preset("rainy-night"), out, seed=2, bars=4, weights=weights, output=audio)
    before = _stems(out)
    mix_before = (out / "mix.wav").read_bytes()
    regenerate(out, "melody", seed=8, output=audio)
    after = _stems(out)
    assert set(after) == {"chords.wav", "melody.wav", "bass.wav", "drums.wav"}
    for name in ("chords.wav", "bass.wav", "drums.wav"):
        assert after[name] == before[name]
    assert after["melody.wav"] != before["melody.wav"]
    assert (out / "mix.wav").read_bytes() != mix_before
    assert len({len(b) for b in after.values()}) == 1  # stems keep one length

    # #12.11: --no-render must not leave audio that no longer matches score.mid.
    no_audio = Output(render=False, pictures=False, progress=False)
    result = regenerate(out, "chords", bars="3-4", seed=4, output=no_audio)
    assert {"mix.wav", "stems/chords.wav", "stems/bass.wav"} <= set(result.removed)
    assert all(n == "mix.wav" or n.split("/")[1].split(".")[0] in ("chords", "bass")
               for n in result.removed)
    assert not any(p.stem in ("chords", "bass") for p in (out / "stems").iterdir())
    assert _stems(out) == {n: after[n] for n in ("melody.wav", "drums.wav")}  # still match
    assert not (out / "mix.wav").exists()
    # The next rendering run renders what is missing as well as what it changed.
    regenerate(out, "drums", seed=5, output=audio)
    final = _stems(out)
    assert set(final) == set(after) and final["melody.wav"] == after["melody.wav"]
    assert (out / "mix.wav").exists()


def test_primer_bars_are_kept_and_its_key_and_tempo_win(tmp_path, weights):
    """#12.13: the song takes the primer's key and tempo, and the manifest says so."""
    from tests.helpers import make_score

    preset = load_preset("sunday-morning")
    primer = make_score(bars=2, key="A minor", tempo_bpm=93.0)
    assert preset.song.tempo_bpm != 93.0 and preset.key != primer.key
    midi_io.write_midi(tmp_path / "primer.mid", primer)
    generate(preset, tmp_path / "p", seed=1, bars=6, weights=weights,
             primer=tmp_path / "primer.mid", output=MIDI_ONLY)
    song = midi_io.read_midi(tmp_path / "p" / "score.mid")
    assert song.key == primer.key and song.tempo_bpm == 93.0
    assert np.array_equal(song.melody[:32], primer.melody[:32])
    assert song.chords[:8] == primer.chords[:8]
    assert np.array_equal(song.drums[:32], primer.drums[:32])
    recorded = Manifest.load(tmp_path / "p").preset["song"]
    assert (recorded["key"], recorded["tempo_bpm"]) == ("A minor", 93.0)
    reproduce(tmp_path / "p" / "manifest.json", tmp_path / "again", output=MIDI_ONLY)
    assert ((tmp_path / "again" / "score.mid").read_bytes()
            == (tmp_path / "p" / "score.mid").read_bytes())


def test_primer_outside_the_tempo_range_is_refused_naming_the_file(tmp_path, weights):
    from tests.helpers import make_score

    midi_io.write_midi(tmp_path / "fast.mid", make_score(bars=2, tempo_bpm=230.0))
    with pytest.raises(ValueError, match=r"fast\.mid: .*tempo_bpm.*230"):
        generate(load_preset("rainy-night"), tmp_path / "p", seed=1, bars=6, weights=weights,
                 primer=tmp_path / "fast.mid", output=MIDI_ONLY)
    assert not (tmp_path / "p").exists()
