"""Presets really differ: tempo, chord-quality mix, drum density and the mix's brightness.

Uses the shipped weights; each preset renders 8 bars with the same seed.
"""

import numpy as np
import pytest

from arranger.audio_io import read_audio
from arranger.midi_io import read_midi
from arranger.preset import load_preset, preset_names
from arranger.song import Output, compose_songs, generate
from arranger.weights import DEFAULT_WEIGHTS

pytestmark = pytest.mark.skipif(not (DEFAULT_WEIGHTS / "melody.safetensors").exists(),
                                reason="shipped weights not built")


def _centroid_hz(audio: np.ndarray, rate: int) -> float:
    mono = audio.mean(axis=0)
    spectrum = np.abs(np.fft.rfft(mono))
    freqs = np.fft.rfftfreq(len(mono), 1 / rate)
    return float((spectrum * freqs).sum() / spectrum.sum())


@pytest.fixture(scope="module")
def rendered(tmp_path_factory):
    out = {}
    for name in preset_names():
        folder = tmp_path_factory.mktemp(name)
        generate(load_preset(name), folder / "song", seed=1, bars=8,
                 output=Output(formats=("wav",), pictures=False, progress=False))
        score = read_midi(folder / "song" / "score.mid")
        audio, rate = read_audio(folder / "song" / "mix.wav")
        # Chord colour over 16 songs' chords: one 8-bar loop holds too few to judge.
        batch = compose_songs(load_preset(name), seed=1, bars=8, variations=16)
        qualities = [c.quality for s in batch for c in s.chords if c is not None]
        out[name] = {
            "tempo": score.tempo_bpm,
            "sevenths_or_more": np.mean([len(q) > 3 or q in ("7", "6", "9") for q in qualities]),
            "ninths": np.mean([q in ("9", "maj9", "m9") for q in qualities]),
            "drum_hits_per_bar": sum(bin(int(m)).count("1") for m in score.drums) / score.bars,
            "centroid_hz": _centroid_hz(audio, rate),
        }
    return out


def test_every_preset_has_its_own_tempo(rendered):
    tempos = [r["tempo"] for r in rendered.values()]
    assert len(set(tempos)) == len(tempos)


def test_chord_colours_differ(rendered):
    assert rendered["jazzy-ninths"]["ninths"] > 0.5
    assert rendered["sunday-morning"]["ninths"] < 0.2


def test_sparse_kit_is_sparser(rendered):
    sparse = rendered["sparse-ambient"]["drum_hits_per_bar"]
    full = np.median([r["drum_hits_per_bar"] for n, r in rendered.items() if n != "sparse-ambient"])
    assert sparse < 0.8 * full


def test_worn_tape_is_darker_than_sunday_morning(rendered):
    assert rendered["worn-tape"]["centroid_hz"] < 0.85 * rendered["sunday-morning"]["centroid_hz"]
