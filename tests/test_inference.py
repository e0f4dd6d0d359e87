"""The numpy single-step path gives the PyTorch model's logits and states."""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from arranger.compose.coordinator import compose
from arranger.compose.plan import Plan
from arranger.song_settings import SongSettings
from tests.helpers import tiny_models
from tracks import chords, melody
from tracks.inference import NumpyStep, fast_step
from tracks.layers import CHORDS, DRUMS, MELODY
from tracks.model import ConditionedLSTM, ModelConfig, save_weights
from tracks.weights_file import read_weights, tensor_shapes

SHIPPED = Path(__file__).resolve().parents[1] / "tracks" / "weights"


@pytest.mark.parametrize("spec,vocab,layers", [(CHORDS, chords.VOCAB_SIZE, 2),
                                               (MELODY, melody.VOCAB_SIZE, 3),
                                               (DRUMS, 40, 1)])
def test_numpy_step_matches_torch_over_a_sequence(spec, vocab, layers):
    torch.manual_seed(0)
    cfg = ModelConfig(spec.name, vocab, spec.cond_sizes, spec.multi_hot, hidden=32,
                      num_layers=layers)
    model = ConditionedLSTM(cfg).eval()
    batch, steps = 3, 12
    prev = torch.randint(0, vocab, (batch, steps))
    cond = torch.stack([torch.randint(0, n, (batch, steps)) for n in cfg.cond_sizes], -1)
    multi = (torch.rand(batch, steps, spec.multi_hot) > 0.5).float() if cfg.multi_hot else None
    with torch.no_grad():
        expected, _ = model(prev, cond, multi)
    step, state = NumpyStep.of(model), None
    for t in range(steps):
        m = None if multi is None else multi[:, t:t + 1]
        logits, state = step(prev[:, t:t + 1], cond[:, t:t + 1], m, state)
        np.testing.assert_allclose(logits[:, 0].numpy(), expected[:, t].numpy(), atol=2e-5)


def test_fast_and_torch_paths_write_the_same_song():
    models = tiny_models(hidden=24)
    plan = Plan(SongSettings(bars=4))
    assert compose(models, plan, seed=4)[0].equals(
        compose(models, plan, seed=4, device=torch.device("cpu"))[0])


@pytest.mark.parametrize("spec,vocab,layers", [(CHORDS, chords.VOCAB_SIZE, 2), (DRUMS, 40, 3)])
def test_tensor_shapes_are_the_models_state_dict(spec, vocab, layers):
    cfg = ModelConfig(spec.name, vocab, spec.cond_sizes, spec.multi_hot, hidden=16,
                      num_layers=layers)
    expected = {k: tuple(v.shape) for k, v in ConditionedLSTM(cfg).state_dict().items()}
    assert tensor_shapes(cfg) == expected


def test_weights_read_into_numpy_build_the_same_model(tmp_path):
    models = tiny_models(hidden=24)
    save_weights(tmp_path / "melody.safetensors", models.melody)
    read = read_weights(tmp_path / "melody.safetensors", "melody")
    assert read.config == models.melody.config and read.vocab == models.melody.vocab
    for name, tensor in models.melody.model.state_dict().items():
        np.testing.assert_array_equal(read.numpy_arrays()[name], tensor.numpy())
        np.testing.assert_array_equal(read.model.state_dict()[name].numpy(), tensor.numpy())


