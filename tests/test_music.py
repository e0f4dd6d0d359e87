"""The music itself: harmony in key and mode, moving loops, varied repeats, chosen candidates."""

import numpy as np
import pytest

from arranger.compose import phrasing
from arranger.compose.candidates import best_of, kit_profile, style_distance
from arranger.evaluation.checks import loop_chord_counts, outside_share, tonic_in_mode
from arranger.score import Chord, Key, Score
from tests.helpers import make_score
from tracks import chords as chord_track
from tracks import melody as melody_track
from tracks.drums import drum_mask, on_kit


@pytest.mark.parametrize(("mode", "color", "root", "quality", "expected"), [
    ("major", "sevenths", 7, "maj", "7"), ("major", "sevenths", 0, "maj", "maj7"),
    ("major", "sevenths", 5, "maj", "maj7"), ("major", "sevenths", 11, "dim", "m7b5"),
    ("minor", "sevenths", 7, "maj", "7"), ("minor", "sevenths", 0, "min", "m7"),
    ("minor", "sevenths", 2, "dim", "m7b5"), ("minor", "sevenths", 3, "maj", "maj7"),
    ("minor", "sevenths", 10, "maj", "7"), ("minor", "ninths", 0, "min", "m9"),
    ("minor", "ninths", 7, "maj", "7"), ("major", "ninths", 7, "maj", "9"),
    ("major", "ninths", 4, "min", "m7"), ("major", "ninths", 0, "6", "maj9"),
    ("minor", "triads", 0, "m9", "min"), ("major", "natural", 0, "7", "7")])
def test_colour_follows_the_function(mode, color, root, quality, expected):
    assert chord_track.functional_quality(Chord(root, quality), color, mode) == expected


def _song_of(tokens, mode):
    chords = tuple(chord_track.chord_of(int(t)) for t in tokens)
    return Score(1, key=Key(0, mode), chords=chords)


@pytest.mark.parametrize("mode", ["major", "minor"])
@pytest.mark.parametrize("color", ["triads", "natural", "sevenths", "ninths"])
def test_scale_mask_keeps_every_written_chord_in_key_and_mode(mode, color):
    mask = chord_track.scale_mask(color, mode)
    table = chord_track.recolor_table(color, mode)
    allowed = np.flatnonzero(mask[2:]) + 2
    for tok in allowed:
        song = _song_of([table[tok]] * 4, mode)
        assert outside_share(song) == 0.0 and tonic_in_mode(song).passed
    rejected = [chord_track.chord_of(t) for t in np.flatnonzero(~mask)]
    assert len(allowed) >= 7 and rejected  # the mask does cut, and leaves every degree


def test_minor_keys_keep_their_dominant_and_lose_the_major_tonic():
    mask = chord_track.scale_mask("sevenths", "minor")
    assert mask[chord_track.token_of(Chord(7, "maj"))]  # V, coloured V7
    assert mask[chord_track.token_of(Chord(7, "7"))]
    assert not mask[chord_track.token_of(Chord(0, "maj7"))]
    assert not mask[chord_track.token_of(Chord(0, "maj"))]
    assert not mask[chord_track.token_of(Chord(9, "maj7"))]  # A natural in C minor


def _loop_with_stubborn_model(window_bars, needed, beats):
    """Every beat the 'model' wants the tonic; the move mask must still make the loop move."""
    preference = [chord_track.token_of(Chord(r, "min")) for r in (0, 5, 7, 3, 8)]
    out = np.zeros((1, beats), np.int64)
    window = window_bars * 4
    for b in range(beats):
        start = b // window * window
        mask = chord_track.move_mask(out[:, start:b], b - start, window_bars, needed)[0]
        out[0, b] = next(t for t in preference if mask[t])
    return out[0]


@pytest.mark.parametrize(("window_bars", "needed"), [(4, 3), (2, 3), (4, 2), (1, 3)])
def test_move_mask_makes_every_window_move(window_bars, needed):
    tokens = _loop_with_stubborn_model(window_bars, needed, 32)
    windows = tokens.reshape(-1, window_bars * 4)
    assert all(len({chord_track.IDENTITY[t] for t in w}) >= needed for w in windows)
    if window_bars > needed:  # the last bar stays free, for the forced ending
        assert (windows[:, -4:] == windows[:, -5:-4]).all()


def test_identity_counts_chords_as_the_check_does():
    chords = [Chord(0, "min"), Chord(0, "m7"), Chord(0, "m9"), Chord(5, "m7")] * 4
    score = Score(4, chords=tuple(chords))
    ids = {chord_track.IDENTITY[chord_track.token_of(c)] for c in chords}
    assert loop_chord_counts(score) == [len(ids)] == [2]


