"""Song-level musical checks and drum statistics on hand-made scores with known answers."""

from __future__ import annotations

import numpy as np
import pytest

from arranger.errors import InputError
from arranger.evaluation import checks
from arranger.evaluation.drum_stats import bar_hits, drum_stats, groove_bars, identical_steps
from arranger.evaluation.preset_checks import resolve_presets, same_drums
from arranger.score import HOLD, REST, Chord, Key, Score
from arranger.song_settings import SongSettings
from tests.helpers import make_score

KICK, SNARE, HAT, CRASH, RIDE = 1, 1 << 1, 1 << 2, 1 << 7, 1 << 8
BOOM_BAP = {0: KICK | HAT, 2: HAT, 4: SNARE | HAT, 6: HAT, 8: HAT, 10: KICK | HAT, 12: SNARE | HAT,
            14: HAT}


def drums_score(bars: int, bar_pattern: dict[int, int], key: str = "C minor") -> Score:
    """A score whose every bar plays ``bar_pattern`` (step in bar -> hit mask)."""
    score = Score(bars, key=Key.parse(key))
    for step, mask in bar_pattern.items():
        score.drums[step::16] = mask
    return score


def with_chords(score: Score, chords_per_bar) -> Score:
    bars = [chords_per_bar[b % len(chords_per_bar)] for b in range(score.bars)]
    return score.copy(chords=tuple(c for c in bars for _ in range(4)))


# --- groove -----------------------------------------------------------------------------------

def test_perfect_boom_bap_passes_groove():
    result = checks.groove(drums_score(8, BOOM_BAP))
    assert result.passed and result.value == 1.0


def test_snare_on_every_16th_fails_groove():
    roll = {s: SNARE | (KICK if s == 0 else 0) | (HAT if s % 2 == 0 else 0) for s in range(16)}
    assert not checks.groove(drums_score(8, roll)).passed


def test_hats_alone_and_groove_without_time_fail():
    assert not checks.groove(drums_score(8, {s: HAT for s in range(0, 16, 2)})).passed
    no_cymbals = {0: KICK, 4: SNARE, 10: KICK, 12: SNARE}
    result = checks.groove(drums_score(8, no_cymbals))
    assert not result.passed and result.value == 0.0  # groove bars 1.0, time-keeping 0.0


def test_ride_keeps_time_too():
    ride = {s: (m & ~HAT) | RIDE for s, m in BOOM_BAP.items()}
    assert checks.groove(drums_score(8, ride)).passed


def test_fills_in_one_bar_of_four_and_an_ending_still_pass():
    score = drums_score(16, BOOM_BAP)
    for bar in (3, 7, 11):  # a tom fill: no backbeat
        score.drums[bar * 16:(bar + 1) * 16] = 1 << 4
    score.drums[15 * 16:] = 0
    score.drums[15 * 16] = KICK | CRASH  # the ending: one hit, then silence
    result = checks.groove(score)
    assert result.passed and result.value == pytest.approx(12 / 15)
    score.drums[15 * 16 + 4] = SNARE  # two steps: a bar judged like any other
    assert checks.groove(score).value == pytest.approx(12 / 16)
    score.drums[14 * 16:15 * 16] = HAT  # one more bar without a backbeat: too few
    assert not checks.groove(score).passed


def test_groove_passes_without_drums_when_the_preset_has_none():
    silent = Score(8)
    assert not checks.groove(silent).passed
    assert checks.groove(silent, checks.Expect(drums=False)).passed
    assert checks.expect_of(SongSettings(drum_kit="none")) == checks.Expect(drums=False)


# --- chords -----------------------------------------------------------------------------------

def test_one_chord_for_32_bars_fails_and_a_moving_loop_passes():
    held = with_chords(Score(32), [Chord(0, "m7")])
    assert not checks.chords_move(held).passed and checks.chords_move(held).value == 1
    loop = with_chords(Score(32), [Chord(0, "m7"), Chord(8, "maj7"), Chord(3, "maj7"),
                                   Chord(7, "7")])
    assert checks.chords_move(loop).passed and checks.chords_move(loop).value == 4


