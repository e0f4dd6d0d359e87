"""Metrics on hand-made scores whose values are known."""

import math

import numpy as np
import pytest

from arranger.evaluation import metrics as m
from arranger.score import HOLD, REST, Chord, Score
from tests.helpers import make_score

C, F, G = Chord(0, "maj"), Chord(5, "maj"), Chord(7, "maj")


def melody_score(notes, bars=1, chords=None):
    """A score whose melody is ``(start_step, length, pitch)`` notes."""
    line = np.full(bars * 16, REST, np.int16)
    for start, length, pitch in notes:
        line[start] = pitch
        line[start + 1:start + length] = HOLD
    return Score(bars, chords=chords or (C,) * (bars * 4), melody=line)


def drum_score(bar_masks):
    """A score whose drums are one 16-step mask list per bar."""
    drums = np.concatenate([np.asarray(b, np.uint16) for b in bar_masks])
    return Score(len(bar_masks), drums=drums)


BACKBEAT = [1 if s in (0, 8) else 2 if s in (4, 12) else 0 for s in range(16)]
C_MAJOR_SCALE = melody_score([(2 * i, 2, 60 + d) for i, d in enumerate((0, 2, 4, 5, 7, 9, 11))])


def test_c_major_scale():
    assert m.scale_consistency(C_MAJOR_SCALE) == 1.0
    assert m.pitch_class_entropy(C_MAJOR_SCALE) == pytest.approx(math.log2(7))
    assert m.used_pitch_classes(C_MAJOR_SCALE) == 7.0


def test_one_pitch_and_chromatic_melodies():
    one = melody_score([(0, 4, 67), (4, 4, 79), (8, 8, 55)])
    assert m.pitch_class_entropy(one) == 0.0 and m.scale_consistency(one) == 1.0
    chromatic = melody_score([(i, 1, 60 + i) for i in range(12)])
    assert m.pitch_class_entropy(chromatic) == pytest.approx(math.log2(12))
    assert m.scale_consistency(chromatic) == pytest.approx(7 / 12)


def test_every_note_counts_once_whatever_its_length():
    score = melody_score([(0, 12, 60), (12, 1, 62), (13, 1, 64), (14, 2, 64)])
    # pitch classes C, D, E, E: probabilities 1/4, 1/4, 1/2
    assert m.pitch_class_entropy(score) == pytest.approx(1.5)


def test_no_notes_gives_nan():
    empty = Score(2)
    for fn in (m.pitch_class_entropy, m.scale_consistency, m.qualified_note_rate,
               m.chord_tone_ratio, m.tonal_distance, m.drum_pattern_rate):
        assert math.isnan(fn(empty))
    assert m.empty_bar_rate(empty) == 1.0 and m.used_pitch_classes(empty) == 0.0


def test_used_pitch_classes_counts_held_notes_in_each_bar():
    # bar 0: C E G, with G held into bar 1; bar 1: G only; bars 2-3 empty
    score = melody_score([(0, 4, 60), (4, 4, 64), (8, 12, 67)], bars=4)
    assert m.used_pitch_classes(score) == pytest.approx((3 + 1 + 0 + 0) / 4)
    assert m.empty_bar_rate(score) == pytest.approx(0.5)


def test_qualified_note_rate():
    score = melody_score([(0, 1, 60), (1, 1, 62), (2, 2, 64), (4, 4, 65)])
    assert m.qualified_note_rate(score) == 0.5
    assert m.qualified_note_rate(score, min_steps=1) == 1.0


def test_chord_tone_ratio_on_strong_beats():
    assert m.chord_tone_ratio(make_score(bars=4)) == 1.0  # chord tones on every beat
    # C on beat 1 (chord tone), F on beat 2 (weak: ignored), D on beat 3 (not a chord tone)
    score = melody_score([(0, 4, 60), (4, 4, 65), (8, 8, 62)])
    assert m.chord_tone_ratio(score) == 0.5
    no_chord = melody_score([(0, 4, 60)], chords=(None,) * 4)
    assert math.isnan(m.chord_tone_ratio(no_chord))


def test_tonal_centroid_of_c_major_by_hand():
    r3 = math.sqrt(3)
    expected = [(r3 + 1) / 6, (1 + r3) / 6, 1 / 3, 2 / 3, r3 / 6, 0.0]
    pcs = np.zeros(12)
    pcs[[0, 4, 7]] = 1
    assert np.allclose(m.tonal_centroid(pcs), expected)


