"""Groove MIDI groundwork: info.csv metadata, bar phase, count-in trimming, the style report."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from arranger import midi_io
from arranger.corpus import groove
from arranger.evaluation.checks import groove as groove_check
from arranger.score import Score
from tests.test_checks import BOOM_BAP, CRASH, HAT, KICK, SNARE, drums_score

CORPUS = Path(__file__).resolve().parents[2] / "shared" / "corpus" / "groove-gmd"
HEADER = ("drummer,session,id,style,bpm,beat_type,time_signature,midi_filename,audio_filename,"
          "duration,split\n")


def performance_score(pickup: int = 3, bars: int = 8) -> Score:
    """A boom-bap performance: a count-in bar of hat clicks, ``bars`` bars of groove and a bar
    with a lone crash, all starting ``pickup`` steps late (the file's bars are out of phase)."""
    played = drums_score(bars + 2, BOOM_BAP)
    played.drums[:16] = 0
    played.drums[0:16:4] = HAT
    played.drums[-16:] = 0
    played.drums[-16] = CRASH
    score = Score(bars + 3, tempo_bpm=90.0)  # one more bar: room for the pickup
    score.drums[pickup:pickup + played.steps] = played.drums
    return score


def write_dataset(root: Path, rows: list[tuple[str, str, str, str]]) -> None:
    """``info.csv`` and MIDI files: rows of (style, beat_type, time_signature, file name)."""
    lines = [HEADER]
    for i, (style, beat, meter, name) in enumerate(rows):
        path = root / "drummer1" / "session1" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        midi_io.write_midi(path, performance_score())
        lines.append(f"drummer1,drummer1/session1,drummer1/session1/{i},{style}/groove{i},90,"
                     f"{beat},{meter},drummer1/session1/{name},x.wav,20.5,train\n")
    (root / "info.csv").write_text("".join(lines))


def test_read_info_and_info_for_a_song_source(tmp_path):
    write_dataset(tmp_path, [("soul", "beat", "4-4", "a.mid"), ("jazz", "fill", "3-4", "b.mid")])
    rows = groove.read_info(tmp_path)
    assert [(r.style, r.substyle, r.bpm, r.beat, r.meter) for r in rows] == [
        ("soul", "groove0", 90.0, True, "4/4"), ("jazz", "groove1", 90.0, False, "3/4")]
    found = groove.info_for(str(tmp_path / "drummer1" / "session1" / "a.mid"))
    assert found == rows[0] and found.duration_s == 20.5
    assert groove.info_for(str(tmp_path / "elsewhere.mid")) is None


def test_best_phase_finds_the_downbeat_and_prefers_no_shift():
    score = performance_score(pickup=3)
    assert groove.best_phase(score) == 3
    assert groove.best_phase(drums_score(4, BOOM_BAP)) == 0
    assert groove.best_phase(Score(2)) == 0  # nothing to align: keep the bars


def test_shifted_keeps_whole_bars_and_rejects_nothing_left():
    score = performance_score(pickup=3)
    moved = groove.shifted(score, 3)
    assert moved.bars == score.bars - 1 and np.array_equal(moved.drums, score.drums[3:3 + 160])
    assert groove.shifted(score, 16, bars=2).bars == 2
    with pytest.raises(ValueError, match="no whole bar"):
        groove.shifted(Score(1), 4)


def test_count_in_and_one_shot_ending_are_trimmed():
    phased = groove.shifted(performance_score(pickup=3), 3)
    assert groove.trim_bars(phased) == (1, 1)
    aligned, phase, trimmed = groove.align(performance_score(pickup=3))
    assert (phase, trimmed, aligned.bars) == (3, (1, 1), 8)
    assert groove.is_backbeat(aligned) and groove_check(aligned).passed
    stick_clicks = performance_score(pickup=0)
    stick_clicks.drums[0:16:4] = SNARE  # four clicks on the sticks (a snare-class note)
    assert groove.trim_bars(stick_clicks)[0] == 1
    assert groove.trim_bars(drums_score(4, BOOM_BAP)) == (0, 0)


def test_too_short_after_trimming_is_an_error():
    score = Score(3)
    score.drums[0] = KICK | CRASH
    with pytest.raises(ValueError, match="too short"):
        groove.align(score)


def test_performances_read_align_or_say_why_not(tmp_path):
    write_dataset(tmp_path, [("soul", "beat", "4-4", "a.mid"), ("soul", "fill", "4-4", "b.mid"),
                             ("funk", "beat", "3-4", "c.mid"), ("rock", "beat", "4-4", "d.mid")])
    perfs = groove.performances(tmp_path)
    assert [p.info.path.name for p in perfs] == ["a.mid", "b.mid", "c.mid"]  # rock: not lo-fi
    good, fill, waltz = perfs
    assert (good.style, good.bpm, good.reason) == ("soul", 90.0, "")
    assert good.score is not None and groove.is_backbeat(good.score)
    assert good.trimmed[0] == 1 and good.phase == 3
    assert fill.score is None and fill.reason == "a fill, not a beat"
    assert waltz.score is None and waltz.reason.startswith("non-4/4")
    assert len(groove.performances(tmp_path, styles=None, beats_only=False)) == 4


def test_backbeat_report_before_and_after_phase():
    info = groove.GrooveInfo(Path("x.mid"), "d", "soul", "g", 90.0, True, "4/4", "train", 1.0)
    raw = performance_score(pickup=3)
    aligned, phase, trimmed = groove.align(raw)
    perfs = [groove.Performance(info, aligned, "", raw, phase, trimmed),
             groove.Performance(info, None, "a fill, not a beat")]
    report = groove.backbeat_report(perfs)
    soul = report["soul"]
    assert (soul["files"], soul["read"], soul["kept"]) == (2, 1, 1)
    assert soul["backbeat_files"] == {"nominal": 0.0, "phased": 1.0, "phased_trimmed": 1.0}
    assert soul["backbeat_bars"]["nominal"] == 0.0 and soul["backbeat_bars"]["phased_trimmed"] == 1
    assert soul["phase_moved"] == 1 and soul["trimmed"] == 1 and report["all"] == soul


@pytest.mark.skipif(not (CORPUS / "info.csv").is_file(), reason="shared corpus not here")
def test_real_soul_beats_mostly_have_a_backbeat():
    rows = [r for r in groove.read_info(CORPUS) if r.style == "soul" and r.beat][:6]
    perfs = [groove.read_performance(r) for r in rows]
    kept = [p for p in perfs if p.score is not None]
    assert len(kept) >= 5 and all(60 <= p.bpm <= 140 for p in kept)
    assert sum(groove.is_backbeat(p.score) for p in kept) >= 4


def played_velocities(score: Score, pickup: int = 3) -> Score:
    """``score`` (a :func:`performance_score`) with each class played at its own velocity:
    backbeat snares 118, other snares (ghosts) 40, kicks 96, hats 70 on the beat and 55 off
    it, everything else 80."""
    from arranger.score import DRUM_CLASSES, velocity_level

    hits = score.hit_velocities()
    vel = np.where(hits > 0, 80, 0)
    step = (np.arange(score.steps) - pickup) % 16
    snare, kick, hat = (DRUM_CLASSES.index(c) for c in ("snare", "kick", "closed_hat"))
    vel[:, snare] = np.where(np.isin(step, (4, 12)), 118, 40)
    vel[:, kick], vel[:, hat] = 96, np.where(step % 4 == 0, 70, 55)
    score.drum_hit_velocity = np.where(hits > 0, vel, 0)
    score.drum_velocity[:] = velocity_level(score.hit_velocities().max(axis=1))
    return score


def test_a_groove_file_reads_with_its_style_and_in_phase(tmp_path):
    write_dataset(tmp_path, [("hiphop/groove3", "beat", "4-4", "a.mid")])
    path = tmp_path / "drummer1" / "session1" / "a.mid"
    from arranger.corpus.files import read_file

    (song,), (raw,) = read_file(path), read_file(path, aligned=False)
    assert song.score.style == raw.score.style == "hiphop"
    assert groove.best_phase(raw.score) == 3 and groove.best_phase(song.score) == 0
    assert song.score.bars < raw.score.bars and groove.is_backbeat(song.score)


def test_hit_velocities_and_the_velocity_table_of_performances(tmp_path):
    write_dataset(tmp_path, [("hiphop", "beat", "4-4", "a.mid"), ("soul", "beat", "4-4", "b.mid")])
    played = played_velocities(performance_score())
    midi_io.write_midi(tmp_path / "drummer1" / "session1" / "a.mid", played)
    perfs = groove.performances(tmp_path)
    hiphop = perfs[0]
    start = hiphop.phase + hiphop.trimmed[0] * 16
    expected = played.hit_velocities()[start:start + hiphop.score.steps]
    np.testing.assert_array_equal(groove.hit_velocity(hiphop), expected)
    table = groove.velocity_table(perfs)
    assert set(table.styles) == {"", "hiphop", "soul"}
    snare, hat = 1, 2
    cells = table.styles["hiphop"]
    assert cells[snare, 4, 2] == 118 and cells[hat, 0, 1] == 70  # 8 bars: 8+ hits a cell
    assert cells[hat, 2, 0] == 55  # off-beat 8th hats: quieter, so at the ghost level
    rewritten = table.hit_velocities(hiphop.score.drums, hiphop.score.drum_velocity, "hiphop")
    assert np.abs(rewritten.astype(int) - expected).max() <= 1


@pytest.mark.skipif(not (CORPUS / "info.csv").is_file(), reason="shared corpus not here")
def test_real_hiphop_velocities_accent_the_backbeat_and_ghost_the_rest():
    """A hiphop groove written through the corpus's table: hats under the backbeat snare, ghost
    snares far under it, each class's mean within a few steps of what the drummers played."""
    from arranger.evaluation.drum_stats import drum_stats

    perfs = [p for p in groove.performances(CORPUS, styles=("hiphop",)) if p.score is not None]
    table = groove.velocity_table(perfs)
    written, played = [], []
    for perf in perfs[:12]:
        score = perf.score.copy()
        score.drum_hit_velocity = table.hit_velocities(score.drums, score.drum_velocity,
                                                       "hiphop")
        written.append(score)
        played.append(perf.score.copy(drum_hit_velocity=groove.hit_velocity(perf)))
    ours, theirs = drum_stats(written), drum_stats(played)
    assert ours["velocity"]["closed_hat"] + 15 < ours["backbeat_snare_velocity"]
    assert ours["ghost_snare_velocity"] + 40 < ours["backbeat_snare_velocity"]
    for drum in ("kick", "snare", "closed_hat"):
        assert abs(ours["velocity"][drum] - theirs["velocity"][drum]) < 8, drum
