"""Training: it learns, reports bits/step, checkpoints, resumes, and exports safe weights."""

import numpy as np
import pytest
import torch

from arranger.compose.coordinator import Plan, compose
from arranger.corpus.piece import Song
from arranger.training.layer_data import is_validation
from arranger.training.train import TrainConfig, prepare_layer, resolve_device, train_layer
from arranger.weights import load_models
from tests.helpers import make_score
from tracks.model import WeightsError, load_weights


def corpus(n=24):
    layers = frozenset({"chords", "melody", "drums"})
    return [Song(f"song{i}.mid", make_score(bars=8, seed=i), layers) for i in range(n)]


CFG = TrainConfig(epochs=3, batch_size=8, seq_len=64, hidden=32, num_layers=1, embed_dim=16,
                  patience=5, lr=1e-2)


@pytest.mark.parametrize("layer", ["chords", "melody", "drums"])
def test_training_beats_unigram_and_exports_weights(tmp_path, layer):
    cfg = CFG if layer != "chords" else TrainConfig(**{**CFG.__dict__, "seq_len": 16})
    split = prepare_layer(corpus(), layer, cfg)
    card = train_layer(split, cfg, tmp_path, torch.device("cpu"))
    assert card["val_bits_per_step"] < card["unigram_val_bits_per_step"]
    assert len(card["history"]) == 3 and card["train_tokens"] > 0
    w = load_weights(tmp_path / f"{layer}.safetensors", layer)
    assert w.vocab == split.vocab and w.card["epochs"] >= 1


def test_resume_continues_from_last_epoch(tmp_path):
    split = prepare_layer(corpus(), "melody", CFG)
    two = TrainConfig(**{**CFG.__dict__, "epochs": 2})
    train_layer(split, two, tmp_path, torch.device("cpu"))
    card = train_layer(split, CFG, tmp_path, torch.device("cpu"), resume=True)
    assert [h["epoch"] for h in card["history"]] == [1, 2, 3]


def test_resume_refuses_another_config(tmp_path):
    split = prepare_layer(corpus(), "melody", CFG)
    train_layer(split, TrainConfig(**{**CFG.__dict__, "epochs": 1}), tmp_path, torch.device("cpu"))
    other = TrainConfig(**{**CFG.__dict__, "hidden": 48})
    with pytest.raises(ValueError, match="another config"):
        train_layer(prepare_layer(corpus(), "melody", other), other, tmp_path,
                    torch.device("cpu"), resume=True)


def test_trained_folder_generates(tmp_path):
    for layer in ("chords", "melody", "drums"):
        train_layer(prepare_layer(corpus(), layer, CFG), CFG, tmp_path, torch.device("cpu"))
    models = load_models(tmp_path)
    song = compose(models, Plan(bars=4), seed=0)[0]
    assert song.bars == 4 and (song.melody >= 0).any()


def test_pickle_weights_are_refused(tmp_path):
    evil = tmp_path / "melody.safetensors"
    torch.save({"x": torch.zeros(2)}, evil)  # a pickle, whatever its name says
    with pytest.raises(WeightsError, match="not a safetensors"):
        load_weights(evil, "melody")


def test_weights_of_another_layer_are_refused(tmp_path):
    train_layer(prepare_layer(corpus(), "drums", CFG), CFG, tmp_path, torch.device("cpu"))
    with pytest.raises(WeightsError, match="holds a 'drums' model"):
        load_weights(tmp_path / "drums.safetensors", "melody")


def test_validation_split_is_stable_and_by_song():
    names = [f"song{i}" for i in range(1000)]
    held = [n for n in names if is_validation(n, 0.1)]
    assert 60 < len(held) < 140 and held == [n for n in names if is_validation(n, 0.1)]


def test_device_resolution():
    assert resolve_device("cpu").type == "cpu"
    assert resolve_device("auto").type in ("cpu", "cuda")
    with pytest.raises(ValueError, match="choose auto"):
        resolve_device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="no CUDA"):
            resolve_device("cuda")


def test_conditions_never_seen_known_are_recorded_as_blind():
    drums_only = [Song(f"d{i}.mid", make_score(bars=8, seed=i), frozenset({"drums"}))
                  for i in range(6)]
    split = prepare_layer(drums_only, "drums", CFG)
    from arranger.training.train import blind_conditions

    assert blind_conditions(split) == [2, 3]  # chord change and melody onset: never known
    assert blind_conditions(prepare_layer(corpus(6), "drums", CFG)) == []


def test_blind_conditions_are_fed_unknown_at_generation():
    from arranger.compose.coordinator import _Stepper
    from arranger.settings import Sampling
    from tests.helpers import tiny_models
    from tracks import drums

    w = tiny_models().drums
    w.card["blind_conditions"] = [2, 3]
    stepper = _Stepper(w, 1, Sampling(), module=drums)
    cond = np.array([[[3, 1, 2, 2]]])
    stepper.logits(cond, None)
    assert cond.tolist() == [[[3, 1, 0, 0]]]


def test_fine_tuning_keeps_vocabulary_and_starts_from_the_given_weights(tmp_path):
    base = prepare_layer(corpus(), "drums", CFG)
    train_layer(base, CFG, tmp_path / "base", torch.device("cpu"))
    init = load_weights(tmp_path / "base" / "drums.safetensors", "drums")
    few = [s for s in corpus() if s.source.endswith(("1.mid", "2.mid", "3.mid"))]
    split = prepare_layer(few, "drums", CFG, init)
    assert split.vocab == init.vocab and split.config == init.model.config
    start = TrainConfig(**{**CFG.__dict__, "epochs": 0})
    card = train_layer(split, start, tmp_path / "ft", torch.device("cpu"), init=init)
    assert card["fine_tuned_from"]["epochs"] == init.card["epochs"]