def test_a_new_colour_of_the_same_chord_is_no_move():
    colours = with_chords(Score(8), [Chord(0, "maj"), Chord(0, "maj7"), Chord(0, "6"),
                                     Chord(7, "7")])
    assert checks.loop_chord_counts(colours) == [2, 2]
    assert not checks.chords_move(colours).passed
    assert checks.chords_move(colours, checks.Expect(loop_chords=2)).passed


def test_tonic_quality_must_fit_the_mode():
    minor = Score(4, key=Key.parse("F minor"))
    assert not checks.tonic_in_mode(with_chords(minor, [Chord(0, "maj7"), Chord(5, "m7")])).passed
    assert checks.tonic_in_mode(with_chords(minor, [Chord(0, "m9"), Chord(7, "7")])).passed
    major = Score(4, key=Key.parse("D major"))
    result = checks.tonic_in_mode(with_chords(major, [Chord(0, "m7"), Chord(0, "maj7")]))
    assert not result.passed and result.value == 0.5
    assert checks.tonic_in_mode(Score(4)).passed  # no tonic chord: nothing out of mode


def test_chord_notes_in_scale_allows_the_raised_seventh_on_v_only():
    a_minor = Score(3, key=Key.parse("A minor"))  # one bar per chord
    i_iv_v = with_chords(a_minor, [Chord(0, "m7"), Chord(5, "m7"), Chord(7, "7")])
    assert checks.outside_share(i_iv_v) == 0.0  # E7's G# is the harmonic minor's
    major_sevenths = with_chords(a_minor, [Chord(0, "maj7"), Chord(5, "maj7"), Chord(7, "maj7")])
    # Amaj7: C# and G#; Dmaj7: F# and C#; Emaj7: D# (its G# is allowed on V): 5 of 12 notes
    assert checks.outside_share(major_sevenths) == pytest.approx(5 / 12)
    assert not checks.chord_notes_in_scale(major_sevenths).passed
    leading_tone_chord = with_chords(a_minor, [Chord(11, "dim")])  # G#dim: not rooted on V
    assert checks.outside_share(leading_tone_chord) == pytest.approx(1 / 3)
    assert checks.chord_notes_in_scale(i_iv_v).passed


# --- melody -----------------------------------------------------------------------------------

def test_melody_coverage_counts_bars_without_an_onset():
    score = Score(4)
    score.melody[0] = 60
    score.melody[1:32] = HOLD  # held across bar 2: no onset there
    score.melody[48] = 64
    assert checks.empty_melody_bars(score) == 0.5
    assert not checks.melody_coverage(score).passed
    score.melody[16] = 62
    assert checks.empty_melody_bars(score) == 0.25 and checks.melody_coverage(score).passed
    assert (Score(4).melody == REST).all() and checks.empty_melody_bars(Score(4)) == 1.0


def test_phrase_ends_are_the_last_note_of_each_phrase_and_notes_before_a_beat_of_rest():
    score = with_chords(Score(8), [Chord(0, "maj")])  # C major throughout
    line = score.melody
    line[0], line[1:4], line[4] = 60, HOLD, 62  # D, then a 3-step rest: not a breath
    line[8], line[9] = 65, HOLD  # F, then a beat of rest: phrase-final, not a chord tone
    line[16], line[17:62], line[62] = 64, HOLD, 67  # E held into G, the phrase's last note-on
    line[64], line[120] = 71, 72  # bar 5: B flows on into C, the song's last note
    ends = checks.phrase_end_notes(line)
    assert ends == [(8, 65), (62, 67), (64, 71), (120, 72)]  # 4 -> 8 is 3 steps of rest
    assert checks.phrase_end_chord_tones(score) == 0.5  # G and C of F, G, B, C
    assert not checks.phrase_ends(score).passed
    line[8], line[64] = 67, 64
    assert checks.phrase_end_chord_tones(score) == 1.0 and checks.phrase_ends(score).passed
    no_chords = Score(8)
    no_chords.melody[:] = line
    assert np.isnan(checks.phrase_end_chord_tones(no_chords))  # nothing to judge: passes
    assert checks.phrase_ends(no_chords).passed


