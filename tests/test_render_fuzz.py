"""`lofi render` against hostile input: mutated, truncated and huge MIDI, full and read-only disks.

Any traceback is a failure; every refusal is one line on stderr, exit code 2, and no output
folder; a refused file never costs 1 GB; a song folder re-rendered from its own score stays a
song folder.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import random
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import mido
import pytest
from typer.testing import CliRunner

from arranger.audio import files
from arranger.audio.render_file import MAX_NOTES, MAX_POLYPHONY, MAX_SECONDS, MAX_TRACKS
from arranger.cli.main import app
from arranger.compose.generate import MAX_BARS
from arranger.midi_io import MAX_MIDI_BYTES
from tests.helpers import PEAK_RSS_KB

SEED = 20261201
N_FLIPS = 16
runner = CliRunner()
# Dry and plain: the fuzz is about reading and bounds, so every accepted file renders quickly.
FAST_PRESET = """inherits = "rainy-night"
[master]
effects = []
""" + "".join(f"[layers.{layer}]\neffects = []\n" for layer in ("chords", "melody", "bass",
                                                                "drums"))


def _save(mf: mido.MidiFile) -> bytes:
    buf = io.BytesIO()
    mf.save(file=buf)
    return buf.getvalue()


def _notes(track: mido.MidiTrack, pitches: list[int], length: int, channel: int = 0) -> None:
    """Notes of ``pitches``, one after another, each ``length`` ticks."""
    for pitch in pitches:
        track.append(mido.Message("note_on", note=pitch, velocity=90, channel=channel, time=0))
        track.append(mido.Message("note_off", note=pitch, channel=channel, time=length))


def base_midi() -> mido.MidiFile:
    """One bar at 180 bpm: a tempo track, a piano line, a drum beat."""
    mf = mido.MidiFile(ticks_per_beat=480)
    meta = mido.MidiTrack([mido.MetaMessage("set_tempo", tempo=333333, time=0),
                           mido.MetaMessage("time_signature", numerator=4, denominator=4)])
    piano, drums = mido.MidiTrack(), mido.MidiTrack()
    piano.append(mido.Message("program_change", program=4, time=0))
    piano.append(mido.Message("control_change", control=64, value=127, time=0))
    _notes(piano, [60, 64, 67, 72], 480)
    piano.append(mido.Message("pitchwheel", pitch=2000, time=0))
    _notes(drums, [36, 42, 38, 42], 480, channel=9)
    mf.tracks.extend([meta, piano, drums])
    return mf


def huge_inputs() -> dict[str, bytes]:
    """Files beyond each bound, as small as such a file can be."""
    out = {}
    one = mido.MidiFile(ticks_per_beat=480)
    one.tracks.append(mido.MidiTrack())
    _notes(one.tracks[0], [60], 480 * 4 * (MAX_BARS + 88))  # one note 2,400 beats long
    out["long_note"] = _save(one)
    slow = mido.MidiFile(ticks_per_beat=480)
    slow.tracks.append(mido.MidiTrack([mido.MetaMessage("set_tempo", tempo=16_000_000)]))
    _notes(slow.tracks[0], [60], 480 * 4 * 60)  # 60 bars of 64 s each
    out["slow_tempo"] = _save(slow)
    copies = base_midi()
    copies.tracks[1:] = [mido.MidiTrack(list(base_midi().tracks[1])) for _ in range(600)]
    out["track_copies"] = _save(copies)
    stacked = mido.MidiFile(ticks_per_beat=480)
    stacked.tracks.append(mido.MidiTrack())
    for channel in range(3):  # one instrument a channel, all in the chords layer
        for k in range(MAX_POLYPHONY // 2 + 30):
            stacked.tracks[0].append(mido.Message("note_on", note=20 + k, channel=channel))
    for channel in range(3):
        for k in range(MAX_POLYPHONY // 2 + 30):
            stacked.tracks[0].append(mido.Message("note_off", note=20 + k, channel=channel,
                                                  time=480 if k == channel == 0 else 0))
    out["stacked_notes"] = _save(stacked)
    out["huge_tick"] = _huge_tick()
    out["oversized"] = b"MThd" + bytes(MAX_MIDI_BYTES)
    return out


def _huge_tick() -> bytes:
    mf = mido.MidiFile(ticks_per_beat=1)
    mf.tracks.append(mido.MidiTrack())
    _notes(mf.tracks[0], [60], 0x0FFFFFFF)  # the largest delta a MIDI file can hold
    return _save(mf)


def too_many_notes() -> bytes:
    """More than ``MAX_NOTES`` short notes (running status: 6 bytes a note)."""
    body = bytearray([0x00, 0x90, 60, 90])
    body += bytes([0x01, 60, 0, 0x00, 60, 90]) * (MAX_NOTES + 1000)
    body += bytes([0x01, 60, 0, 0x00, 0xFF, 0x2F, 0x00])
    header = b"MThd" + (6).to_bytes(4, "big") + bytes([0, 0, 0, 1, 1, 0xE0])
    return header + b"MTrk" + len(body).to_bytes(4, "big") + bytes(body)


def mutants(data: bytes, rng: random.Random) -> dict[str, bytes]:
    """Truncations, header lies and random byte damage of ``data``."""
    out = {"empty": b"", "garbage": rng.randbytes(200), "header_only": data[:14]}
    for cut in sorted(rng.sample(range(1, len(data)), 10)) + [4, 13, 22, len(data) - 1]:
        out[f"cut_{cut}"] = data[:cut]
    lies = {"tracks_ffff": (10, b"\xff\xff"), "division_0": (12, b"\x00\x00"),
            "smpte": (12, b"\xe7\x28"), "chunk_len_max": (18, b"\xff\xff\xff\xff"),
            "format_9": (8, b"\x00\x09"), "not_mthd": (0, b"RIFF")}
    for name, (at, raw) in lies.items():
        out[name] = data[:at] + raw + data[at + len(raw):]
    for i in range(N_FLIPS):
        damaged = bytearray(data)
        for _ in range(rng.randint(1, 4)):
            damaged[rng.randrange(14, len(damaged))] = rng.randrange(256)
        out[f"flip_{i}"] = bytes(damaged)
    return out


def check_one_line_or_rendered(result, src: Path, out: Path) -> None:
    """No traceback; a refusal is one ``error:`` line naming the file or option, exit 2."""
    assert result.exception is None or isinstance(result.exception, SystemExit), (
        f"{src.name}: {result.exception!r}")
    if result.exit_code == 0:
        assert (out / "mix.wav").exists(), src.name
        return
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.exit_code == 2, (src.name, result.stderr)
    assert len(lines) == 1 and lines[0].startswith("error:"), (src.name, lines)
    assert not out.exists(), src.name


@pytest.fixture(scope="module")
def preset(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("preset") / "fast.toml"
    path.write_text(FAST_PRESET)
    return path


def render(src: Path, out: Path, preset: Path, *extra: str):
    return runner.invoke(app, ["render", str(src), "--out", str(out), "--preset", str(preset),
                               *extra])


def test_mutated_truncated_and_huge_midi_never_give_a_traceback(tmp_path, preset):
    data = _save(base_midi())
    cases = mutants(data, random.Random(SEED)) | huge_inputs()
    outcomes = {}
    for name, raw in cases.items():
        src = tmp_path / f"{name}.mid"
        src.write_bytes(raw)
        result = render(src, tmp_path / f"out_{name}", preset)
        check_one_line_or_rendered(result, src, tmp_path / f"out_{name}")
        outcomes[name] = result.exit_code
    assert outcomes["cut_22"] == outcomes["empty"] == outcomes["garbage"] == 2
    assert all(outcomes[name] == 2 for name in huge_inputs())
    assert 0 in outcomes.values()  # some damage is harmless: those files render


@pytest.mark.parametrize("name,needle", [
    ("empty", "empty"), ("cut_22", "truncated"), ("long_note", f"at most {MAX_BARS} bars"),
    ("slow_tempo", f"at most {MAX_SECONDS:.0f} s"), ("track_copies", f"at most {MAX_TRACKS}"),
    ("stacked_notes", f"at most {MAX_POLYPHONY} in one layer"),
    ("oversized", f"at most {MAX_MIDI_BYTES} bytes"), ("huge_tick", "largest tick"),
])
def test_each_refusal_says_what_is_wrong(tmp_path, preset, name, needle):
    data = _save(base_midi())
    raw = (mutants(data, random.Random(SEED)) | huge_inputs())[name]
    src = tmp_path / f"{name}.mid"
    src.write_bytes(raw)
    result = render(src, tmp_path / "out", preset)
    assert result.exit_code == 2
    assert str(src) in result.stderr and needle in result.stderr, result.stderr


@pytest.mark.slow
def test_refused_inputs_stay_under_1_gb(tmp_path):
    """Peak RSS of one process refusing every oversized input in turn, the densest last."""
    paths = []
    for name, raw in (huge_inputs() | {"many_notes": too_many_notes()}).items():
        paths.append(tmp_path / f"{name}.mid")
        paths[-1].write_bytes(raw)
    code = ("import json, sys\n"
            "from typer.testing import CliRunner\n"
            "from arranger.cli.main import app\n"
            "codes = [CliRunner().invoke(app, ['render', p, '--out', p + '.out']).exit_code\n"
            "         for p in sys.argv[1:]]\n"
            f"print(json.dumps([codes, {PEAK_RSS_KB}]))")
    result = subprocess.run([sys.executable, "-c", code, *map(str, paths)], check=True,
                            capture_output=True, text=True, cwd=Path(__file__).parents[1])
    codes, peak_kb = json.loads(result.stdout.splitlines()[-1])
    assert codes == [2] * len(paths)
    assert peak_kb < 1024 * 1024, f"{peak_kb / 1024:.0f} MB"


# --- the output folder --------------------------------------------------------------------


@pytest.fixture
def song_midi(tmp_path) -> Path:
    src = tmp_path / "song.mid"
    src.write_bytes(_save(base_midi()))
    return src


def _old_folder(folder: Path) -> dict[str, bytes]:
    folder.mkdir(parents=True)
    (folder / "keep.txt").write_text("the old song")
    return {p.name: p.read_bytes() for p in folder.iterdir()}


def _state(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in folder.iterdir()}


def test_a_full_disk_is_one_line_and_keeps_the_old_folder(tmp_path, song_midi, preset,
                                                          monkeypatch):
    out = tmp_path / "song"
    before = _old_folder(out)
    real = files.AudioFile

    def full(path, mode="r", *args, **kwargs):  # what pedalboard does on ENOSPC
        if mode == "w":
            raise RuntimeError("Unable to write data to audio file.")
        return real(path, mode, *args, **kwargs)

    monkeypatch.setattr(files, "AudioFile", full)
    monkeypatch.setattr(files, "_LOW_SPACE_BYTES", 1 << 62)  # every disk looks full
    result = render(song_midi, out, preset, "--force")
    assert result.exit_code == 2, result.output
    assert result.stderr.count("\n") == 1 and "No space left on device" in result.stderr
    assert _state(out) == before
    assert sorted(os.listdir(tmp_path)) == ["song", "song.mid"]  # no staging folder left


@contextlib.contextmanager
def _tmpfs(path: Path, size: str) -> Iterator[Path]:
    """A small tmpfs at ``path`` (root only, where mounting is allowed), else skip."""
    path.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
                             capture_output=True).returncode == 0 if os.geteuid() == 0 else False
    if not mounted:
        pytest.skip("cannot mount a tmpfs here (needs root)")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


def test_a_really_full_disk_is_one_line_and_keeps_the_old_folder(tmp_path, song_midi, preset):
    with _tmpfs(tmp_path / f"disk-{uuid.uuid4().hex[:6]}", "600k") as disk:
        out = disk / "song"
        before = _old_folder(out)
        result = render(song_midi, out, preset, "--force")
        assert result.exit_code == 2, result.output
        assert result.stderr.count("\n") == 1 and "No space left" in result.stderr
        assert _state(out) == before and os.listdir(disk) == ["song"]


def test_a_read_only_folder_is_one_line_and_stays_as_it_was(tmp_path, song_midi, preset):
    with _read_only(tmp_path / f"ro-{uuid.uuid4().hex[:6]}") as parent:
        before = _state(parent / "song")
        result = render(song_midi, parent / "song", preset, "--force")
        assert result.exit_code == 2, result.output
        assert result.stderr.count("\n") == 1 and "can be written" in result.stderr
        assert _state(parent / "song") == before and os.listdir(parent) == ["song"]


@contextlib.contextmanager
def _read_only(path: Path) -> Iterator[Path]:
    """A folder holding ``song/keep.txt`` that cannot be written: chmod, or for root (whom
    chmod does not stop) a tmpfs remounted read-only."""
    if os.geteuid() != 0:
        _old_folder(path / "song")
        path.chmod(0o555)
        try:
            yield path
        finally:
            path.chmod(0o755)
        return
    with _tmpfs(path, "1m"):
        _old_folder(path / "song")
        subprocess.run(["mount", "-o", "remount,ro", str(path)], check=True)
        yield path


def test_rerendering_a_song_folders_own_score_keeps_it_a_song_folder(tmp_path, preset):
    song = tmp_path / "song"
    (song / "stems").mkdir(parents=True)
    (song / "score.mid").write_bytes(_save(base_midi()))
    for name in ("manifest.json", "pianoroll.png", "score.musicxml"):
        (song / name).write_text(name)
    (song / "stems" / "old-layer.wav").write_bytes(b"stale")  # a layer the score lacks now
    (song / "mix.flac").write_bytes(b"stale")
    kept = {name: (song / name).read_bytes() for name in ("score.mid", "manifest.json",
                                                           "pianoroll.png", "score.musicxml")}
    result = render(song / "score.mid", song, preset, "--force")
    assert result.exit_code == 0, result.output
    assert {name: (song / name).read_bytes() for name in kept} == kept
    stems = sorted(p.name for p in (song / "stems").iterdir())
    assert stems == ["chords.mid", "chords.wav", "drums.mid", "drums.wav"]  # the stale one gone
    assert not (song / "mix.flac").exists() and (song / "mix.wav").exists()
    assert sorted(os.listdir(tmp_path)) == ["song"]


def test_a_missing_fluidsynth_is_one_line_naming_the_package(tmp_path, song_midi, preset,
                                                             monkeypatch):
    from arranger.audio import render as renderer

    monkeypatch.setitem(sys.modules, "fluidsynth", None)  # as if libfluidsynth were missing
    renderer.fluid.cache_clear()
    try:
        result = render(song_midi, tmp_path / "out", preset)
    finally:
        renderer.fluid.cache_clear()  # the next render loads the real library again
    assert result.exit_code == 2, result.output
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and renderer.FLUIDSYNTH_PACKAGE in lines[0]
    assert not (tmp_path / "out").exists()
