"""The coordinator: grid, determinism, masks, forced tokens, loop and ending."""

from dataclasses import replace

import numpy as np
import pytest

from arranger.compose import phrasing
from arranger.compose.coordinator import compose, generate_tokens
from arranger.compose.plan import FREE, Forced, Plan
from arranger.score import HOLD, REST, Chord, Key
from arranger.song_settings import Sampling, SongSettings
from tests.helpers import tiny_models
from tracks import chords as chord_track
from tracks import melody as melody_track
from tracks.drums import drum_mask


def plan_of(sampling=None, **song) -> Plan:
    """A plan of these song settings; no drum loop and no gap pressure unless asked for."""
    song = {"drum_loop_bars": 0, "melody_gap_bars": 0.0} | song
    return Plan(SongSettings(**song), sampling or {})


@pytest.fixture(scope="module")
def models():
    return tiny_models()


def test_same_seed_same_song_other_seed_other_song(models):
    plan = plan_of(bars=8, key="F minor")
    a, b = compose(models, plan, seed=3), compose(models, plan, seed=3)
    c = compose(models, plan, seed=4)
    assert a[0].equals(b[0]) and not a[0].equals(c[0])


def test_exact_length_and_valid_lines(models):
    plan = plan_of(bars=6, melody_range=(62, 80), key="D")
    for score in compose(models, plan, seed=1, variations=4):
        assert score.bars == 6 and len(score.melody) == 96 and len(score.chords) == 24
        notes = score.melody[score.melody >= 0] + score.key.tonic
        assert notes.min() >= 62 and notes.max() <= 80
        after_rest = np.flatnonzero(score.melody[:-1] == REST) + 1
        assert not (score.melody[after_rest] == HOLD).any()
        assert all(c is not None for c in score.chords)


def test_chord_loop_repeats_and_song_ends_on_tonic(models):
    plan = plan_of(bars=9, loop_bars=4, key="C minor")
    score = compose(models, plan, seed=2)[0]
    assert score.chords[:16] == score.chords[16:32]
    assert set(score.chords[32:]) == {chord_track.chord_of(
        chord_track.token_of(Chord(0, "m9")))}
    last = score.melody[8 * 16:]
    assert last[0] >= 0 and (last[0] % 12) in {0, 3, 7, 10, 2} and (last[8:] == REST).all()
    assert score.drums[8 * 16] & 1 and (score.drums[8 * 16 + 1:] == 0).all()


def test_forced_tokens_are_kept_and_scored(models):
    plan = plan_of(bars=4, ending=False, loop_bars=0)
    forced = Forced.free(2, 4)
    forced.melody[:, :16] = melody_track.FIRST_PITCH_TOKEN + 12  # C5 whole-bar repeated onsets
    gen = generate_tokens(models, plan, forced, seed=0)
    assert (gen.melody[:, :16] == forced.melody[:, :16]).all()
    assert (gen.forced_logp["melody"] < 0).all() and (gen.forced_logp["drums"] == 0).all()


def test_batch_rows_differ(models):
    scores = compose(models, plan_of(bars=4), seed=0, variations=3)
    assert not scores[0].equals(scores[1])


def test_low_temperature_is_more_repetitive(models):
    def distinct(temperature):
        plan = plan_of({"melody": Sampling(temperature, 1.0)}, bars=8)
        s = compose(models, plan, seed=5, variations=4)
        return np.mean([len(set(x.melody[x.melody >= 0].tolist())) for x in s])

    assert distinct(0.2) < distinct(2.0)


def test_sparse_kit_and_chord_colour(models):
    plan = plan_of(bars=4, drum_kit="sparse", chord_color="ninths", ending=False)
    score = compose(models, plan, seed=1)[0]
    allowed = drum_mask("kick", "snare", "crash", "ride")
    assert ((score.drums.astype(int) & ~allowed) == 0).all()
    # Every chord is already in the colour: re-spelling it again changes nothing.
    assert chord_track.recolor(score.chords, "ninths", score.key.mode) == score.chords
    assert {c.quality for c in score.chords} & {"m9", "9", "maj9"}


@pytest.mark.parametrize(("color", "mode", "quality"), [
    ("triads", "major", "maj"), ("triads", "minor", "min"), ("sevenths", "major", "maj7"),
    ("ninths", "major", "maj9"), ("ninths", "minor", "m9")])
