"""The coordinator: grid, determinism, masks, forced tokens, loop and ending."""

import numpy as np
import pytest

from arranger.compose.coordinator import FREE, Forced, Plan, compose, generate_tokens
from arranger.score import HOLD, REST, Chord, Key
from arranger.settings import Sampling
from tests.helpers import tiny_models
from tracks import chords as chord_track
from tracks import melody as melody_track


@pytest.fixture(scope="module")
def models():
    return tiny_models()


def test_same_seed_same_song_other_seed_other_song(models):
    plan = Plan(bars=8, key=Key(5, "minor"))
    a, b = compose(models, plan, seed=3), compose(models, plan, seed=3)
    c = compose(models, plan, seed=4)
    assert a[0].equals(b[0]) and not a[0].equals(c[0])


def test_exact_length_and_valid_lines(models):
    plan = Plan(bars=6, melody_low=62, melody_high=80, key=Key(2))
    for score in compose(models, plan, seed=1, variations=4):
        assert score.bars == 6 and len(score.melody) == 96 and len(score.chords) == 24
        notes = score.melody[score.melody >= 0] + score.key.tonic
        assert notes.min() >= 62 and notes.max() <= 80
        after_rest = np.flatnonzero(score.melody[:-1] == REST) + 1
        assert not (score.melody[after_rest] == HOLD).any()
        assert all(c is not None for c in score.chords)


def test_chord_loop_repeats_and_song_ends_on_tonic(models):
    plan = Plan(bars=9, loop_bars=4, key=Key(0, "minor"))
    score = compose(models, plan, seed=2)[0]
    assert score.chords[:16] == score.chords[16:32]
    assert set(score.chords[32:]) == {chord_track.chord_of(
        chord_track.token_of(Chord(0, "m9")))}
    last = score.melody[8 * 16:]
    assert last[0] >= 0 and (last[0] % 12) in {0, 3, 7, 10, 2} and (last[8:] == REST).all()
    assert score.drums[8 * 16] & 1 and (score.drums[8 * 16 + 1:] == 0).all()


def test_forced_tokens_are_kept_and_scored(models):
    plan = Plan(bars=4, ending=False, loop_bars=0)
    forced = Forced.free(2, 4)
    forced.melody[:, :16] = melody_track.FIRST_PITCH_TOKEN + 12  # C5 whole-bar repeated onsets
    gen = generate_tokens(models, plan, forced, seed=0)
    assert (gen.melody[:, :16] == forced.melody[:, :16]).all()
    assert (gen.forced_logp["melody"] < 0).all() and (gen.forced_logp["drums"] == 0).all()


def test_batch_rows_differ(models):
    scores = compose(models, Plan(bars=4), seed=0, variations=3)
    assert not scores[0].equals(scores[1])


def test_low_temperature_is_more_repetitive(models):
    def distinct(temperature):
        plan = Plan(bars=8, sampling={"melody": Sampling(temperature, 1.0)})
        s = compose(models, plan, seed=5, variations=4)
        return np.mean([len(set(x.melody[x.melody >= 0].tolist())) for x in s])

    assert distinct(0.2) < distinct(2.0)


def test_sparse_kit_and_chord_colour(models):
    plan = Plan(bars=4, drum_kit="sparse", chord_color="ninths", ending=False)
    score = compose(models, plan, seed=1)[0]
    allowed = 1 | 2 | 1 << 7 | 1 << 8
    assert ((score.drums.astype(int) & ~allowed) == 0).all()
    assert {c.quality for c in score.chords} <= {"m9", "9", "maj9", "dim7", "m7b5", "aug",
                                                "sus2", "sus4", "7sus4"}


@pytest.mark.parametrize(("color", "mode", "quality"), [
    ("triads", "major", "maj"), ("triads", "minor", "min"), ("sevenths", "major", "maj7"),
    ("ninths", "major", "maj9"), ("ninths", "minor", "m9")])
def test_song_ends_on_the_tonic_in_the_presets_colour(models, color, mode, quality):
    plan = Plan(bars=3, chord_color=color, key=Key(0, mode))
    score = compose(models, plan, seed=0)[0]
    assert set(score.chords[8:]) == {Chord(0, quality)}


def test_free_marker_is_minus_one():
    assert FREE == -1


def test_gap_pressure_brings_a_silent_melody_back():
    import torch

    from arranger.evaluation.metrics import empty_bar_rate

    models = tiny_models()
    with torch.no_grad():  # a melody model that almost always rests
        models.melody.model.head.bias[melody_track.REST_TOKEN] += 8.0
    quiet = compose(models, Plan(bars=8, ending=False), seed=1, variations=4)
    pushed = compose(models, Plan(bars=8, ending=False, max_gap_steps=16), seed=1, variations=4)
    assert np.mean([empty_bar_rate(s) for s in quiet]) > 0.8
    assert np.mean([empty_bar_rate(s) for s in pushed]) < 0.5  # 8 nats take ~20 steps to undo


def test_drum_loop_repeats_the_groove_with_fills_and_phrase_crashes(models):
    plan = Plan(bars=9, drum_loop_bars=2, ending=False)
    bars = compose(models, plan, seed=3)[0].drums.astype(int).reshape(9, 16)
    crash = 1 << 7
    for bar in (2, 4, 5, 6, 8):  # repeats of bar 0 or 1; bars 3 and 7 are free for fills
        assert np.array_equal(bars[bar] & ~crash, bars[bar % 2] & ~crash)
    for bar in (2, 5, 6):  # inside a phrase a repeat never crashes
        assert not (bars[bar] & crash).any()


def test_nucleus_sampling_draws_the_renormalised_top_p_distribution():
    """Temperature, mask and top-p: draws follow the kept tokens' renormalised softmax."""
    from arranger.compose.coordinator import _sample

    logits = np.log(np.array([[0.05, 0.4, 0.3, 0.15, 0.1]], np.float32))
    mask = np.array([[True, True, True, True, False]])  # token 4 is impossible
    rng, n = np.random.default_rng(0), 40_000
    draws = np.concatenate([_sample(np.repeat(logits, 100, 0), mask, Sampling(1.0, 0.8), rng)
                            for _ in range(n // 100)])
    # Renormalised without token 4: .444 .333 .167 .056; the top 0.8 keeps 1, 2 and 3 (the mass
    # before token 3 is .778 < .8), so token 0 is cut as well.
    want = np.array([0, 0.4, 0.3, 0.15, 0]) / 0.85
    got = np.bincount(draws, minlength=5) / n
    assert got[0] == got[4] == 0
    np.testing.assert_allclose(got, want, atol=0.01)
    cold = _sample(np.repeat(logits, 1000, 0), mask, Sampling(0.05, 1.0), rng)
    assert (cold == 1).mean() > 0.99  # a low temperature takes the most likely token


def test_melody_form_repeats_phrases_and_keeps_new_letters_new(models):
    plan = Plan(bars=16, loop_bars=2, melody_form="AAB", ending=False)
    score = compose(models, plan, seed=3)[0]
    phrase = [score.melody[i * 32 : (i + 1) * 32] for i in range(8)]  # 2-bar phrases
    # A A B | A A B | A A: every A is the first A, every B the first B, and B is new.
    for i, letter in enumerate("AABAABAA"):
        assert np.array_equal(phrase[i], phrase["AABAABAA".index(letter)]), i
    assert not np.array_equal(phrase[2], phrase[0])
    free = compose(models, Plan(bars=16, loop_bars=2, ending=False), seed=3)[0]
    assert not np.array_equal(free.melody[32:64], free.melody[:32])  # no form: no repeats
