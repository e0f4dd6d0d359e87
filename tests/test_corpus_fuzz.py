"""Messy MIDI: a seeded mutator over 2,000+ inputs; the reader returns songs or skips with a reason.

Inputs are small valid files and hand-made pathologies (zero and huge tempos, no notes, only
drums, 1000 tracks, overlapping notes, odd meters, type-2 files, huge delta times, bad headers)
with random byte damage on top (truncation, bad chunk lengths, flipped, inserted or cut bytes).
"""

from __future__ import annotations

import io
import os
import random
import time
from collections import Counter
from pathlib import Path

import mido
import numpy as np
import pretty_midi
import pytest

from arranger.corpus import pool
from arranger.corpus.files import Task, read_file
from arranger.corpus.load import load_corpus
from arranger.corpus.piece import SkipSong
from arranger.midi_io import midi_bytes, to_midi
from arranger.score import LAYERS, Chord, Key, Score

SEED = 1234
N_INPUTS = 2000
MAX_SECONDS_PER_INPUT = 10.0


def _save(mf: mido.MidiFile) -> bytes:
    buf = io.BytesIO()
    mf.save(file=buf)
    return buf.getvalue()


def _track(events: list[tuple[int, mido.Message | mido.MetaMessage]]) -> mido.MidiTrack:
    """A track from ``(absolute tick, message)`` pairs."""
    track, now = mido.MidiTrack(), 0
    for tick, msg in sorted(events, key=lambda e: e[0]):
        track.append(msg.copy(time=tick - now))
        now = tick
    return track


def _notes(rng: random.Random, n: int, *, channel: int = 0, low: int = 48, high: int = 84,
           step: int = 120, length: int = 240) -> list:
    events = []
    for i in range(n):
        pitch, start = rng.randint(low, high), max(0, i * step + rng.choice((0, 0, 0, 7, -5)))
        events.append((start, mido.Message("note_on", note=pitch, velocity=rng.randint(1, 127),
                                           channel=channel)))
        events.append((start + length, mido.Message("note_off", note=pitch, channel=channel)))
    return events


def _meta_track(tempo: int = 500000, meter: tuple[int, int] = (4, 4), extra=()) -> mido.MidiTrack:
    return _track([(0, mido.MetaMessage("set_tempo", tempo=tempo)),
                   (0, mido.MetaMessage("time_signature", numerator=meter[0],
                                        denominator=meter[1])), *extra])


def _song(rng: random.Random, **meta) -> bytes:
    return _save(mido.MidiFile(type=1, tracks=[_meta_track(**meta), _track(_notes(rng, 40)),
                                               _track(_notes(rng, 30, low=40, high=60))]))


def _own_file(rng: random.Random) -> bytes:
    chords = tuple(Chord(rng.randrange(12), rng.choice(("maj", "m7", "9"))) for _ in range(8))
    score = Score(2, tempo_bpm=rng.choice((60, 82, 140)), key=Key(rng.randrange(12)),
                  chords=tuple(c for c in chords for _ in range(1)),
                  drums=np.array([rng.choice((0, 1, 5, 2)) for _ in range(32)]))
    return midi_bytes(to_midi(score))


def _pretty_song(rng: random.Random) -> bytes:
    bpm = rng.choice((70.0, 95.0, 123.0))
    step = 15.0 / bpm  # a 16th note in seconds
    pm = pretty_midi.PrettyMIDI(initial_tempo=bpm)
    for name, is_drum, base in (("melody", False, 72), ("piano", False, 55), ("d", True, 36)):
        inst = pretty_midi.Instrument(0, is_drum=is_drum, name=name)
        inst.notes = [pretty_midi.Note(90, base + rng.randrange(12), t * step, (t + 2) * step)
                      for t in range(0, 96, 2)]
        pm.instruments.append(inst)
    buf = io.BytesIO()
    pm.write(buf)
    return buf.getvalue()