def test_song_ends_on_the_tonic_in_the_presets_colour(models, color, mode, quality):
    plan = plan_of(bars=3, chord_color=color, key=f"C {mode}")
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
    quiet = compose(models, plan_of(bars=8, ending=False), seed=1, variations=4)
    pushed = compose(models, plan_of(bars=8, ending=False, melody_gap_bars=1.0), seed=1,
                     variations=4)
    assert np.mean([empty_bar_rate(s) for s in quiet]) > 0.8
    assert np.mean([empty_bar_rate(s) for s in pushed]) < 0.5  # 8 nats take ~20 steps to undo


def test_drum_loop_repeats_the_groove_with_fills_and_phrase_crashes(models):
    plan = plan_of(bars=9, drum_loop_bars=2, ending=False)
    bars = compose(models, plan, seed=3)[0].drums.astype(int).reshape(9, 16)
    crash = drum_mask("crash")
    for bar in (2, 4, 5, 6, 8):  # repeats of bar 0 or 1; bars 3 and 7 are free for fills
        assert np.array_equal(bars[bar] & ~crash, bars[bar % 2] & ~crash)
    for bar in (2, 5, 6):  # inside a phrase a repeat never crashes
        assert not (bars[bar] & crash).any()


def test_nucleus_sampling_draws_the_renormalised_top_p_distribution():
    """Temperature, mask and top-p: draws follow the kept tokens' renormalised softmax."""
    from arranger.compose.sampling import sample as _sample

    logits = np.log(np.array([[0.05, 0.4, 0.3, 0.15, 0.1]], np.float32))
    mask = np.array([[True, True, True, True, False]])  # token 4 is impossible
    rng, n = np.random.default_rng(0), 40_000
    draws = np.concatenate([_sample(np.repeat(logits, 100, 0), mask, Sampling(1.0, 0.8),
                                    rng.random((100, 1))) for _ in range(n // 100)])
    # Renormalised without token 4: .444 .333 .167 .056; the top 0.8 keeps 1, 2 and 3 (the mass
    # before token 3 is .778 < .8), so token 0 is cut as well.
    want = np.array([0, 0.4, 0.3, 0.15, 0]) / 0.85
    got = np.bincount(draws, minlength=5) / n
    assert got[0] == got[4] == 0
    np.testing.assert_allclose(got, want, atol=0.01)
    cold = _sample(np.repeat(logits, 1000, 0), mask, Sampling(0.05, 1.0), rng.random((1000, 1)))
    assert (cold == 1).mean() > 0.99  # a low temperature takes the most likely token


def test_a_row_samples_alone_as_in_a_batch():
    """A song alone is sampled as a vector (scalars for its maximum, mass and draw), a batch
    as columns: each row draws the token it draws in any batch."""
    from arranger.compose.sampling import sample as _sample

    rng = np.random.default_rng(3)
    for sampling in (Sampling(1.0, 0.95), Sampling(0.7, 1.0), Sampling(1.2, 0.3)):
        logits = (rng.normal(size=(40, 51)) * 4).astype(np.float32)
        logits[:10, 20:] = logits[:10, 20:21]  # ties, all in or all out
        mask = rng.random((40, 51)) > 0.3
        mask[:, 0] = True
        u = rng.random((40, 1))
        batch = _sample(logits, mask, sampling, u)
        alone = [_sample(logits[r : r + 1], mask[r : r + 1], sampling, u[r : r + 1])[0]
                 for r in range(40)]
        assert batch.tolist() == alone and batch.dtype == np.int64
        np.testing.assert_array_equal(_sample(logits, mask[:1], sampling, u),
                                      [_sample(logits[r : r + 1], mask[:1], sampling,
                                               u[r : r + 1])[0] for r in range(40)])


def test_melody_form_repeats_phrases_and_keeps_new_letters_new(models):
    plan = plan_of(bars=16, loop_bars=2, melody_form="AAB", ending=False)
    score = compose(models, plan, seed=3)[0]
    phrase = [score.melody[i * 32 : (i + 1) * 32] for i in range(8)]  # 2-bar phrases
    # A A B | A A B | A A: every A has the first A's rhythm, every B the first B's (a repeat is
    # an A', arranger.compose.phrasing: some notes change, every other one ends anew), and B
    # is new.
    for i, letter in enumerate("AABAABAA"):
        keep = 16 if phrasing.new_ending(phrasing.occurrence("AAB", i)) else 32
        first = phrase["AABAABAA".index(letter)]
        assert np.array_equal(np.minimum(phrase[i][:keep], 0), np.minimum(first[:keep], 0)), i
    assert not np.array_equal(phrase[2], phrase[0])
    free = compose(models, plan_of(bars=16, loop_bars=2, ending=False), seed=3)[0]
    assert not np.array_equal(free.melody[32:64], free.melody[:32])  # no form: no repeats


def test_variation_i_of_a_batch_is_the_single_song_of_seed_plus_i(models):
    """Each batch row samples from its own stream (seed + row), pre-roll included."""
    plan = plan_of(bars=6, drum_loop_bars=2, melody_form="AB", loop_bars=2)
    batch = compose(models, plan, seed=7, variations=4)
    for i, song in enumerate(batch):
        assert song.equals(compose(models, plan, seed=7 + i)[0]), i


def test_the_plan_is_derived_from_the_song_settings():
    plan = Plan()
    assert plan.song == SongSettings()  # defaults declared once, in SongSettings
    assert plan.song.drum_loop_bars == SongSettings.drum_loop_bars
    assert plan.key == Key.parse(SongSettings.key)
    assert plan.max_gap_steps == round(SongSettings.melody_gap_bars * 16)
    moved = plan.with_song(key="Eb minor", bars=8)
    assert moved.key == Key(3, "minor") and moved.song.bars == 8 and plan.song.bars == 32
    assert plan.layer_sampling("melody") == Sampling()


def test_preset_plan_keeps_the_presets_song_and_sampling():
    from arranger.preset import load_preset

    preset = load_preset("rainy-night")
    plan = preset.plan(12, bass_seed=4)
    assert plan.song == replace(preset.song, bars=12) and plan.bass_seed == 4
    assert plan.key == preset.key and dict(plan.sampling) == preset.sampling
    assert preset.plan().song == preset.song


def test_choose_and_the_stepper_leave_their_arguments_alone(models):
    from arranger.compose.sampling import RowStreams, Stepper, choose
    from tracks.layers import DRUMS
    from tracks.weights_file import InferenceSettings

    logits = np.random.default_rng(0).normal(size=(3, 6)).astype(np.float32)
    mask, forced = np.ones((1, 6), bool), np.array([FREE, 2, FREE])
    saved = logits.copy(), mask.copy(), forced.copy()
    tokens, logp = choose(logits, mask, forced, Sampling(), RowStreams(0, 3))
    for before, after in zip(saved, (logits, mask, forced), strict=True):
        np.testing.assert_array_equal(before, after)
    assert tokens[1] == 2 and logp[1] < 0 and logp[0] == logp[2] == 0
    assert choose(logits, mask, np.full(3, FREE), Sampling(), RowStreams(0, 3))[1] is None
    every, logp = choose(logits, mask, np.array([1, 2, 3]), Sampling(), RowStreams(0, 3))
    assert every.tolist() == [1, 2, 3] and (logp < 0).all()
    models.drums.inference = InferenceSettings(blind_conditions=(2, 3))
    try:
        row = [3, 1, 2, 2] + [1] * (len(models.drums.config.cond_sizes) - 4)  # + style, tempo
        cond = np.array([[row]])
        Stepper(models.drums, 1, Sampling(), DRUMS).logits(cond, None)
        assert cond.tolist() == [[row]]
    finally:
        models.drums.inference = InferenceSettings()


def test_row_streams_draw_each_rows_generator_in_order():
    from arranger.compose.sampling import RowStreams

    streams = RowStreams(5, 3)
    rows = [streams.uniform(np.array([0, 2]))[:, 0] for _ in range(300)]  # past one block
    rows += [streams.uniform(np.array([2]))[:, 0]]
    np.testing.assert_array_equal([r[0] for r in rows[:300]],
                                  np.random.default_rng(5).random(300))
    np.testing.assert_array_equal([r[-1] for r in rows], np.random.default_rng(7).random(301))
    together = RowStreams(5, 3)  # every row drawing (one column of the rows' blocks) ...
    draws = [together.uniform()[:, 0] for _ in range(300)]
    draws += [together.uniform(np.array([1]))[:, 0], together.uniform()[:, 0]]  # ... then apart
    np.testing.assert_array_equal([d[1] for d in draws[:300]] + [draws[300][0], draws[301][1]],
                                  np.random.default_rng(6).random(302))
    np.testing.assert_array_equal([d[0] for d in draws[:300]] + [draws[-1][0]],
                                  np.random.default_rng(5).random(301))


def test_blind_drums_hear_the_songs_conditions_taken_at_once_as_step_by_step(models,
                                                                            monkeypatch):
    """Blind to chords and melody, the drum model's conditions are the song's from the start;
    taking them in one call writes the very song that asking at every step writes."""
    from arranger.compose import voices
    from tracks.weights_file import InferenceSettings

    plan = plan_of(bars=4, drum_loop_bars=1)
    models.drums.inference = InferenceSettings(blind_conditions=(2, 3))
    try:
        gen = generate_tokens(models, plan, Forced.free(2, 4), seed=6)
        original = voices.DrumVoice.__init__

        def per_step(self, *args, **kwargs):
            original(self, *args, **kwargs)
            assert self.foresees
            self.foresees = False

        monkeypatch.setattr(voices.DrumVoice, "__init__", per_step)
        again = generate_tokens(models, plan, Forced.free(2, 4), seed=6)
    finally:
        models.drums.inference = InferenceSettings()
    np.testing.assert_array_equal(gen.drums, again.drums)
    np.testing.assert_array_equal(gen.forced_logp["drums"], again.forced_logp["drums"])


def test_token_likelihoods_are_kept_only_with_candidates_to_rank(models):
    plan = plan_of(bars=2)
    assert generate_tokens(models, plan, Forced.free(2, 2), seed=1).loglik == {}
    ranked = generate_tokens(models, plan, Forced.free(4, 2), seed=1, candidates=2)
    assert set(ranked.loglik) == {"chords", "melody", "drums"}
    assert all((v < 0).all() for v in ranked.loglik.values())


def test_blas_threads_follow_the_free_cores(monkeypatch):
    """A second BLAS thread only where a core is free: on a busy machine it waits at every
    product (the results are the same either way)."""
    import os

    from arranger.compose import threads

    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1})
    monkeypatch.setattr(os, "getloadavg", lambda: (0.3, 0.0, 0.0))
    assert threads.default_blas_threads() == 2
    monkeypatch.setattr(os, "getloadavg", lambda: (1.6, 0.0, 0.0))
    assert threads.default_blas_threads() == 1
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0})
    monkeypatch.setattr(os, "getloadavg", lambda: (0.0, 0.0, 0.0))
    assert threads.default_blas_threads() == 1