def test_contour_mask_keeps_direction_and_distance():
    # original phrase ... 67 -> 72 -> 69; the repeat has 65 before: the varied note must go up
    # from 65, come down to 69, and stay within MAX_MOVE of 72.
    mask = phrasing.contour_mask(np.array([72]), np.array([67]), np.array([65]), np.array([69]))
    pitches = np.flatnonzero(mask[0]) - melody_track.FIRST_PITCH_TOKEN + melody_track.LOW
    assert len(pitches) and all(p != 72 and abs(p - 72) <= phrasing.MAX_MOVE for p in pitches)
    assert all(p > 65 and p > 69 for p in pitches)


def test_chord_tone_mask_and_phrase_end():
    pcs = np.zeros((2, 12))
    pcs[0, [0, 4, 7]] = 1  # C major; row 1 has no chord
    mask = phrasing.chord_tone_mask(pcs)
    notes = np.arange(melody_track.VOCAB_SIZE) >= melody_track.FIRST_PITCH_TOKEN
    pitch_classes = (np.arange(melody_track.VOCAB_SIZE) - 3 + melody_track.LOW) % 12
    assert set(pitch_classes[mask[0] & notes].tolist()) == {0, 4, 7}
    assert mask[1].all() and mask[0, melody_track.REST_TOKEN] and mask[0, melody_track.HOLD_TOKEN]
    ends = [s for s in range(64) if phrasing.ends_phrase(s, 64)]
    assert ends == [48, 52, 56, 57, 58, 59, 60, 61, 62, 63]


def test_a_bar_inside_a_phrase_is_pressed_for_a_note_and_a_phrase_end_may_breathe():
    plan = _plan(bars=8, melody_gap_bars=1.0)
    waiting = np.array([0, 6, 40])  # steps since the last note-on
    inside, last_bar = 16 + 6, 48 + 6  # step 6 of bar 2, and of bar 4 (the phrase's last)
    assert phrasing.gap_over(plan, inside, waiting).tolist() == [-4, 2, 24]
    assert phrasing.gap_over(plan, last_bar, waiting).tolist() == [-16, -10, 24]
    assert (phrasing.gap_over(_plan(bars=8), inside, waiting) < 0).all()  # 0 bars: off


def test_a_breath_follows_a_chord_tone_and_lasts_to_the_phrase_end():
    rest, hold = melody_track.REST_TOKEN, melody_track.HOLD_TOKEN
    written = np.full((2, 64), rest)
    written[:, 44:49] = [10, hold, rest, rest, rest]  # a note, held, then 3 steps of rest
    mask = np.ones((2, melody_track.VOCAB_SIZE), bool)
    settled = np.array([True, False])  # row 1's note was off the chord
    out = phrasing.breath_mask(written, 49, settled, mask)
    assert out[0].all() and not out[1, rest] and out[1, melody_track.FIRST_PITCH_TOKEN:].all()
    assert phrasing.breath_mask(written, 48, settled, mask) is mask  # 2 rests: not yet a beat
    notes = np.arange(melody_track.VOCAB_SIZE) >= melody_track.FIRST_PITCH_TOKEN
    logits = np.zeros((2, melody_track.VOCAB_SIZE), np.float32)
    plan = _plan(bars=8, melody_gap_bars=1.0)
    written[0, 49:52] = rest  # row 0 rests a beat into the phrase's last bar; row 1 plays on
    written[1, 49:52] = [12, hold, hold]
    leaned = phrasing.breath_lean(plan, 52, written, logits, notes)
    assert (leaned[0, notes] == -phrasing.BREATH_NATS).all() and (leaned[0, ~notes] == 0).all()
    assert (leaned[1] == 0).all()
    assert phrasing.breath_lean(plan, 63, written, logits, notes) is logits  # the pickup
    assert phrasing.breath_lean(plan, 36, written, logits, notes) is logits  # inside: no lean


def test_repeats_vary_a_different_third_of_the_notes_each_time():
    assert [phrasing.occurrence("AABA", p) for p in range(8)] == [0, 1, 0, 2, 3, 4, 1, 5]
    onsets = np.arange(12)
    assert not phrasing.varies_note(onsets, 0).any()
    first, second = phrasing.varies_note(onsets, 1), phrasing.varies_note(onsets, 2)
    assert first.sum() == second.sum() == 4 and not (first & second).any() and not first[0]


def test_best_of_prefers_passing_songs_then_likelihood_and_is_deterministic():
    good = make_score(bars=8, progression=(Chord(0, "maj7"), Chord(5, "maj7"), Chord(7, "7"),
                                           Chord(9, "m7")))
    held = make_score(bars=8, progression=(Chord(0, "maj7"),))  # one chord: does not move
    scores = [held, good, good, held, held, held]
    chosen = best_of(scores, np.array([0.0, -5.0, -4.0, -1.0, -2.0, -1.0]), k=3)
    assert chosen == [2, 3]  # the likelier passing song; then the first of equal keys
    assert best_of(scores, np.zeros(6), k=1) == list(range(6))