# Each pathology: rng -> bytes.
PATHOLOGIES = {
    "song": _song,
    "pretty": _pretty_song,
    "own": _own_file,
    "zero_tempo": lambda r: _song(r, tempo=0),
    "huge_tempo": lambda r: _song(r, tempo=0xFFFFFF),
    "tiny_tempo_value": lambda r: _song(r, tempo=1),
    "no_notes": lambda r: _save(mido.MidiFile(tracks=[_meta_track()])),
    "only_drums": lambda r: _save(mido.MidiFile(tracks=[_meta_track(),
                                                        _track(_notes(r, 64, channel=9))])),
    "many_tracks": lambda r: _save(mido.MidiFile(
        tracks=[_meta_track()] + [_track(_notes(r, 1)) for _ in range(1000)])),
    "overlapping": lambda r: _save(mido.MidiFile(tracks=[_meta_track(), _track(
        _notes(r, 60, low=60, high=62, step=30, length=900))])),
    "odd_meter": lambda r: _song(r, meter=(r.randint(1, 15), r.choice((1, 2, 4, 8, 16, 32)))),
    "type2": lambda r: _save(mido.MidiFile(type=2, tracks=[_meta_track(),
                                                           _track(_notes(r, 20))])),
    "type0": lambda r: _save(mido.MidiFile(type=0, tracks=[_track(
        [(0, mido.MetaMessage("set_tempo", tempo=400000))] + _notes(r, 30))])),
    "huge_delta": lambda r: _save(mido.MidiFile(tracks=[_meta_track(), _track(
        _notes(r, 5) + [(0x0FFFFFFF, mido.Message("note_on", note=60, velocity=10))])])),
    "zero_division": lambda r: _save(mido.MidiFile(ticks_per_beat=0, tracks=[_track(
        _notes(r, 10))])),
    "tempo_storm": lambda r: _save(mido.MidiFile(tracks=[_meta_track(extra=[
        (i * 7, mido.MetaMessage("set_tempo", tempo=r.randint(1, 0xFFFFFF)))
        for i in range(3000)]), _track(_notes(r, 30))])),
    "long_notes": lambda r: _save(mido.MidiFile(tracks=[_meta_track(), _track(
        _notes(r, 8, step=50_000, length=4_000_000))])),
    "extremes": lambda r: _save(mido.MidiFile(tracks=[_meta_track(), _track(
        _notes(r, 40, low=0, high=127, step=1, length=1))])),
    "sysex": lambda r: _save(mido.MidiFile(tracks=[_meta_track(), _track(
        [(i, mido.Message("sysex", data=[r.randrange(128) for _ in range(20)]))
         for i in range(20)] + _notes(r, 20))])),
    "empty": lambda r: b"",
    "garbage": lambda r: b"MThd" + bytes(r.randrange(256) for _ in range(r.randint(0, 400))),
}


def _mutate(data: bytes, rng: random.Random) -> bytes:
    """1-3 random byte-level damages."""
    buf = bytearray(data)
    for _ in range(rng.randint(1, 3)):
        kind = rng.choice(("truncate", "flip", "chunk_length", "insert", "cut", "repeat"))
        if not buf:
            break
        pos = rng.randrange(len(buf))
        if kind == "truncate":
            del buf[pos:]
        elif kind == "flip":
            for _ in range(rng.randint(1, 8)):
                buf[rng.randrange(len(buf))] = rng.randrange(256)
        elif kind == "chunk_length":
            heads = [i for i in range(len(buf) - 8) if buf[i:i + 4] in (b"MThd", b"MTrk")]
            if heads:
                at = rng.choice(heads) + 4
                buf[at:at + 4] = rng.choice((b"\0\0\0\0", b"\xff\xff\xff\xff",
                                             rng.randrange(2**32).to_bytes(4, "big")))
        elif kind == "insert":
            buf[pos:pos] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 16)))
        elif kind == "cut":
            del buf[pos:pos + rng.randint(1, 16)]
        else:
            buf[pos:pos] = buf[pos:pos + rng.randint(1, 200)] * rng.randint(1, 5)
    return bytes(buf)