def test_a_second_blas_thread_is_let_go_once_its_core_is_taken(monkeypatch):
    """Bar by bar: two BLAS threads spend ~2 CPU s a second side by side; when they spend
    less, one waits for a core at every product, and generation goes on with one."""
    from threadpoolctl import threadpool_info

    from arranger.compose import threads

    clock = {"wall": 0.0, "cpu": 0.0}
    monkeypatch.setattr(threads.time, "perf_counter", lambda: clock["wall"])
    monkeypatch.setattr(threads.time, "process_time", lambda: clock["cpu"])
    blas = [i for i in threadpool_info() if i["user_api"] == "blas"]
    before = [i["num_threads"] for i in blas]
    with threads.generation_mode(blas_threads=2) as mode:
        clock["wall"], clock["cpu"] = 0.2, 0.39  # side by side
        threads.keep_pace()
        assert mode.blas_threads == 2
        clock["wall"], clock["cpu"] = 0.21, 0.395  # too short a stretch to judge
        threads.keep_pace()
        assert mode.blas_threads == 2
        clock["wall"], clock["cpu"] = 0.5, 0.6  # 0.3 s of wall for 0.2 s of CPU
        threads.keep_pace()
        assert mode.blas_threads == 1
        assert all(i["num_threads"] == 1 for i in threadpool_info() if i["user_api"] == "blas")
    assert [i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"] == before
    threads.keep_pace()  # outside any generation: nothing to do


def test_a_generation_inside_a_pinned_block_keeps_its_blas_threads(monkeypatch):
    """compose opens its own generation_mode: inside one that pins the BLAS threads (a
    benchmark's, a test's) it takes that count instead of the load average's."""
    from arranger.compose import threads

    monkeypatch.setattr(threads, "default_blas_threads", lambda: 2)
    with threads.generation_mode(blas_threads=1):
        with threads.generation_mode() as inner:
            assert inner.blas_threads == 1
        assert threads.generation_mode(blas_threads=2).blas_threads == 2  # asked: as asked
    assert threads.generation_mode().blas_threads == 2
