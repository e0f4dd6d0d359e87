"""Staged candidate search: the stage bar, rows taken part-way, and songs exactly as the whole
K-row batch writes them."""

import hashlib

import numpy as np
import pytest

from arranger.compose import coordinator, sections
from arranger.compose.coordinator import (
    Generated,
    compose,
    ending_forced,
    generate_tokens,
    keep_best,
    to_scores,
)
from arranger.compose.plan import Forced, Plan
from arranger.compose.sampling import RowStreams, no_grad
from arranger.compose.sections import Section
from arranger.compose.staging import SURVIVORS, Walk, kept_rows, stage_bar
from arranger.preset import load_preset
from arranger.song_settings import SongSettings
from tests.helpers import tiny_models
from tracks.weights_file import InferenceSettings

# intro (no melody, unjudged) | A | B | A (replayed) | outro (no drums, unjudged): stage bar 6.
FORM = (Section("intro", 1, ("chords", "bass", "drums")), Section("A", 2), Section("B", 3),
        Section("A", 2), Section("outro", 2, ("chords", "melody", "bass")))
CHORDS_MELODY = ("chords", "melody", "bass")


def plan_of(**song) -> Plan:
    song = {"bars": 10, "sections": FORM, "drum_loop_bars": 1, "loop_bars": 1,
            "melody_gap_bars": 1.0} | song
    return Plan(SongSettings(**song), {})


@pytest.fixture(scope="module")
def models():
    return tiny_models()


@pytest.fixture
def blind_drums(models):
    """The drum model blind to chords and melody, as the shipped one is: drums ranked apart."""
    models.drums.inference = InferenceSettings(blind_conditions=(2, 3))
    yield models
    models.drums.inference = InferenceSettings()


def candidates_forced(plan: Plan, models, songs: int, k: int) -> Forced:
    """The forced tokens compose() gives generate_tokens: every song's ``k`` rows."""
    forced = Forced.free(songs, plan.song.bars)
    ending_forced(forced, plan, models)
    return Forced(*(np.repeat(a, k, axis=0) for a in (forced.chords, forced.melody,
                                                       forced.drums)))


def tokens_equal(a: Generated, b: Generated) -> bool:
    return all(np.array_equal(x, y) for x, y in zip((a.chords, a.melody, a.drums),
                                                     (b.chords, b.melody, b.drums), strict=True))


def score_digest(scores) -> str:
    h = hashlib.sha256()
    for s in scores:
        h.update(repr(s.chords).encode())
        for line in (s.melody, s.bass, s.drums, s.drum_velocity):
            h.update(np.ascontiguousarray(line, np.int64).tobytes())
    return h.hexdigest()


def test_the_stage_bar_ends_the_last_judged_bar_of_new_material():
    assert stage_bar(plan_of(), 4) == 6  # bars 6-7 replay A, bars 8-9 are drumless
    assert stage_bar(plan_of(), 1) == 10  # one candidate: nothing to rank
    assert stage_bar(plan_of(sections=()), 4) == 10  # no form
    assert stage_bar(plan_of(sections=(Section("A", 4), Section("B", 6)), bars=10), 4) == 10
    rainy = load_preset("rainy-night")
    for bars in (32, 56):  # intro 4, A 8, B 8, then only A and B again, and the outro
        assert stage_bar(rainy.plan(bars, bass_seed=0), 24) == 20


def test_a_section_replayed_where_a_layer_first_plays_is_new_material():
    """A repeat counts only for the layers it replays: drums entering in A's second
    occurrence are new drums there."""
    form = (Section("intro", 1), Section("A", 2, CHORDS_MELODY), Section("B", 2),
            Section("A", 2))
    assert stage_bar(plan_of(sections=form, bars=7), 4) == 7
    assert stage_bar(plan_of(sections=form[:3] + (Section("A", 2, CHORDS_MELODY),),
                             bars=7), 4) == 5


def test_kept_rows_walk_a_row_chosen_only_for_its_drums_whole():
    keep, rows, drums = kept_rows([2, 5, 11], [3, 5, 9])
    assert keep == [2, 3, 5, 9, 11]
    assert [keep[i] for i in rows] == [2, 5, 11] and [keep[i] for i in drums] == [3, 5, 9]


def walked(models, plan: Plan, forced: Forced, k: int, stage: int, keep: list[int],
           device=None) -> Generated:
    """A walk of all rows to bar ``stage``, narrowed to ``keep`` there, walked to the end."""
    with no_grad(device):
        walk = Walk.start(models, plan, forced, 3, device, k)
        walk.run(0, stage * 16)
        walk.take(keep)
        walk.run(stage * 16, forced.melody.shape[1])
    return Generated.of(walk.voices)


@pytest.mark.parametrize(("stage", "device"), [(1, None), (4, None), (6, None), (9, None),
                                               (6, "cpu")])
def test_rows_taken_part_way_write_what_the_whole_batch_writes(models, stage, device):
    """Reordered, dropped and repeated rows go on exactly as in the whole batch: state,
    context, streams and every voice's own per-row state are taken alike (on PyTorch's path
    too)."""
    import torch

    device = None if device is None else torch.device(device)
    plan, k = plan_of(melody_form="AB"), 4
    forced = candidates_forced(plan, models, 2, k)
    full = generate_tokens(models, plan, forced, 3, device, candidates=k)
    keep = [6, 1, 2, 2]
    got = walked(models, plan, forced, k, stage, keep, device)
    assert tokens_equal(got, full.take(keep, keep))
    for layer in full.loglik:
        np.testing.assert_array_equal(got.loglik[layer], full.loglik[layer][keep])
        np.testing.assert_array_equal(got.forced_logp[layer], full.forced_logp[layer][keep])