def test_melody_profile_pools_bars_and_notes_and_real_songs_are_cut_to_their_span():
    from arranger.evaluation.preset_checks import melody_profile, melody_span

    song = make_score(8)  # a chord tone on every beat, an 8th note long
    song.melody[16:32] = REST  # bar 2 empty: in the middle of a phrase
    song.melody[48:64] = REST  # bar 4 empty: a phrase's last bar
    profile = melody_profile([song, make_score(4)])
    assert profile["bars"] == 12 and profile["empty_bars"] == pytest.approx(2 / 12)
    assert profile["empty_mid_phrase"] == pytest.approx(1 / 12)
    assert profile["notes_per_bar"] == pytest.approx((6 * 4 + 16) / 12)
    assert profile["qualified_notes"] == 1.0 and profile["phrase_end_tones"] == 1.0
    late = make_score(8)
    late.melody[:32] = REST
    late.melody[112:] = REST
    span = melody_span(late)
    assert span.bars == 5 and np.array_equal(span.melody, late.melody[32:112])
    assert melody_span(Score(4)) is None and melody_profile([])["empty_bars"] is None


# --- all together -----------------------------------------------------------------------------

def test_a_good_song_passes_all_and_rates_count_songs():
    good = make_score(8)
    assert checks.passes_all(good)
    bad = good.copy(chords=(Chord(0, "maj7"),) * 32)
    assert not checks.passes_all(bad)
    rates = checks.pass_rates([good, bad, good, good])
    assert rates["chords_move"] == 0.75 and rates["groove"] == 1.0 and rates["all"] == 0.75
    assert list(rates) == [*checks.CHECKS, "all"]


# --- drum statistics --------------------------------------------------------------------------

def test_drum_stats_count_hits_and_velocity_per_class():
    score = drums_score(4, BOOM_BAP)
    score.drum_velocity[4::16] = 2  # accents on beat 2 (snare and hat)
    stats = drum_stats([score, drums_score(4, {s: HAT for s in range(0, 16, 2)})])
    assert stats["bars"] == 8 and stats["backbeat"] == 0.5 and stats["groove"] == 0.5
    assert stats["hits_per_bar"]["kick"] == 2 * 4 / 8 and stats["hits_per_bar"]["closed_hat"] == 8
    assert stats["velocity"]["snare"] == pytest.approx((112 + 85) / 2)
    assert stats["velocity"]["ride"] is None


def test_groove_bars_per_bar_and_identical_steps():
    score = drums_score(2, BOOM_BAP)
    score.drums[16 + 4] = HAT  # bar 2 loses its beat-2 snare
    assert groove_bars(bar_hits(score.drums)).tolist() == [True, False]
    other = score.copy()
    other.drums[:16] = 0
    assert identical_steps(score, score) == 1.0
    assert identical_steps(score, other) == pytest.approx(1 - 8 / 32)
    same = same_drums({"a": [score], "b": [score.copy()], "c": [other]})
    assert same == {"a | b": 1.0, "a | c": identical_steps(score, other),
                    "b | c": identical_steps(score, other)}
    assert np.isclose(same["a | c"], 0.75)


def test_resolve_presets_names_all_or_rejects_unknown():
    assert "rainy-night" in resolve_presets("all")
    assert resolve_presets("worn-tape, rainy-night") == ["worn-tape", "rainy-night"]
    with pytest.raises(InputError, match="presets = 'nope'"):
        resolve_presets("rainy-night,nope")


def test_lofi_eval_presets_prints_the_pass_table_and_writes_json(tmp_path):
    import json

    from typer.testing import CliRunner

    from arranger.cli.main import app

    runner = CliRunner()
    out = tmp_path / "eval.json"
    result = runner.invoke(app, ["eval", "--presets", "rainy-night,worn-tape", "--n", "2",
                                 "--bars", "4", "--json", str(out)])
    assert result.exit_code == 0, result.output
    assert "rainy-night" in result.output and "identical" in result.output
    saved = json.loads(out.read_text())["preset_checks"]
    assert set(saved["presets"]) == {"rainy-night", "worn-tape"}
    assert set(saved["presets"]["worn-tape"]["pass"]) == {*checks.CHECKS, "all"}
    bad = runner.invoke(app, ["eval", "--presets", "nope"])
    assert bad.exit_code == 2 and "--presets nope: expected" in bad.output
    assert "Traceback" not in bad.output