def fuzz_inputs(n: int, seed: int = SEED):
    """``(label, bytes)`` pairs: pathologies as made, then with random damage."""
    rng = random.Random(seed)
    names = sorted(PATHOLOGIES)
    for i in range(n):
        name = names[i % len(names)]
        if name == "many_tracks" and i >= 10 * len(names):
            name = "song"  # 1000-track files are slow to build: ten of them are enough
        data = PATHOLOGIES[name](rng)
        if i >= len(names) and rng.random() < 0.5:
            yield f"{name}+damaged", _mutate(data, rng)
        else:
            yield name, data


def test_reader_never_crashes_or_hangs_on_messy_midi(tmp_path):
    outcomes, slowest, failures = Counter(), 0.0, []
    for i, (label, data) in enumerate(fuzz_inputs(N_INPUTS)):
        path = tmp_path / f"{i:05d}_{label}.mid"
        path.write_bytes(data)
        started = time.perf_counter()
        try:
            songs = read_file(path)
        except SkipSong as exc:
            assert isinstance(exc.reason, str) and exc.reason.strip(), label
            outcomes[exc.reason.split(":")[0]] += 1
        except Exception as exc:  # the test's point: nothing else may escape
            failures.append((path.name, repr(exc)))
        else:
            assert songs, label
            for song in songs:
                assert song.layers and song.layers <= set(LAYERS) and song.score.bars >= 2
            outcomes["kept"] += 1
        slowest = max(slowest, time.perf_counter() - started)
        path.unlink()
    print(dict(outcomes), f"slowest {slowest:.2f} s")
    assert not failures, failures[:5]
    assert slowest < MAX_SECONDS_PER_INPUT
    assert outcomes["kept"] > 100 and outcomes["MIDI parse error"] > 100, outcomes
    assert "reader error" not in outcomes, outcomes  # no unexpected exception inside the readers
    expected = {"non-4/4 time signature", "no usable notes", "unsupported MIDI", "too many tracks"}
    assert expected <= set(outcomes), outcomes


def test_load_corpus_keeps_good_files_and_reports_bad_ones(tmp_path):
    rng = random.Random(7)
    folder = tmp_path / "mixed"
    good = {"a.mid": _song(rng), "b/c.mid": _pretty_song(rng), "d.midi": _own_file(rng)}
    bad = {"trunc.mid": _song(rng)[:60], "waltz.mid": _song(rng, meter=(3, 4)),
           "silent.mid": PATHOLOGIES["no_notes"](rng), "junk.mid": b"\x00" * 100,
           "e/type2.mid": PATHOLOGIES["type2"](rng)}
    for name, data in (good | bad).items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(data)
    songs, report = load_corpus([folder], workers=2, cache_dir=tmp_path / "cache",
                                progress=False)
    assert report.kept == len(good) and {Path(s.source).name for s in songs} == {
        Path(n).name for n in good}
    assert report.skipped == {"MIDI parse error": 2, "non-4/4 time signature": 1,
                              "no usable notes": 1, "unsupported MIDI": 1}
    assert sorted(Path(src).name for src, _ in report.examples) == sorted(
        Path(n).name for n in bad)
    summary = report.summary()
    assert "kept 3 files" in summary and "skipped 5 files" in summary
    again, report2 = load_corpus([folder], workers=2, cache_dir=tmp_path / "cache",
                                 progress=False)
    assert report2.from_cache == len(good) + len(bad) and len(again) == len(songs)


class _Crash(Task):
    """A task whose reading kills its worker process."""

    def read(self):
        os._exit(3)


@pytest.mark.slow
def test_a_worker_that_dies_is_reported_and_the_rest_is_read(tmp_path):
    rng = random.Random(3)
    tasks = []
    for i in range(6):
        path = tmp_path / f"{i}.mid"
        path.write_bytes(_song(rng))
        tasks.append(Task(str(path)))
    tasks.insert(2, _Crash(str(tmp_path / "crash.mid")))
    results = {}
    pool.run_pool(tasks, 2, results.__setitem__)
    assert sorted(results) == list(range(len(tasks)))
    assert results[2].startswith("reader crashed")
    assert all(isinstance(results[i], list) for i in results if i != 2)