def test_drums_from_another_row_are_that_rows_drums(blind_drums):
    plan, k = plan_of(), 4
    forced = candidates_forced(plan, blind_drums, 2, k)
    full = generate_tokens(blind_drums, plan, forced, 3, candidates=k)
    keep, rows, drum_rows = kept_rows([1, 4], [3, 4])
    got = walked(blind_drums, plan, forced, k, 6, keep).take(rows, drum_rows)
    assert tokens_equal(got, full.take([1, 4], [3, 4]))


@pytest.mark.parametrize("blind", [False, True])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_staged_compose_writes_the_chosen_rows_of_the_full_batch(models, monkeypatch, blind,
                                                                 seed):
    """The contract: compose ranks all K on the prefix, finishes the best few, and the song it
    returns is, bit for bit, what ranking those few of a full K-row generate_tokens gives."""
    if blind:
        models.drums.inference = InferenceSettings(blind_conditions=(2, 3))
    calls = []
    monkeypatch.setattr(coordinator, "survivor_rows", recording(coordinator.survivor_rows,
                                                                calls))
    try:
        plan, k, songs = plan_of(candidates=6), 6, 2
        staged = compose(models, plan, seed=seed, variations=songs)
        full = generate_tokens(models, plan, candidates_forced(plan, models, songs, k), seed,
                               candidates=k)
        (prefix, stage, survivors), (keep, at, drums_at) = calls[0]
        rows, drum_rows = [keep[i] for i in at], [keep[i] for i in drums_at]
        assert stage == stage_bar(plan, k) == 6 and survivors == SURVIVORS
        assert tokens_equal(prefix, full.until(stage))  # ranked on the full batch's prefix
        songs_of = [0] * survivors + [1] * survivors
        assert [r // k for r in rows] == [r // k for r in drum_rows] == songs_of
        assert len(set(drum_rows)) == 2 * survivors
        assert len(set(rows)) == (2 if blind else 2 * survivors)
        want = to_scores(keep_best(full.take(rows, drum_rows), plan, models, survivors), plan,
                         models)
    finally:
        models.drums.inference = InferenceSettings()
    assert all(a.equals(b) for a, b in zip(staged, want, strict=True))


def recording(survivor_rows, calls: list):
    """``survivor_rows`` that appends ((its prefix, stage, survivors), its rows) to ``calls``."""
    def wrapped(prefix, plan, models, k, stage, survivors):
        rows = survivor_rows(prefix, plan, models, k, stage, survivors)
        calls.append(((prefix, stage, survivors), rows))
        return rows

    return wrapped


def test_the_survivors_are_the_best_ranked_on_the_prefix_best_first(models):
    """keep=1 of the survivors' ranking is the one row ranked first; a stable sort of the
    keys gives the others in order."""
    plan = plan_of(candidates=6)
    gen = generate_tokens(models, plan, candidates_forced(plan, models, 2, 6), 4, candidates=6)
    head = gen.until(6)
    one = coordinator.best_rows(head, plan, models, 6, 6)
    some = coordinator.best_rows(head, plan, models, 6, 6, keep=3)
    assert one == ([some[0][0], some[0][3]], [some[1][0], some[1][3]])
    assert len(set(some[0][:3])) == 3 and {r // 6 for r in some[0][3:]} == {1}


@pytest.mark.parametrize("song", [{"sections": (), "candidates": 6}, {"candidates": 1},
                                  {"candidates": SURVIVORS},
                                  {"sections": (Section("A", 4), Section("B", 6)),
                                   "candidates": 6}])
def test_without_a_stage_compose_writes_what_it_wrote(models, song):
    """No form, one candidate, no more candidates than survivors, or new material to the end:
    today's path (the whole K-row batch, ranked on the whole song), the same tokens."""
    plan = plan_of(**song)
    k = plan.song.candidates
    gen = generate_tokens(models, plan, candidates_forced(plan, models, 3, k), 8, candidates=k)
    before = to_scores(gen if k == 1 else keep_best(gen, plan, models, k), plan, models)
    assert score_digest(compose(models, plan, seed=8, variations=3)) == score_digest(before)


def test_row_streams_taken_go_on_from_where_each_row_was():
    streams, whole = RowStreams(4, 3, candidates=3), RowStreams(4, 3, candidates=3)
    for _ in range(300):  # past one buffered block
        streams.uniform(), whole.uniform()
    streams.take([2, 0, 2])
    np.testing.assert_array_equal(streams.uniform()[:, 0], whole.uniform()[[2, 0, 2], 0])
    ahead = [streams.uniform(np.array([0]))[0, 0] for _ in range(300)]  # row 2, first copy
    later = [whole.uniform()[2, 0] for _ in range(300)]
    assert ahead == later  # ... and its second copy still draws from where both were:
    assert [streams.uniform(np.array([2]))[0, 0] for _ in range(300)] == later


def test_the_prefix_is_judged_on_the_songs_form(models):
    """Ranked on bars [0, stage), the checks judge the judged bars of the song's form among
    them (not the form of a song that short): here bars 1-5, the drums-only intro left out."""
    plan = plan_of()
    gen = generate_tokens(models, plan, candidates_forced(plan, models, 1, 1), 1)
    head = to_scores(gen.until(6), plan.with_song(bars=6), models, bass=False)[0]
    judged = sections.judged(head, plan.form, 6)
    assert judged.bars == 5 and np.array_equal(judged.melody, head.melody[16:])
    whole = to_scores(gen, plan, models, bass=False)[0]
    assert sections.judged(whole, plan.form, 10).bars == 7  # A, B, A: no outro
