"""The pipeline without audio: generate, reproduce, regenerate one layer, atomic outputs."""

import numpy as np
import pytest

from arranger import midi_io
from arranger.compose.song import Output, generate, parse_bars, regenerate, reproduce
from arranger.manifest import Manifest
from arranger.preset import load_preset
from arranger.score import STEPS_PER_BAR
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
    assert m.packages["torch"].startswith("2.")


def _layers(folder):
    return midi_io.read_midi(folder / "score.mid")


def test_regenerate_drums_keeps_every_other_layer(song):
    before = _layers(song)
    regenerate(song, "drums", seed=11, output=MIDI_ONLY)
    after = _layers(song)
    assert after.chords == before.chords
    assert np.array_equal(after.melody, before.melody) and np.array_equal(after.bass, before.bass)
    assert not np.array_equal(after.drums, before.drums)
    assert Manifest.load(song).history == [{"layer": "drums", "bars": "1-8", "seed": 11}]


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
    with pytest.raises(FileExistsError, match="--force"):
        generate(load_preset("rainy-night"), song, seed=1, bars=8, weights=weights,
                 output=MIDI_ONLY)
    generate(load_preset("rainy-night"), song, seed=1, bars=8, weights=weights, output=MIDI_ONLY,
             force=True)


def test_failed_generation_leaves_previous_contents(tmp_path, weights, song, monkeypatch):
    before = (song / "score.mid").read_bytes()

    def boom(*a, **k):
        raise RuntimeError("disk on fire")

    monkeypatch.setattr("arranger.compose.song.write_song", boom)
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


@pytest.mark.parametrize("text,expected", [(None, (0, 8)), ("3-4", (2, 4)), ("8", (7, 8))])
def test_parse_bars(text, expected):
    assert parse_bars(text, 8) == expected


@pytest.mark.parametrize("text", ["0-2", "4-3", "x", "1-9"])
def test_parse_bars_rejects(text):
    with pytest.raises(ValueError, match="--bars"):
        parse_bars(text, 8)


def test_huge_request_is_refused_before_any_work(tmp_path, weights):
    with pytest.raises(ValueError, match="--bars 10000"):
        generate(load_preset("rainy-night"), tmp_path / "x", seed=0, bars=10000, weights=weights,
                 output=MIDI_ONLY)
    assert not (tmp_path / "x").exists()


def test_regenerate_rewrites_only_that_stem_and_the_mix(tmp_path, weights):
    out = tmp_path / "rendered"
    audio = Output(formats=("wav",), pictures=False, progress=False)
    generate(load_preset("rainy-night"), out, seed=2, bars=4, weights=weights, output=audio)
    before = {p.name: p.read_bytes() for p in (out / "stems").iterdir()}
    mix_before = (out / "mix.wav").read_bytes()
    regenerate(out, "melody", seed=8, output=audio)
    after = {p.name: p.read_bytes() for p in (out / "stems").iterdir()}
    assert set(after) == {"chords.wav", "melody.wav", "bass.wav", "drums.wav"}
    for name in ("chords.wav", "bass.wav", "drums.wav"):
        assert after[name] == before[name]
    assert after["melody.wav"] != before["melody.wav"]
    assert (out / "mix.wav").read_bytes() != mix_before
    assert len({len(b) for b in after.values()}) == 1  # stems keep one length


def test_primer_bars_are_kept_and_its_key_wins(tmp_path, weights):
    from tests.helpers import make_score

    primer = make_score(bars=2, key="A minor")
    midi_io.write_midi(tmp_path / "primer.mid", primer)
    generate(load_preset("sunday-morning"), tmp_path / "p", seed=1, bars=6, weights=weights,
             primer=tmp_path / "primer.mid", output=MIDI_ONLY)
    song = midi_io.read_midi(tmp_path / "p" / "score.mid")
    assert song.key == primer.key
    assert np.array_equal(song.melody[:32], primer.melody[:32])
    assert song.chords[:8] == primer.chords[:8]
    assert np.array_equal(song.drums[:32], primer.drums[:32])
