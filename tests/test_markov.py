"""Markov baselines: proper distributions, Witten-Bell by hand, the LSTM's call signature."""

import numpy as np
import pytest
import torch

from arranger.compose.coordinator import compose
from arranger.compose.plan import Plan
from arranger.corpus.piece import Song
from arranger.evaluation.markov import MarkovConfig, fit_markov, markov_models, train_markov
from arranger.song_settings import SongSettings
from arranger.training.layer_data import IGNORE, unigram_bits
from arranger.training.train import TrainConfig, evaluate_bits, prepare_layer
from tests.helpers import make_score

CPU = torch.device("cpu")
CFG = TrainConfig(seq_len=64, min_count=1)


@pytest.fixture(scope="module")
def splits():
    layers = frozenset({"chords", "melody", "drums"})
    songs = [Song(f"song{i}.mid", make_score(bars=8, seed=i), layers) for i in range(20)]
    return {layer: prepare_layer(songs, layer, CFG) for layer in ("chords", "melody", "drums")}


@pytest.mark.parametrize("layer", ["chords", "melody", "drums"])
def test_distributions_sum_to_one_and_beat_unigram(splits, layer):
    split = splits[layer]
    model = train_markov(split)
    logits, _ = model(split.val.prev, split.val.cond, split.val.multi)
    assert logits.shape == (*split.val.prev.shape, split.config.vocab_size)
    assert torch.allclose(logits.exp().sum(-1), torch.ones(()), atol=1e-5)
    bits = evaluate_bits(model, split.val, CPU)
    unigram = unigram_bits(split.train.target, split.val.target, split.config.vocab_size)
    assert 0 <= bits < unigram


def test_witten_bell_by_hand():
    config = MarkovConfig("melody", 3, (1,), contexts=(("h1",),))
    prev, target = np.array([[0, 1, 2, 1, 2]]), np.array([[1, 2, 1, 2, 1]])
    model = fit_markov(config, prev, np.zeros((1, 5, 1), np.int64), target)
    # unigram: c = (0, 3, 2), N = 5, T = 2 seen types: P0(w) = (c + 2/3) / 7
    p0 = (np.array([0, 3, 2]) + 2 / 3) / 7
    # after token 1: token 2 twice (c = 2, T = 1): P(w | 1) = (c(1, w) + P0(w)) / 3
    expected = (np.array([0, 0, 2]) + p0) / 3
    logits, _ = model(torch.tensor([[1, 0]]), torch.zeros(1, 2, 1, dtype=torch.long))
    assert np.allclose(logits[0, 0].exp().numpy(), expected)
    assert np.allclose(logits[0, 1].exp().numpy(), (np.array([0, 1, 0]) + p0) / 2)
    unseen = fit_markov(config, prev[:, :1], np.zeros((1, 1, 1), np.int64), target[:, :1])
    out, _ = unseen(torch.tensor([[2]]), torch.zeros(1, 1, 1, dtype=torch.long))
    assert np.allclose(out[0, 0].exp().numpy(), unseen.base)  # unseen context backs off


def test_ignored_targets_are_not_counted():
    config = MarkovConfig("melody", 3, (1,), contexts=(("h1",),))
    cond = np.zeros((1, 3, 1), np.int64)
    a = fit_markov(config, np.array([[0, 1, 1]]), cond, np.array([[1, 1, IGNORE]]))
    b = fit_markov(config, np.array([[0, 1]]), cond[:, :2], np.array([[1, 1]]))
    assert np.allclose(a.base, b.base)


def test_step_by_step_with_state_equals_one_call(splits):
    split = splits["melody"]
    model = train_markov(split)
    prev, cond, multi = split.val.prev[:3, :20], split.val.cond[:3, :20], split.val.multi[:3, :20]
    whole, _ = model(prev, cond, multi)
    state, steps = None, []
    for t in range(20):
        out, state = model(prev[:, t:t + 1], cond[:, t:t + 1], multi[:, t:t + 1], state)
        steps.append(out)
    assert torch.allclose(torch.cat(steps, 1), whole)


def test_unknown_feature_is_refused():
    with pytest.raises(ValueError, match="unknown context feature"):
        MarkovConfig("drums", 10, (16, 4), contexts=(("c7",),))


def test_markov_models_compose_through_the_coordinator(splits):
    models = markov_models(splits)
    assert models.chords.model.config.vocab_size == splits["chords"].config.vocab_size
    plan = Plan(SongSettings(bars=4))
    a = compose(models, plan, seed=1, variations=2)
    b = compose(models, plan, seed=1, variations=2)
    assert a[0].equals(b[0]) and len(a) == 2
    assert (a[0].melody >= 0).any() and (a[0].drums > 0).any()
    assert all(c is not None for c in a[0].chords)


def test_multi_hot_feature_reads_the_bit_pattern(splits):
    split = splits["chords"]
    model = train_markov(split, contexts=(("c0",), ("c0", "m"), ("c0", "m", "h1")))
    logits, _ = model(split.val.prev, split.val.cond, split.val.multi)
    assert torch.allclose(logits.exp().sum(-1), torch.ones(()), atol=1e-5)
    blind, _ = model(split.val.prev, split.val.cond, torch.zeros_like(split.val.multi))
    assert not torch.allclose(logits, blind)
