"""DAW-ready exports: MIDI stems, ID3 tags, WAV chunks, stems that sum to the master's input."""

from __future__ import annotations

import mido
import numpy as np
import pretty_midi
import pytest
from mutagen.id3 import ID3
from mutagen.wave import WAVE

from arranger.audio.files import read_audio
from arranger.audio.mix import master_measured, master_noise
from arranger.audio.tags import read_acid, riff_chunks
from tests.test_produce import LAYERS, MASTER, SOUNDFONT, produce
from tests.test_render import BPM, make_song

pytestmark = pytest.mark.skipif(SOUNDFONT is None or not SOUNDFONT.exists(),
                                reason="pretty_midi's TimGM6mb.sf2 is missing")
F_MINOR = 5 + 12  # pretty_midi's key number of F minor


def keyed_song(bars: int = 2) -> pretty_midi.PrettyMIDI:
    midi = make_song(bars=bars)
    midi.key_signature_changes.append(pretty_midi.KeySignature(F_MINOR, 0.0))
    midi.time_signature_changes.append(pretty_midi.TimeSignature(4, 4, 0.0))
    return midi


@pytest.fixture(scope="module")
def song(tmp_path_factory):
    out = tmp_path_factory.mktemp("exports")
    return out, produce(out, midi=keyed_song(), formats=("wav", "mp3"), title="Rain, take 1")


def test_each_stem_has_its_notes_as_a_one_track_midi_file(song):
    out, _ = song
    source = keyed_song()
    for index, name in enumerate(LAYERS):
        path = out / "stems" / f"{name}.mid"
        raw = mido.MidiFile(path)
        assert raw.type == 0 and len(raw.tracks) == 1, name
        pm = pretty_midi.PrettyMIDI(str(path))
        assert [i.name for i in pm.instruments] == [name]
        expected = source.instruments[index]
        assert pm.instruments[0].is_drum == expected.is_drum
        assert sorted((round(n.start, 3), n.pitch) for n in pm.instruments[0].notes) == \
            sorted((round(n.start, 3), n.pitch) for n in expected.notes)
        assert pm.get_tempo_changes()[1][0] == pytest.approx(BPM, abs=1e-3)  # whole µs
        assert [k.key_number for k in pm.key_signature_changes] == [F_MINOR]
        assert [(t.numerator, t.denominator) for t in pm.time_signature_changes] == [(4, 4)]


def test_the_mp3_carries_title_tempo_and_key(song):
    out, _ = song
    tags = ID3(out / "mix.mp3")
    assert str(tags["TIT2"]) == "Rain, take 1"
    assert float(str(tags["TBPM"])) == pytest.approx(BPM)
    assert str(tags["TKEY"]) == "Fm"
    mix, _ = read_audio(out / "mix.wav")
    assert read_audio(out / "mix.mp3")[0].shape == mix.shape  # the tag costs no samples


@pytest.mark.parametrize("name", ["mix.wav", "stems/chords.wav", "stems/drums.wav",
                                  "stems/fx.wav"])
def test_wavs_carry_tempo_and_key_in_acid_info_and_id3_chunks(song, name):
    out, _ = song
    chunks = riff_chunks(out / name)
    acid = read_acid(chunks["acid"])
    assert acid["tempo_bpm"] == pytest.approx(BPM) and acid["meter"] == (4, 4)
    assert acid["root_note"] == 60 + 5 and not acid["loop"] and acid["beats"] == 8
    info = chunks["LIST"]
    assert info.startswith(b"INFO") and b"INAM\x0d\x00\x00\x00Rain, take 1\x00" in info
    assert b"90 bpm, F minor" in info
    id3 = WAVE(out / name).tags
    assert str(id3["TKEY"]) == "Fm" and float(str(id3["TBPM"])) == pytest.approx(BPM)


def test_stems_sum_to_what_the_master_chain_is_given(song):
    """The master is the stems (the fx stem with the bus's crackle and hiss among them) summed
    and mastered: nothing in the mix is missing from the stems."""
    out, _ = song
    total, noise = None, None
    for name in sorted(LAYERS):
        stem, rate = read_audio(out / "stems" / f"{name}.wav")
        total = stem if total is None else total + stem
    noise, _ = read_audio(out / "stems" / "fx.wav")
    mix, _ = read_audio(out / "mix.wav")
    again = master_measured(total, MASTER, rate, 1, noise=noise).audio
    assert np.abs(again - mix).max() < 2 ** -21  # 24-bit rounding
    made = master_noise(MASTER, 1, total.shape, rate)
    assert np.abs(made - noise).max() < 2 ** -22 and np.abs(noise).max() > 1e-3
    without = master_measured(total, MASTER, rate, 1, noise=np.zeros_like(noise)).audio
    assert np.abs(without - mix).max() > 1e-3  # the fx stem is heard in the mix


def test_a_master_without_noise_writes_no_fx_stem(tmp_path):
    from arranger.audio.config import MasterSound
    from arranger.audio.produce import produce_audio
    from tests.test_produce import RENDER, SOUNDS

    produce_audio(keyed_song(), SOUNDS, MasterSound(), RENDER, tmp_path, swing=0.0, seed=0,
                  formats=("wav",), progress=False)
    assert not (tmp_path / "stems" / "fx.wav").exists()
    assert (tmp_path / "stems" / "bass.mid").exists()
