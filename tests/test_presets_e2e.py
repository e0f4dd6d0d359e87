"""Every shipped preset, end to end through `lofi generate` with the shipped weights.

A new release of a library (music21 renaming a chord abbreviation, say) must fail here, not on
a user's machine: each preset writes its MIDI and both pictures, and the lead sheet reads back
with the chords of the MIDI. One preset also renders audio, and the audio is checked by ear's
proxy: beat tracking finds the preset's tempo and the drum onsets sit on the swung grid.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from arranger.cli.main import app
from arranger.midi_io import read_midi
from arranger.preset import load_preset, preset_names
from arranger.score import BEATS_PER_BAR, STEPS_PER_BEAT

BARS = 8
AUDIO_PRESET = "dusty-boom-bap"  # the most swing (0.35): straight and swung grids differ most
runner = CliRunner()


def _generate(out: Path, preset: str, *extra: str) -> None:
    result = runner.invoke(app, ["generate", "--preset", preset, "--bars", str(BARS), "--seed",
                                 "1", "--out", str(out), *extra])
    assert result.exit_code == 0, result.output
    assert f"preset {preset}" in result.output and f"{BARS} bars" in result.output


@pytest.mark.slow
@pytest.mark.parametrize("name", preset_names())
def test_every_preset_writes_midi_and_both_pictures(tmp_path, name):
    music21 = pytest.importorskip("music21")
    import matplotlib.image

    _generate(tmp_path / "s", name, "--no-render")
    preset, score = load_preset(name), read_midi(tmp_path / "s" / "score.mid")
    assert score.bars == BARS and score.tempo_bpm == preset.song.tempo_bpm
    img = matplotlib.image.imread(tmp_path / "s" / "pianoroll.png")
    assert img.shape[1] > 600 and img[..., :3].std() > 0.05
    sheet = music21.converter.parse(str(tmp_path / "s" / "score.musicxml"))
    melody = sheet.parts[0]
    assert len(melody.getElementsByClass("Measure")) == BARS
    symbols = list(melody.recurse().getElementsByClass("ChordSymbol"))
    changes = _chord_changes(score)
    assert len(symbols) == len(changes) > 0
    for symbol, (beat, chord) in zip(symbols, changes, strict=True):
        assert symbol.getOffsetInHierarchy(melody) == beat
        assert {p.pitchClass for p in symbol.pitches} == {
            (pc + score.key.tonic) % 12 for pc in chord.pitch_classes()}, symbol.figure


def _chord_changes(score) -> list[tuple[int, object]]:
    """(beat, chord) where the chord changes, as the lead sheet writes them (no-chord skipped)."""
    out, previous = [], object()
    for beat, chord in enumerate(score.chords):
        if chord != previous and chord is not None:
            out.append((beat, chord))
        previous = chord
    return out


@pytest.fixture(scope="module")
def rendered(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("audio") / "s"
    _generate(out, AUDIO_PRESET)
    return out


@pytest.mark.slow
def test_a_rendered_preset_has_its_stems_mix_and_pictures(rendered):
    import soundfile

    names = {p.name for p in rendered.iterdir()}
    assert {"score.mid", "manifest.json", "mix.wav", "mix.mp3", "pianoroll.png",
            "score.musicxml"} <= names
    lengths = {soundfile.info(p).frames for p in (rendered / "stems").glob("*.wav")}
    stems = {p.stem for p in (rendered / "stems").glob("*.wav")}
    assert len(lengths) == 1 and stems == {"chords", "melody", "bass", "drums", "fx"}
    seconds = BARS * BEATS_PER_BAR * 60 / load_preset(AUDIO_PRESET).song.tempo_bpm
    assert soundfile.info(rendered / "mix.wav").duration >= seconds


@pytest.mark.slow
def test_the_drums_sound_at_the_preset_tempo_on_the_swung_grid(rendered):
    """librosa on the drum stem: beat-tracked tempo within 3%, onsets on the swung 16ths."""
    librosa = pytest.importorskip("librosa")  # first call compiles (numba): one test only
    import pretty_midi
    import soundfile

    song = load_preset(AUDIO_PRESET).song
    audio, sr = soundfile.read(rendered / "stems" / "drums.wav", always_2d=True)
    mono = audio.mean(axis=1).astype(np.float32)
    # A lo-fi prior (lo-fi sits at 60-95 bpm, librosa's default centres on 120): it settles
    # the octave a funk feel's ghost-note 8ths leave open (90 bpm otherwise read as 180).
    tempo, _ = librosa.beat.beat_track(y=mono, sr=sr, start_bpm=80.0)
    assert abs(float(np.atleast_1d(tempo)[0]) / song.tempo_bpm - 1) < 0.03
    onsets = librosa.onset.onset_detect(y=mono, sr=sr, hop_length=128, units="time")
    step_s = 60.0 / song.tempo_bpm / STEPS_PER_BEAT
    drums = next(i for i in pretty_midi.PrettyMIDI(str(rendered / "score.mid")).instruments
                 if i.is_drum)
    # Hits loud enough to stand out as onsets: ghost notes (per-drum velocities from ~30) sit
    # under the hats and the room and are not detected one by one.
    steps = np.unique(np.round([n.start / step_s for n in drums.notes
                                if n.velocity >= 64]).astype(int))
    straight = steps * step_s
    swung = straight + np.where(steps % 2 == 1, song.swing * step_s, 0.0)
    odd = steps % 2 == 1
    assert odd.sum() >= 6  # enough loud off-beat 16ths to tell the grids apart

    def miss_ms(times: np.ndarray) -> np.ndarray:  # each time to its nearest onset
        return np.min(np.abs(times[:, None] - onsets[None, :]), axis=1) * 1000

    assert np.median(miss_ms(swung)) < 20  # humanised by 8 ms; onsets detected in 3 ms hops
    assert np.median(miss_ms(swung[odd])) < 0.5 * np.median(miss_ms(straight[odd]))


def test_test_tools_and_librosa_stay_out_of_the_runtime_install():
    import ast
    import tomllib

    root = Path(__file__).resolve().parents[1]
    project = tomllib.loads((root / "pyproject.toml").read_text())["project"]
    runtime = {r.split(">")[0].split("=")[0].split("<")[0] for r in project["dependencies"]}
    assert not runtime & {"librosa", "numba", "pytest", "ruff", "hypothesis"}
    assert any(r.startswith("librosa") for r in project["optional-dependencies"]["test"])
    for path in [*root.glob("arranger/**/*.py"), *root.glob("tracks/**/*.py")]:
        for node in ast.walk(ast.parse(path.read_text())):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            assert not any(n.split(".")[0] == "librosa" for n in names), path
