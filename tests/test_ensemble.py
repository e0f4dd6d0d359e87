"""Ensembles: several --weights folders, their layer models' probabilities averaged per step."""

import json

import numpy as np
import pytest
import torch

from arranger.compose.coordinator import Models, compose
from arranger.compose.plan import Plan
from arranger.song_settings import SongSettings
from arranger.weights import folders, joined, load_models, weights_hash
from tests.helpers import save_models, tiny_models
from tracks.ensemble import EnsembleStep, EnsembleWeights
from tracks.inference import fast_step
from tracks.model import ConditionedLSTM, LayerWeights, ModelConfig, WeightsError


def _softmax(x):
    z = np.exp(x - x.max(-1, keepdims=True))
    return z / z.sum(-1, keepdims=True)


def _inputs(w, batch=3, seed=0):
    rng = np.random.default_rng(seed)
    c = w.config
    tokens = rng.integers(1, c.vocab_size, batch)
    conds = np.stack([rng.integers(0, n, batch) for n in c.cond_sizes], axis=1)
    multi = rng.integers(0, 2, (batch, c.multi_hot)).astype(np.float32) if c.multi_hot else None
    return tokens, conds, multi


@pytest.mark.parametrize("layer", ["chords", "melody", "drums"])
def test_the_step_averages_the_members_probabilities(layer):
    a, b = getattr(tiny_models(seed=1), layer), getattr(tiny_models(seed=2), layer)
    ens = EnsembleStep(EnsembleWeights([a, b]))
    tokens, conds, multi = _inputs(a)
    state = None
    sa = sb = None
    for _ in range(3):  # the members' states are carried
        logp, state = ens.step(tokens, conds, multi, state)
        la, sa = fast_step(a).step(tokens, conds, multi, sa)
        lb, sb = fast_step(b).step(tokens, conds, multi, sb)
        expected = (_softmax(la) + _softmax(lb)) / 2
        np.testing.assert_allclose(np.exp(logp), expected, rtol=1e-5, atol=1e-7)
    solo = EnsembleStep(EnsembleWeights([a, a]))  # a model with itself: the model
    np.testing.assert_allclose(np.exp(solo.step(tokens, conds, multi)[0]),
                               _softmax(fast_step(a).step(tokens, conds, multi)[0]), rtol=1e-5)


def test_the_torch_module_matches_the_numpy_step_over_a_window():
    a, b = tiny_models(seed=1).melody, tiny_models(seed=2).melody
    weights = EnsembleWeights([a, b])
    rng = np.random.default_rng(0)
    prev = rng.integers(1, a.config.vocab_size, (2, 5))
    cond = np.stack([rng.integers(0, n, (2, 5)) for n in a.config.cond_sizes], axis=-1)
    multi = rng.integers(0, 2, (2, 5, a.config.multi_hot)).astype(np.float32)
    with torch.no_grad():
        logp, _ = weights.model(torch.from_numpy(prev), torch.from_numpy(cond),
                                torch.from_numpy(multi))
    step, state = EnsembleStep(weights), None
    for t in range(5):
        out, state = step.step(prev[:, t], cond[:, t], multi[:, t], state)
        np.testing.assert_allclose(out, logp[:, t].numpy(), atol=1e-4)


def test_members_with_another_vocabulary_are_refused_in_one_line():
    a = tiny_models().chords
    cfg = a.config
    other = ModelConfig(cfg.layer, cfg.vocab_size - 1, cfg.cond_sizes, cfg.multi_hot, 8, 4, 16,
                        1, 0.0)
    b = LayerWeights(ConditionedLSTM(other).eval(), list(a.vocab)[:-1], {})
    with pytest.raises(WeightsError, match="another vocabulary") as e:
        EnsembleWeights([a, b], ["A", "B"])
    assert str(e.value).startswith("B: its chords model") and "\n" not in str(e.value)


def test_an_ensemble_composes_something_else_than_either_member():
    a, b = tiny_models(seed=1), tiny_models(seed=2)
    both = Models(**{k: EnsembleWeights([getattr(a, k), getattr(b, k)])
                     for k in ("chords", "melody", "drums")})
    plan = Plan(SongSettings(bars=4))
    songs = [compose(m, plan, seed=0)[0] for m in (a, b, both)]
    assert not songs[2].equals(songs[0]) and not songs[2].equals(songs[1])
    assert songs[2].equals(compose(both, plan, seed=0)[0])  # still deterministic


def test_generate_with_two_weights_folders_and_reproduce_it(tmp_path):
    from typer.testing import CliRunner

    from arranger.cli.main import app

    a = save_models(tiny_models(seed=1), tmp_path / "A")
    b = save_models(tiny_models(seed=2), tmp_path / "B")
    runner = CliRunner()
    base = ["generate", "--bars", "4", "--no-render", "--seed", "3"]
    solo = runner.invoke(app, [*base, "--weights", str(a), "--out", str(tmp_path / "solo")])
    duo = runner.invoke(app, [*base, "--weights", str(a), "--weights", str(b), "--out",
                              str(tmp_path / "duo")])
    assert solo.exit_code == 0 and duo.exit_code == 0, duo.output
    midi = {k: (tmp_path / k / "score.mid").read_bytes() for k in ("solo", "duo")}
    assert midi["solo"] != midi["duo"]
    manifest = json.loads((tmp_path / "duo" / "manifest.json").read_text())
    assert folders(manifest["weights"]) == [a.resolve(), b.resolve()]
    assert manifest["weights_sha256"] == weights_hash([a, b]) != weights_hash(a)
    again = runner.invoke(app, ["generate", "--from-manifest", str(tmp_path / "duo" /
                                                                   "manifest.json"),
                                "--no-render", "--out", str(tmp_path / "again")])
    assert again.exit_code == 0, again.output
    assert (tmp_path / "again" / "score.mid").read_bytes() == midi["duo"]


def test_weights_values_name_one_or_several_folders(tmp_path):
    assert folders(None) == [None] and joined(None) is None and joined([tmp_path]) == tmp_path
    both = joined([tmp_path / "a", tmp_path / "b"])
    assert folders(both) == [tmp_path / "a", tmp_path / "b"]
    assert folders([tmp_path]) == [tmp_path]
    models = load_models([None, None])  # the shipped weights twice: an ensemble per layer
    assert isinstance(models.melody, EnsembleWeights) and len(models.melody.members) == 2


def test_the_pytorch_path_composes_with_an_ensemble_too():
    """``--device cuda`` runs the PyTorch module; here on the CPU, the same code path."""
    a, b = tiny_models(seed=1), tiny_models(seed=2)
    both = Models(**{k: EnsembleWeights([getattr(a, k), getattr(b, k)])
                     for k in ("chords", "melody", "drums")})
    song = compose(both, Plan(SongSettings(bars=4)), seed=0, device=torch.device("cpu"))[0]
    assert song.bars == 4 and (song.melody >= 0).any()
