"""Corpus reader: tiny MIDI and annotation files built here, plus a few real corpus files."""

from __future__ import annotations

import io
import os
import zipfile
from pathlib import Path

import mido
import numpy as np
import pretty_midi
import pytest

from arranger.corpus import pool
from arranger.corpus.files import read_file
from arranger.corpus.grid import detect_swing
from arranger.corpus.load import load_corpus
from arranger.corpus.piece import SkipSong, Song
from arranger.corpus.readers.charts import parse_harte, parse_jazz_chord
from arranger.midi_io import to_midi
from arranger.score import DRUM_CLASSES, HOLD, REST, Chord, Key, Score, note_spans
from arranger.theory import choose_key, estimate_key, pitch_class_histogram
from tracks.chords import chord_from_pitch_classes, match_chords

CORPUS = Path(os.environ.get("LOFI_CORPUS", Path(__file__).resolve().parents[2] / "shared"
                             / "corpus"))

# (start beat, length in beats, MIDI pitch)
Notes = list[tuple[float, float, int]]


def midi_bytes(tracks: list[tuple[str, Notes]], *, bpm: float = 120.0, drums: Notes = (),
               meter: tuple[int, int] | None = (4, 4), key_number: int | None = None,
               beat_seconds=None) -> bytes:
    """A MIDI file of named tracks; ``beat_seconds`` maps beats to seconds (default: ``bpm``)."""
    at = beat_seconds or (lambda b: b * 60.0 / bpm)
    pm = pretty_midi.PrettyMIDI(initial_tempo=bpm)
    if meter:
        pm.time_signature_changes.append(pretty_midi.TimeSignature(*meter, 0.0))
    if key_number is not None:
        pm.key_signature_changes.append(pretty_midi.KeySignature(key_number, 0.0))
    layers = list(tracks) + ([("drums", list(drums))] if drums else [])
    for name, notes in layers:
        inst = pretty_midi.Instrument(0, is_drum=name == "drums", name=name)
        inst.notes = [pretty_midi.Note(100, p, at(s), at(s + d)) for s, d, p in notes]
        pm.instruments.append(inst)
    buf = io.BytesIO()
    pm.write(buf)
    return buf.getvalue()


