"""The numpy single-step path gives the PyTorch model's logits and states."""

import numpy as np
import pytest
import torch

from arranger.coordinator import Plan, compose
from tests.helpers import tiny_models
from tracks import chords, drums, melody
from tracks.inference import NumpyStep
from tracks.model import ConditionedLSTM, ModelConfig


@pytest.mark.parametrize("module,vocab,layers", [(chords, chords.VOCAB_SIZE, 2),
                                                 (melody, melody.VOCAB_SIZE, 3),
                                                 (drums, 40, 1)])
def test_numpy_step_matches_torch_over_a_sequence(module, vocab, layers):
    torch.manual_seed(0)
    cfg = ModelConfig(module.LAYER, vocab, module.COND_SIZES, module.MULTI_HOT, hidden=32,
                      num_layers=layers)
    model = ConditionedLSTM(cfg).eval()
    batch, steps = 3, 12
    prev = torch.randint(0, vocab, (batch, steps))
    cond = torch.stack([torch.randint(0, n, (batch, steps)) for n in cfg.cond_sizes], -1)
    multi = (torch.rand(batch, steps, module.MULTI_HOT) > 0.5).float() if cfg.multi_hot else None
    with torch.no_grad():
        expected, _ = model(prev, cond, multi)
    step, state = NumpyStep(model), None
    for t in range(steps):
        m = None if multi is None else multi[:, t:t + 1]
        logits, state = step(prev[:, t:t + 1], cond[:, t:t + 1], m, state)
        np.testing.assert_allclose(logits[:, 0].numpy(), expected[:, t].numpy(), atol=2e-5)


def test_fast_and_torch_paths_write_the_same_song():
    models = tiny_models(hidden=24)
    plan = Plan(bars=4)
    assert compose(models, plan, seed=4)[0].equals(
        compose(models, plan, seed=4, device=torch.device("cpu"))[0])