def test_cpu_generation_never_imports_torch(tmp_path):
    """`lofi generate` on the CPU steps in numpy: torch's import (~1 s) is not paid."""
    code = ("import sys; from arranger.compose.generate import generate; from arranger.preset "
            "import load_preset; from arranger.compose.song_folder import Output; "
            f"generate(load_preset('rainy-night'), __import__('pathlib').Path({str(tmp_path)!r})"
            " / 'song', seed=3, bars=4, output=Output(render=False, pictures=False, "
            "progress=False)); print('torch' in sys.modules)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            check=True, cwd=Path(__file__).resolve().parents[1])
    assert result.stdout.strip().splitlines()[-1] == "False"
    assert (tmp_path / "song" / "score.mid").stat().st_size > 0


def test_inference_settings_are_typed_read_from_the_card_and_checked(tmp_path):
    from tracks.weights_file import InferenceSettings, WeightsError

    shipped = read_weights(Path(__file__).resolve().parents[1] / "tracks" / "weights"
                           / "drums.safetensors", "drums")  # written before the type existed
    assert shipped.inference.blind_conditions == (2, 3)
    assert shipped.inference.allowed_tokens == tuple(sorted(shipped.card["allowed_tokens"]))
    models = tiny_models()
    w = models.melody
    w.inference = InferenceSettings(allowed_tokens=(1, 2, 5), blind_conditions=(1,))
    save_weights(tmp_path / "melody.safetensors", w)
    read = read_weights(tmp_path / "melody.safetensors", "melody")
    assert read.inference == w.inference
    assert np.flatnonzero(read.inference.allowed_mask(w.config.vocab_size)).tolist() == [1, 2, 5]
    with pytest.raises(WeightsError, match=r"card.blind_conditions = \[7\]: expected a list of "
                                           r"integers in 0..3"):
        InferenceSettings.from_card({"blind_conditions": [7]}, 10, 4, "x.safetensors")
    with pytest.raises(WeightsError, match="card.allowed_tokens"):
        InferenceSettings.from_card({"allowed_tokens": "all"}, 10, 4)


def _plain_step(step: NumpyStep, tokens, conds, multi, state):
    """The step as plain left-to-right numpy sums: what the fused step must equal, bit for bit
    (same seed, same song rests on it)."""
    hidden = step.config.hidden
    x = step.token_table[tokens]
    for i, table in enumerate(step.cond_tables):
        x = x + table[conds[:, i]]
    if step.multi_w is not None:
        x = x + multi @ step.multi_w + step.multi_b
    h, c = (a.copy() for a in state)
    gates = x + h[0] @ step.w_hh0
    for k in range(step.config.num_layers):
        if k:
            gates = np.concatenate([h[k - 1], h[k]], axis=1) @ step.w_upper[k - 1]
            gates += step.b_upper[k - 1]
        t = np.tanh(gates)
        sig = t[:, : 3 * hidden] * 0.5 + 0.5
        c[k] = sig[:, hidden : 2 * hidden] * c[k] + sig[:, :hidden] * t[:, 3 * hidden :]
        h[k] = sig[:, 2 * hidden :] * np.tanh(c[k])
    return h[-1] @ step.head_w + step.head_b, (h, c)


@pytest.mark.parametrize("layer,batch", [("melody", 1), ("melody", 4), ("drums", 1),
                                         ("chords", 3)])
def test_fused_step_is_bit_identical_to_plain_sums(layer, batch):
    weights = read_weights(SHIPPED / f"{layer}.safetensors", layer)
    step, rng = NumpyStep(weights.config, weights.numpy_arrays()), np.random.default_rng(1)
    cfg = weights.config
    state = ref = step._zeros(batch)
    multi = None
    for t in range(24):
        tokens = rng.integers(1, cfg.vocab_size, batch)
        conds = np.stack([rng.integers(0, n, batch) for n in cfg.cond_sizes], 1)
        if cfg.multi_hot and t % 4 == 0:  # a beat's multi-hot, held: its product is kept
            multi = (rng.random((batch, cfg.multi_hot)) > 0.5).astype(np.float32)
        logits, state = step.step(tokens, conds, multi, state)
        expected, ref = _plain_step(step, tokens, conds, multi, ref)
        np.testing.assert_array_equal(logits, expected)
        np.testing.assert_array_equal(state[1], ref[1])


def test_steppers_of_one_weights_share_tables_and_follow_a_models_changes():
    shipped = read_weights(SHIPPED / "drums.safetensors", "drums")
    a, b = fast_step(shipped), fast_step(shipped)
    assert a.inputs is b.inputs and a._rows is None
    cond = np.zeros((2, len(shipped.config.cond_sizes)), np.int64)
    alone, _ = fast_step(shipped).step(np.array([1, 5]), cond)
    a.step(np.array([3]), cond[:1])  # another batch size in between: work arrays apart
    np.testing.assert_array_equal(b.step(np.array([1, 5]), cond)[0], alone)
    trained = tiny_models(hidden=8).melody  # a model's weights may move between calls
    tokens, conds, multi = np.array([1]), np.zeros((1, 4), np.int64), np.zeros((1, 12),
                                                                                np.float32)
    before, _ = fast_step(trained).step(tokens, conds, multi)
    with torch.no_grad():
        trained.model.head.bias += 1.0
    after, _ = fast_step(trained).step(tokens, conds, multi)
    np.testing.assert_allclose(after, before + 1.0, rtol=1e-6)