def test_tonal_distance_of_c_over_c_major():
    # |zeta(C) - zeta(C, E, G)|^2 = (13 - 2 sqrt 3) / 9, worked out by hand from Harte's matrix
    expected = math.sqrt(13 - 2 * math.sqrt(3)) / 3
    assert m.tonal_distance(melody_score([(0, 16, 72)])) == pytest.approx(expected)
    assert m.tonal_distance(melody_score([(0, 16, 65)], chords=(F,) * 4)) == pytest.approx(
        expected)  # transposition-invariant: F over F major
    # weighted by duration: C held two beats over C major, then two over F major
    over_f = m.tonal_distance(melody_score([(0, 16, 60)], chords=(F,) * 4))
    held = m.tonal_distance(melody_score([(0, 16, 60)], chords=(C, C, F, F)))
    assert held == pytest.approx((expected + over_f) / 2) and over_f != pytest.approx(expected)
    far = melody_score([(0, 16, 66)])  # F# over C major is further away
    assert m.tonal_distance(far) > expected


def test_chord_progression_irregularity():
    def cpi(chords_per_bar):
        return m.chord_progression_irregularity(
            Score(len(chords_per_bar), chords=tuple(c for c in chords_per_bar for _ in range(4))))

    assert cpi([C, F, G, C, F, G]) == pytest.approx(3 / 4)  # CFG FGC GCF CFG
    assert cpi([C, F, G, Chord(9, "min"), Chord(2, "min")]) == 1.0
    assert cpi([C, C, F, F, G, G]) == 1.0  # repeats merge: one trigram C F G
    assert math.isnan(cpi([C, C, C, C]))


def test_backbeat_every_bar_is_perfectly_consistent():
    score = drum_score([BACKBEAT] * 4)
    assert m.groove_consistency(score) == 1.0 and m.grooving_similarity(score) == 1.0
    assert m.drum_pattern_rate(score) == 1.0


def test_groove_distances_by_hand():
    fill = list(BACKBEAT)
    fill[14] = fill[15] = 2  # two extra onsets
    score = drum_score([BACKBEAT, fill, BACKBEAT])
    assert m.groove_consistency(score) == pytest.approx(1 - 2 / 16)  # both adjacent pairs: 2
    # pairs (0,1) 2, (0,2) 0, (1,2) 2
    assert m.grooving_similarity(score) == pytest.approx(1 - (4 / 3) / 16)
    assert math.isnan(m.groove_consistency(drum_score([BACKBEAT])))


def test_drum_pattern_rate_weights_off_eighth_hits():
    bar = [0] * 16
    bar[0] = 1 | 4  # kick + hat on the downbeat: two hits on the 8th grid
    bar[3] = 4  # one hat on an odd 16th
    assert m.drum_pattern_rate(drum_score([bar])) == pytest.approx((2 + 0.1) / 3)


def test_all_metrics_marks_absent_layers_nan():
    drums_only = drum_score([BACKBEAT] * 2)
    values = m.all_metrics(drums_only)
    assert set(values) == set(m.METRICS)
    assert values["drum_groove_consistency"] == 1.0
    assert math.isnan(values["melody_pitch_class_entropy"]) and math.isnan(values["tonal_distance"])
    full = m.all_metrics(make_score(bars=4))
    assert all(math.isfinite(v) for v in full.values())
    assert math.isnan(m.all_metrics(make_score(bars=4), layers={"drums"})["chord_tone_ratio"])


def test_overlapping_area():
    rng = np.random.default_rng(0)
    x = rng.normal(size=300)
    assert m.overlapping_area(x, x) == pytest.approx(1.0, abs=1e-3)
    assert m.overlapping_area(x, x + 20) < 1e-6
    near = m.overlapping_area(x, rng.normal(size=300))
    assert 0.85 < near < 1.0
    assert m.overlapping_area(x, x + 1) == pytest.approx(m.overlapping_area(x + 1, x))
    assert m.overlapping_area([0.5] * 5, [0.5] * 8) == pytest.approx(1.0, abs=1e-3)
    assert m.overlapping_area([0.0] * 5, [1.0] * 5) < 1e-6
    assert math.isnan(m.overlapping_area([], x)) and math.isnan(m.overlapping_area([np.nan], x))
