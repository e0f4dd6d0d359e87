"""Density: a logit bias that makes a layer busier as it rises, the model still choosing."""

from dataclasses import replace

import numpy as np
import pytest

from arranger.compose import density
from arranger.compose.coordinator import compose
from arranger.errors import InputError
from arranger.evaluation.checks import chords_move, expect_of
from arranger.preset import from_dict, load_preset
from arranger.weights import load_models
from tests.helpers import tiny_models

SONGS, BARS = 8, 8


def sweep(models, plan, value: float):
    steered = replace(plan, density={"melody": value, "drums": value, "chords": value})
    return compose(models, steered, seed=40, variations=SONGS)


def per_bar(scores, measure) -> float:
    return float(np.mean([measure(s) / s.bars for s in scores]))


@pytest.fixture(scope="module")
def shipped_sweep():
    models = load_models()
    plan = load_preset("rainy-night").plan(BARS, bass_seed=1).with_song(candidates=1)
    return plan, {d: sweep(models, plan, d) for d in (0.2, 0.9)}


def test_rising_density_gives_more_melody_notes_and_drum_hits(shipped_sweep):
    _, songs = shipped_sweep
    notes = {d: per_bar(s, lambda x: (x.melody >= 0).sum()) for d, s in songs.items()}
    hits = {d: per_bar(s, lambda x: (x.drums > 0).sum()) for d, s in songs.items()}
    assert notes[0.9] >= 2.0 * notes[0.2], notes
    # 1.42x with the style-conditioned drums (1.61x before): a soul groove keeps its time-keeping
    # hats even when sparse, so density moves the extra hits rather than the pulse.
    assert hits[0.9] >= 1.35 * hits[0.2], hits


def test_steered_songs_still_change_chords(shipped_sweep):
    """No one-chord songs at either end (the groove, which candidates choose, is measured
    with the shipped candidates by benchmarks/density_sweep.py)."""
    plan, songs = shipped_sweep
    expect = expect_of(plan.song)
    for scores in songs.values():
        assert all(chords_move(s, expect).passed for s in scores)
    changes = {d: per_bar(s, lambda x: sum(a != b for a, b in zip(x.chords[:-1], x.chords[1:],
                                                                    strict=True)))
               for d, s in songs.items()}
    assert changes[0.9] > changes[0.2], changes


def test_neutral_density_is_the_model_as_it_learnt():
    models = tiny_models()
    plan = load_preset("rainy-night").plan(BARS, bass_seed=1).with_song(candidates=1)
    plain = compose(models, plan, seed=2, variations=2)
    neutral = compose(models, replace(plan, density={"melody": 0.5, "drums": 0.5}), seed=2,
                      variations=2)
    assert all(a.equals(b) for a, b in zip(plain, neutral, strict=True))


def test_bias_is_zero_at_neutral_rises_with_density_and_stays_finite():
    values = [density.bias_nats({"drums": d}, "drums") for d in (0.0, 0.2, 0.5, 0.9, 1.0)]
    assert values[2] == 0.0 and values == sorted(values) and np.isfinite(values).all()
    assert density.bias_nats({}, "melody") == 0.0
    assert density.bias_nats({"bass": 0.9}, "bass") == 0.0  # the bass follows the chords


def test_lean_shifts_only_the_busy_tokens():
    logits = np.zeros((2, 4), np.float32)
    out = density.lean(logits, np.array([False, False, True, True]), 1.5)
    assert out[:, 2:].tolist() == [[1.5, 1.5]] * 2 and not out[:, :2].any()
    assert density.lean(logits, np.ones(4, bool), 0.0) is logits
    off = density.lean_off(logits, np.array([1, 3]), 2.0)
    assert off[0, 1] == -2.0 and off[1, 3] == -2.0 and off.sum() == -4.0


def test_density_is_read_from_the_layer_table_and_checked():
    preset = from_dict({"layers": {"melody": {"density": 0.8}}}, "x.toml")
    assert preset.plan().density == {"melody": 0.8}
    assert "density" not in preset.to_dict()["layers"]["drums"]  # unset: left out
    with pytest.raises(InputError, match=r"layers.drums.density = 1.5: expected a number in 0..1"):
        from_dict({"layers": {"drums": {"density": 1.5}}}, "x.toml")