def test_style_distance_tells_boom_bap_from_jazz():
    score = make_score(bars=4)  # kick on 1 and 3, snare on 2 and 4, hats on the beats
    score.drums[2::4] |= drum_mask("closed_hat")
    assert style_distance(score, "hiphop") < style_distance(score, "jazz")
    assert kit_profile("jazz", "ride")["closed_hat"] == 0.0
    assert kit_profile("jazz", "ride")["ride"] > kit_profile("jazz", "full")["ride"]


def test_a_kit_without_hats_keeps_time_on_the_ride():
    masks = np.array([drum_mask("kick", "closed_hat"), drum_mask("open_hat", "low_tom"), 0])
    assert on_kit(masks, "sparse").tolist() == [drum_mask("kick", "ride"), 0, 0]  # on the beat
    assert on_kit(masks, "ride").tolist() == [drum_mask("kick", "ride"),
                                              drum_mask("ride", "low_tom"), 0]
    assert on_kit(masks, "full").tolist() == masks.tolist()
    assert not on_kit(masks, "none").any()


# --- the coordinator with these rules (tiny untrained models: fast, and no weights needed) ---

def _plan(**song):
    from arranger.compose.plan import Plan
    from arranger.song_settings import SongSettings

    return Plan(SongSettings(**({"drum_loop_bars": 2, "melody_gap_bars": 0.0} | song)), {})


@pytest.fixture(scope="module")
def tiny():
    from tests.helpers import tiny_models

    return tiny_models()


@pytest.mark.parametrize("key", ["F minor", "D major"])
def test_untrained_chords_still_keep_key_mode_and_move(tiny, key):
    from arranger.compose.coordinator import compose
    from arranger.evaluation.checks import chord_notes_in_scale, chords_move

    for score in compose(tiny, _plan(bars=12, key=key, chord_color="sevenths"), seed=2,
                         variations=6):
        assert chord_notes_in_scale(score).value == 0.0
        assert tonic_in_mode(score).passed and chords_move(score).passed


def test_a_repeat_keeps_rhythm_and_contour_and_changes_notes(tiny):
    from arranger.compose.coordinator import compose

    plan = _plan(bars=16, loop_bars=4, melody_form="AA", ending=False)
    changed = 0
    for score in compose(tiny, plan, seed=5, variations=4):
        phrases = score.melody.reshape(4, 64)
        for i in (1, 2, 3):  # occurrences 1, 2, 3 of A; odd ones end anew in their last bar
            keep = 48 if phrasing.new_ending(i) else 64
            a, again = phrases[0][:keep], phrases[i][:keep]
            assert np.array_equal(np.minimum(a, 0), np.minimum(again, 0))  # same rhythm
            assert np.array_equal(np.sign(np.diff(a[a >= 0])), np.sign(np.diff(again[again >= 0])))
            changed += not np.array_equal(a, again)
    assert changed >= 10  # of 12 repeats: the form comes back varied, not verbatim


def test_candidates_are_deterministic_per_song_seed_and_never_worse(tiny):
    from arranger.compose.coordinator import compose
    from arranger.evaluation.checks import check_song

    plan = _plan(bars=8, loop_bars=4)
    many = plan.with_song(candidates=4)
    batch = compose(tiny, many, seed=11, variations=3)
    for i, song in enumerate(batch):
        assert song.equals(compose(tiny, many, seed=11 + i)[0])  # variation i = seed + i alone
    single = compose(tiny, plan, seed=11, variations=3)
    for best, first in zip(batch, single, strict=True):  # candidate 0 is the K = 1 song
        passed = [sum(r.passed for r in check_song(s).values()) for s in (best, first)]
        assert passed[0] >= passed[1]


# --- the shipped presets with the shipped weights ----------------------------------------

def _shipped():
    from arranger.weights import DEFAULT_WEIGHTS

    return (DEFAULT_WEIGHTS / "drums.safetensors").exists()


@pytest.mark.skipif(not _shipped(), reason="shipped weights not built")
def test_presets_shape_the_groove_and_their_songs_pass():
    from arranger.compose.coordinator import compose
    from arranger.evaluation.checks import expect_of, passes_all
    from arranger.evaluation.drum_stats import identical_steps
    from arranger.preset import load_preset
    from arranger.weights import load_models

    models, songs = load_models(), {}
    for name in ("rainy-night", "dusty-boom-bap", "worn-tape", "jazzy-ninths"):
        preset = load_preset(name)
        songs[name] = compose(models, preset.plan(8, bass_seed=0), seed=3, variations=2)
        assert sum(passes_all(s, expect_of(preset.song)) for s in songs[name]) >= 1, name
    names = list(songs)
    for a, b in zip(names, names[1:], strict=False):
        same = np.mean([identical_steps(x, y) for x, y in zip(songs[a], songs[b], strict=True)])
        assert same < 0.9, (a, b)
    ride = np.mean([(s.drums & drum_mask("ride")) > 0 for s in songs["jazzy-ninths"]])
    hats = np.mean([(s.drums & drum_mask("closed_hat")) > 0 for s in songs["jazzy-ninths"]])
    assert ride > 0.2 and hats == 0.0  # the jazz preset keeps time on the ride