def write(path: Path, data: bytes | str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(data, str):
        path.write_text(data)
    else:
        path.write_bytes(data)
    return path


def block_chords(chords: list[tuple[int, ...]], beats: int = 4) -> Notes:
    """One block chord per bar (or per ``beats``), pitches as given."""
    return [(i * beats, beats, p) for i, pitches in enumerate(chords) for p in pitches]


# ii-V-I-I in D major: Em7, A7, Dmaj7, D; the melody plays chord tones on beats.
D_CHORDS = [(52, 55, 59, 62), (45, 55, 61, 64), (50, 57, 61, 66), (50, 54, 57, 62)]
D_MELODY = [(0, 1, 71), (1, 1, 67), (2, 2, 64), (4, 2, 69), (6, 2, 73), (8, 1, 74), (9, 1, 78),
            (10, 2, 81), (12, 4, 74)]


def test_d_major_melody_is_key_relative_and_chords_are_recognised(tmp_path):
    path = write(tmp_path / "d.mid", midi_bytes([("melody", D_MELODY),
                                                 ("piano", block_chords(D_CHORDS))], key_number=2))
    [song] = read_file(path)
    score = song.score
    assert score.key == Key(2, "major")
    assert {"melody", "chords"} <= song.layers and song.dataset == ""
    assert score.bars == 4 and score.tempo_bpm == 120
    assert note_spans(score.melody)[:3] == [(0, 4, 71 - 2), (4, 8, 67 - 2), (8, 16, 64 - 2)]
    bars = [set(score.chords[b * 4:b * 4 + 4]) for b in range(4)]
    assert bars == [{Chord(2, "m7")}, {Chord(7, "7")}, {Chord(0, "maj7")}, {Chord(0, "maj")}]


def test_a_minor_without_signature_is_estimated(tmp_path):
    chords = [(45, 57, 60, 64), (50, 57, 62, 65), (52, 56, 59, 62), (45, 57, 60, 64)]
    melody = [(0, 1, 69), (1, 1, 72), (2, 2, 76), (4, 2, 74), (6, 2, 77), (8, 1, 71), (9, 1, 68),
              (10, 2, 64), (12, 4, 69)]
    path = write(tmp_path / "am.mid", midi_bytes([("lead", melody),
                                                  ("keys", block_chords(chords))]))
    [song] = read_file(path)
    assert song.score.key == Key(9, "minor")
    assert note_spans(song.score.melody)[0] == (0, 4, 69 - 9)
    assert song.score.chords[0] == Chord(0, "min") and song.score.chords[8] == Chord(7, "7")


def test_best_monophonic_line_is_the_melody_when_no_track_is_named(tmp_path):
    bass = [(b, 1, 38) for b in range(16)]
    path = write(tmp_path / "anon.mid", midi_bytes([("", block_chords(D_CHORDS)), ("", D_MELODY),
                                                    ("", bass)], key_number=2))
    [song] = read_file(path)
    assert note_spans(song.score.melody)[0] == (0, 4, 69)


def test_drum_file_gives_masks_and_velocity_levels(tmp_path):
    kit = DRUM_CLASSES.index
    hits = [(b, 0.25, 36) for b in (0, 2, 4, 6)] + [(b, 0.25, 38) for b in (1, 3, 5, 7)]
    hits += [(b / 2, 0.1, 42 if b % 4 else 22) for b in range(16)] + [(7.5, 0.5, 26)]
    path = write(tmp_path / "groove-gmd" / "beat.mid", midi_bytes([], drums=hits, bpm=90))
    [song] = read_file(path)
    score = song.score
    assert song.layers == {"drums"} and song.dataset == "groove-gmd"
    assert score.drums[0] == (1 << kit("kick")) | (1 << kit("closed_hat"))
    assert score.drums[4] == (1 << kit("snare")) | (1 << kit("closed_hat"))
    assert score.drums[30] == (1 << kit("open_hat")) | (1 << kit("closed_hat"))
    assert score.drums[1] == 0 and score.drum_velocity[0] == 2 and score.tempo_bpm == 90


def test_three_four_file_is_skipped_with_reason(tmp_path):
    path = write(tmp_path / "waltz.mid", midi_bytes([("melody", D_MELODY)], meter=(3, 4)))
    with pytest.raises(SkipSong, match="non-4/4 time signature: 3/4") as info:
        read_file(path)
    assert info.value.reason.startswith("non-4/4")


@pytest.mark.parametrize("data, reason", [
    (b"", "MIDI parse error"), (b"MThd\x00\x00\x00\x06\x00\x01", "MIDI parse error"),
    (b"not a midi file at all", "MIDI parse error"),
])
def test_broken_midi_is_skipped_with_parse_error(tmp_path, data, reason):
    with pytest.raises(SkipSong, match=reason):
        read_file(write(tmp_path / "bad.mid", data))


def test_empty_and_unsupported_inputs_are_skipped(tmp_path):
    with pytest.raises(SkipSong, match="no usable notes"):
        read_file(write(tmp_path / "empty.mid", midi_bytes([("melody", [])])))
    with pytest.raises(SkipSong, match="unsupported"):
        read_file(write(tmp_path / "x.wav", b"RIFF"))
    with pytest.raises(SkipSong, match="no such file"):
        read_file(tmp_path / "missing.mid")


def mido_bytes(notes: Notes, tempi: list[tuple[float, float]], resolution: int = 480) -> bytes:
    """A type-0 MIDI (via mido) of ``notes`` with tempo changes ``(beat, bpm)``."""
    events = [(round(b * resolution), 0, mido.MetaMessage("set_tempo", tempo=round(6e7 / bpm)))
              for b, bpm in tempi]
    for start, length, pitch in notes:
        events.append((round(start * resolution), 2, mido.Message("note_on", note=pitch,
                                                                   velocity=90)))
        events.append((round((start + length) * resolution), 1,
                       mido.Message("note_off", note=pitch)))
    track, now = mido.MidiTrack(), 0
    for tick, _, msg in sorted(events, key=lambda e: (e[0], e[1])):
        track.append(msg.copy(time=tick - now))
        now = tick
    mf = mido.MidiFile(type=0, ticks_per_beat=resolution, tracks=[track])
    buf = io.BytesIO()
    mf.save(file=buf)
    return buf.getvalue()


def test_swung_tempo_changing_file_quantises_by_its_beat_map(tmp_path):
    # 8 bars of swung 8ths (off-beats at 2/3 of a beat); tempo 120, then 80, then 97 bpm.
    melody = [(b + off, 0.3, 72 + b % 5) for b in range(32) for off in (0, 2 / 3)]
    data = mido_bytes(melody, [(0, 120), (8, 80), (20.5, 97)])
    [song] = read_file(write(tmp_path / "swing.mid", data))
    onsets = [s for s, _, _ in note_spans(song.score.melody)]
    assert onsets == list(range(0, 128, 2))
    assert song.score.bars == 8 and 80 <= song.score.tempo_bpm <= 120


def test_detect_swing_ignores_straight_sixteenths():
    straight = np.arange(0, 16, 0.25)
    swung = np.sort(np.concatenate([np.arange(16), np.arange(16) + 0.64]))
    assert detect_swing(straight) == 0.5
    assert detect_swing(swung) == pytest.approx(0.64)


def pop909_folder(folder: Path, *, pickup_beats: int = 2, bars: int = 8) -> Path:
    """A POP909-like song: drifting beat times, a pickup, MELODY/PIANO tracks, labels."""
    n = pickup_beats + 4 * bars
    times = 0.5 + np.cumsum(np.r_[0, 0.8 + 0.1 * np.sin(np.arange(n - 1) / 3)])
    rows = [f"{t} {float((i - pickup_beats) % 2 == 0)} {float((i - pickup_beats) % 4 == 0)}"
            for i, t in enumerate(times)]
    write(folder / "beat_midi.txt", "\n".join(rows) + "\n")
    labels = ["C:maj", "A:min7", "F:maj7", "G:sus4(b7)"]
    first = times[pickup_beats]
    lines = [f"{times[0]} {first} N"]
    for bar in range(bars):
        a = times[pickup_beats + 4 * bar]
        b = times[min(pickup_beats + 4 * bar + 4, n - 1)]
        lines.append(f"{a} {b} {labels[bar % 4]}")
    write(folder / "chord_midi.txt", "\n".join(lines) + "\n")
    write(folder / "key_audio.txt", f"{times[0]} {times[-1]} C:maj\n")
    tones = {0: (60, 64, 67), 1: (57, 60, 64), 2: (53, 57, 60), 3: (55, 60, 62)}
    melody = [(pickup_beats + 4 * bar + beat, 1, 72 + tones[bar % 4][beat % 3] % 12)
              for bar in range(bars) for beat in range(4)]
    piano = [(pickup_beats + 4 * bar, 4, p - 12) for bar in range(bars) for p in tones[bar % 4]]
    pickup = [(0, 1, 67), (1, 1, 69)]

    def at(b: float) -> float:
        return float(np.interp(b, np.arange(n), times) + max(b - n + 1, 0) * 0.8)

    write(folder / f"{folder.name}.mid",
          midi_bytes([("MELODY", pickup + melody), ("PIANO", piano)], meter=(1, 4),
                     beat_seconds=at))
    return folder


def test_pop909_folder_uses_beat_map_labels_and_key(tmp_path):
    folder = pop909_folder(tmp_path / "pop909" / "001")
    [song] = read_file(folder)
    score = song.score
    assert song.source == str(folder) and song.dataset == "pop909"
    assert {"melody", "chords", "bass"} <= song.layers and "drums" not in song.layers
    assert score.bars == 8 and score.key == Key(0, "major")
    assert score.chords[:16:4] == (Chord(0, "maj"), Chord(9, "m7"), Chord(5, "maj7"),
                                   Chord(7, "7sus4"))
    onsets = [s for s, _, _ in note_spans(score.melody)]
    assert onsets == list(range(0, 128, 4))  # the pickup is dropped, the drift follows the map
    assert 60 <= score.tempo_bpm <= 80


def test_jazz_chart_gives_chords_per_beat(tmp_path):
    chart = ("Title = Ja Da\nDBKeySig = F\nTimeSig = 4 4\nBars = 4\n"
             " FM7 | D7 | G7 C7 | FM7 Gm7/C Bbo7 |\n")
    path = write(tmp_path / "jazz-chord-corpus" / "JaDa.txt", chart)
    [song] = read_file(path)
    score = song.score
    assert song.layers == {"chords"} and song.dataset == "jazz-chord-corpus"
    assert score.key == Key(5, "major") and score.bars == 4
    c = score.chords
    assert c[0:4] == (Chord(0, "maj7"),) * 4 and c[4:8] == (Chord(9, "7"),) * 4
    assert c[8:12] == (Chord(2, "7"),) * 2 + (Chord(7, "7"),) * 2
    assert c[12:16] == (Chord(0, "maj7"),) * 2 + (Chord(2, "m7"), Chord(5, "dim7"))


def test_jazz_chart_in_three_four_is_skipped(tmp_path):
    chart = "Title = W\nDBKeySig = C\nTimeSig = 3 4\nBars = 2\n C | G7 |\n"
    with pytest.raises(SkipSong, match="non-4/4 time signature: 3/4"):
        read_file(write(tmp_path / "w.txt", chart))


@pytest.mark.parametrize("symbol, expected", [
    ("FM7", (5, "maj7")), ("Gm7/C", (7, "m7")), ("Abo7", (8, "dim7")), ("F#m7b5", (6, "m7b5")),
    ("Bb7b9", (10, "7")), ("C6", (0, "6")), ("Ebm6", (3, "m6")), ("D9", (2, "9")),
    ("G7#11", (7, "7")), ("A7sus4", (9, "7sus4")), ("Csus4", (0, "sus4")), ("E", (4, "maj")),
    ("Em", (4, "min")), ("Dbmaj7", (1, "maj7")), ("C+", (0, "aug")), ("Bbh7", (10, "m7b5")),
    ("EmM7", (4, "min")), ("F13", (5, "9")), ("Cm9", (0, "m9")), ("NC", None),
])
def test_parse_jazz_chord(symbol, expected):
    assert parse_jazz_chord(symbol) == expected


@pytest.mark.parametrize("label, expected", [
    ("C:maj", (0, "maj")), ("A:min/5", (9, "min")), ("C:sus4(b7)", (0, "7sus4")),
    ("B:hdim7", (11, "m7b5")), ("Eb:min7", (3, "m7")), ("F#:maj6", (6, "6")), ("N", None),
    ("D:minmaj7", (2, "min")), ("G:7", (7, "7")),
])
def test_parse_harte(label, expected):
    assert parse_harte(label) == expected


def test_match_chords_agrees_with_the_per_beat_template_matcher():
    rng = np.random.default_rng(1)
    for _ in range(500):
        w = rng.random(12) * (rng.random(12) < 0.4)
        w[rng.integers(12)] += 1
        bass = int(rng.integers(-1, 60))
        one = chord_from_pitch_classes(w, None if bass < 0 else bass)
        [many] = match_chords(w[None], np.array([bass]))
        assert (Chord(*one).pitch_classes() == Chord(*many).pitch_classes()
                if one != many else True)


def test_key_estimation_and_signature_checks():
    major = pitch_class_histogram(np.array([62, 64, 66, 67, 69, 71, 73, 62, 66, 69]))
    assert estimate_key(major) == Key(2, "major")
    assert choose_key(major, Key(0, "major")) == Key(2, "major")  # default C contradicts notes
    g_or_d = pitch_class_histogram(np.array([67, 69, 71, 74, 76, 78, 67, 71, 74]))
    assert choose_key(g_or_d, Key(7, "major")) == Key(7, "major")  # a fitting key is believed
    minor = pitch_class_histogram(np.array([57, 60, 64, 57, 62, 65, 64, 68, 71, 57, 69]))
    assert choose_key(minor, Key(0, "major"), final_root=9) == Key(9, "minor")
    assert choose_key(np.zeros(12), None) == Key(0, "major")


def test_own_midi_round_trips_through_the_reader(tmp_path):
    chords = (Chord(2, "m7"),) * 4 + (Chord(7, "9"),) * 4 + (Chord(0, "maj7"),) * 8
    melody = np.full(64, REST, np.int16)
    melody[[0, 8, 16, 40]] = [62, 65, 69, 64]
    melody[[1, 2, 9, 41]] = HOLD
    score = Score(4, tempo_bpm=78, key=Key(3, "minor"), chords=chords, melody=melody, swing=0.3)
    path = write(tmp_path / "own.mid", b"")
    pm = to_midi(score)
    pm.write(str(path))
    [song] = read_file(path)
    assert song.score.chords == chords and song.score.key == Key(3, "minor")
    assert np.array_equal(song.score.melody, melody) and song.score.tempo_bpm == 78
    assert song.score.equals(score)


def test_zip_members_are_songs_with_archive_sources(tmp_path):
    folder = pop909_folder(tmp_path / "src" / "042")
    archive = tmp_path / "data" / "songs.zip"
    archive.parent.mkdir()
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("a/d.mid", midi_bytes([("melody", D_MELODY)], key_number=2))
        zf.writestr("a/bad.mid", b"MThd garbage")
        for f in folder.iterdir():
            zf.write(f, f"pop/042/{f.name}")
    songs = read_file(archive)
    assert [s.source for s in songs] == [f"{archive}:pop/042", f"{archive}:a/d.mid"]
    assert songs[0].score.chords[4] == Chord(9, "m7")
    songs, report = load_corpus([archive.parent], workers=1, cache_dir=tmp_path / "cache",
                                progress=False)
    assert report.kept == 2 and report.skipped == {"MIDI parse error": 1}
    assert report.examples[0][0] == f"{archive}:a/bad.mid"


def test_second_run_is_served_by_the_cache(tmp_path, monkeypatch):
    data = tmp_path / "data"
    write(data / "d.mid", midi_bytes([("melody", D_MELODY), ("piano", block_chords(D_CHORDS))],
                                     key_number=2))
    write(data / "waltz.mid", midi_bytes([("melody", D_MELODY)], meter=(3, 4)))
    pop909_folder(data / "pop" / "007")
    write(data / "notes.txt", "just a readme")
    reads = []
    original = pool.read_one
    monkeypatch.setattr(pool, "read_one", lambda task: reads.append(task) or original(task))
    kwargs = {"workers": 1, "cache_dir": tmp_path / "cache", "progress": False}
    first, report = load_corpus([data], **kwargs)
    assert len(reads) == 3 and report.kept == 2 and report.from_cache == 0
    assert report.skipped == {"non-4/4 time signature": 1, "unsupported": 1}  # + notes.txt
    second, report2 = load_corpus([data], **kwargs)
    assert len(reads) == 3 and report2.from_cache == 3
    assert [s.source for s in second] == [s.source for s in first]
    assert all(a.score.equals(b.score) and a.layers == b.layers and a.dataset == b.dataset
               for a, b in zip(first, second, strict=True))
    os.utime(data / "d.mid", ns=(1, 1))  # a changed file is read again, the others are not
    load_corpus([data], **kwargs)
    assert len(reads) == 4 and reads[-1].path.endswith("d.mid")
    assert "kept 2 files" in report2.summary() and "non-4/4 time signature" in report2.summary()


def test_a_cached_groove_song_keeps_its_style_and_alignment(tmp_path):
    from tests.test_groove import write_dataset

    write_dataset(tmp_path / "gmd", [("hiphop", "beat", "4-4", "a.mid")])
    kwargs = {"workers": 1, "cache_dir": tmp_path / "cache", "progress": False}
    (read,), _ = load_corpus([tmp_path / "gmd"], **kwargs)
    (cached,), report = load_corpus([tmp_path / "gmd"], **kwargs)
    assert report.from_cache == 1 and read.score.style == cached.score.style == "hiphop"
    assert cached.score.equals(read.score) and cached.score.bars == 8  # in phase, trimmed
    assert cached.score.drums[4] == read.score.drums[4] != 0  # the backbeat snare on beat 2


# --- real corpus files (skipped when ../shared/corpus is absent) -------------------------------


def real(pattern: str, n: int) -> list[Path]:
    files = sorted(CORPUS.glob(pattern))
    if not files:
        pytest.skip(f"no corpus files at {CORPUS / pattern}")
    return files[:: max(1, len(files) // n)][:n]


def chord_tone_ratio(songs: list[Song]) -> float:
    hit = total = 0
    for song in songs:
        for start, _, pitch in note_spans(song.score.melody):
            chord = song.score.chord_at_step(start)
            if start % 8 == 0 and chord is not None:
                total += 1
                hit += pitch % 12 in chord.pitch_classes()
    return hit / max(total, 1)


def test_real_pop909_melody_sits_on_chord_tones():
    songs = [s for folder in real("pop909/POP909/*", 8) for s in _maybe(folder)]
    assert len({s.source for s in songs}) >= 5
    assert sum({"melody", "chords"} <= s.layers for s in songs) >= 0.8 * len(songs)
    assert chord_tone_ratio(songs) > 0.5


def test_real_groove_and_jazz_files():
    drums = [s for f in real("groove-gmd/drummer1/*/*beat_4-4.mid", 4) for s in read_file(f)]
    assert drums and all(s.layers == {"drums"} and s.score.drums.any() for s in drums)
    charts = [s for f in real("jazz-chord-corpus/SongDB/*/*.txt", 5) for s in _maybe(f)]
    assert charts and all(s.layers == {"chords"} for s in charts)


def _maybe(path: Path) -> list[Song]:
    try:
        return read_file(path)
    except SkipSong:
        return []


def test_unsupported_files_are_counted_named_and_never_read(tmp_path, monkeypatch):
    data = tmp_path / "data"
    write(data / "d.mid", midi_bytes([("melody", D_MELODY), ("piano", block_chords(D_CHORDS))],
                                     key_number=2))
    write(data / "bach.krn", "**kern\n*M4/4\n4c\n*-\n")
    write(data / "sub" / "LICENSE", "MIT")
    write(data / ".hidden.krn", "x")
    reads = []
    original = pool.read_one
    monkeypatch.setattr(pool, "read_one", lambda task: reads.append(task) or original(task))
    songs, report = load_corpus([data], workers=1, cache_dir=tmp_path / "cache", progress=False)
    assert len(reads) == 1 and report.kept == 1  # only the MIDI file was read
    assert report.skipped == {"unsupported file type .krn": 1,
                              "unsupported file without a suffix": 1}
    summary = report.summary()
    assert "read 3 files" in summary and "kept 1 files -> 1 songs" in summary
    assert "a song is a run of 4/4 bars in one key" in summary
    assert "songs holding each layer: chords 1, melody 1" in summary
    rows = report.skip_report().splitlines()
    assert rows[0] == "path\treason" and len(rows) == 3
    assert any(r.startswith(str(data / "bach.krn") + "\t") and "MIDI, MusicXML" in r
               for r in rows)
