"""Training: it learns, reports bits/step, checkpoints, resumes, and exports safe weights."""

from pathlib import Path

import numpy as np
import pytest
import torch

from arranger.compose.coordinator import compose
from arranger.compose.plan import Plan
from arranger.corpus.piece import Song
from arranger.song_settings import SongSettings
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
    song = compose(models, Plan(SongSettings(bars=4)), seed=0)[0]
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
    from arranger.compose.sampling import Stepper
    from arranger.song_settings import Sampling
    from tests.helpers import tiny_models
    from tracks.layers import DRUMS
    from tracks.weights_file import InferenceSettings

    w = tiny_models().drums
    hearing = Stepper(w, 1, Sampling(), DRUMS)
    w.inference = InferenceSettings(blind_conditions=(2, 3))
    blind = Stepper(w, 1, Sampling(), DRUMS)
    rest = [0] * (len(DRUMS.cond_sizes) - 4)  # the conditions after the four of this test
    cond = np.array([[[3, 1, 2, 2, *rest]]])
    logits = blind.logits(cond, None)
    assert cond.tolist() == [[[3, 1, 2, 2, *rest]]]  # the caller's conditions are left alone
    np.testing.assert_array_equal(logits, hearing.logits(np.array([[[3, 1, 0, 0, *rest]]]),
                                                         None))
    assert not np.array_equal(logits, Stepper(tiny_models().drums, 1, Sampling(), DRUMS)
                              .logits(cond, None))


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


# --- what `lofi train` does before and around training (#12) ---------------------------------

def _no_drums(n=12):
    layers = frozenset({"chords", "melody", "bass"})
    return [Song(f"/c/pop909/{i:03d}", make_score(bars=8, seed=i), layers, "pop909")
            for i in range(n)]


def _fake_corpus(monkeypatch, songs, skipped=()):
    from arranger.corpus import load
    from arranger.corpus.load import CorpusReport

    report = CorpusReport()
    for source, reason in skipped:
        report.add(source, reason)

    def fake(paths, **kwargs):
        return list(songs), report

    monkeypatch.setattr(load, "load_corpus", fake)


TINY = {"epochs": 1, "hidden": 16, "batch_size": 8}


def test_layers_the_corpus_lacks_come_from_the_shipped_weights(tmp_path, monkeypatch):
    from arranger.training.run import run_training
    from arranger.weights import DEFAULT_WEIGHTS

    _fake_corpus(monkeypatch, _no_drums(), skipped=[("/c/x.krn", "unsupported file type .krn: ")])
    cards = run_training([tmp_path], tmp_path / "w", device="cpu", overrides=TINY)
    assert sorted(cards) == ["chords", "melody"]
    drums = load_weights(tmp_path / "w" / "drums.safetensors", "drums")
    shipped = load_weights(DEFAULT_WEIGHTS / "drums.safetensors", "drums")
    assert drums.vocab == shipped.vocab and drums.card["copied_from"] == str(DEFAULT_WEIGHTS)
    assert drums.card["copied_because"] == "the corpus holds no drums songs"
    md = (tmp_path / "w" / "MODEL_CARD.md").read_text()
    assert "The drums model was not trained here (the corpus holds no drums songs)" in md
    song = compose(load_models(tmp_path / "w"), Plan(SongSettings(bars=4)), seed=0)[0]
    assert song.bars == 4
    assert (tmp_path / "w" / "skipped.tsv").read_text().splitlines()[1].startswith("/c/x.krn\t")


def test_an_impossible_layer_request_is_refused_before_any_training(tmp_path, monkeypatch):
    from arranger.errors import InputError
    from arranger.training import train
    from arranger.training.run import run_training

    _fake_corpus(monkeypatch, _no_drums())
    monkeypatch.setattr(train, "train_layer", lambda *a, **k: pytest.fail("trained"))
    with pytest.raises(InputError, match="no song holds drums") as e:
        run_training([tmp_path], tmp_path / "w", layers="chords,drums", device="cpu")
    assert "chords 12, melody 12, drums 0" in str(e.value)
    assert not (tmp_path / "w").exists()  # nothing written
    with pytest.raises(InputError, match="layers = 'bass'"):
        run_training([tmp_path], tmp_path / "w", layers="bass", device="cpu")


def test_a_model_worse_than_unigram_is_flagged_in_the_card():
    from arranger.training.cards import model_card_markdown, worse_than_unigram

    card = {"parameters": 10, "train_tokens": 5, "epochs": 1, "val_bits_per_step": 4.2,
            "unigram_val_bits_per_step": 3.9}
    assert worse_than_unigram(card) and not worse_than_unigram(card | {"val_bits_per_step": 3})
    assert "**Warning**: the melody model is no better than the unigram" in model_card_markdown(
        {"melody": card})


class _Evil:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):  # unpickling would create the marker file
        return (Path.touch, (self.marker,))


def _bad_checkpoints(path, tmp_path):
    good = path.read_bytes()
    yield good[: len(good) // 2]  # truncated
    torch.save({"model": _Evil(tmp_path / "pwned")}, path)  # pickle-bearing
    yield path.read_bytes()
    yield b"not a checkpoint at all"


def test_resume_refuses_truncated_or_pickle_checkpoints_in_one_line(tmp_path):
    split = prepare_layer(corpus(), "melody", CFG)
    one = TrainConfig(**{**CFG.__dict__, "epochs": 1})
    train_layer(split, one, tmp_path, torch.device("cpu"))
    ckpt = tmp_path / "melody.ckpt.pt"
    for data in list(_bad_checkpoints(ckpt, tmp_path)):
        ckpt.write_bytes(data)
        with pytest.raises(ValueError, match="cannot be read") as e:
            train_layer(split, CFG, tmp_path, torch.device("cpu"), resume=True)
        assert "\n" not in str(e.value) and ckpt.read_bytes() == data  # left as it was
    assert not (tmp_path / "pwned").exists()  # nothing was unpickled


def test_disk_full_during_training_is_one_line_and_keeps_the_old_files(tmp_path, monkeypatch):
    import errno

    from arranger.training import train
    from arranger.training.run import run_training

    _fake_corpus(monkeypatch, _no_drums())
    out = tmp_path / "w"
    run_training([tmp_path], out, layers="melody", device="cpu", overrides=TINY)
    before = (out / "melody.safetensors").read_bytes()

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(train, "save_weights", full)
    monkeypatch.setattr(train.torch, "save", full)
    with pytest.raises(ValueError, match="No space left on device") as e:
        run_training([tmp_path], out, layers="melody", device="cpu",
                     overrides=TINY | {"seed": 1, "epochs": 2})
    assert str(e.value).startswith(f"--out {out}: writing failed")
    assert (out / "melody.safetensors").read_bytes() == before
    assert not [p for p in out.iterdir() if p.name.startswith(".")]  # no partial temporaries


def test_an_unwritable_out_is_refused_before_reading_the_corpus(tmp_path, monkeypatch):
    from arranger.training.run import run_training

    monkeypatch.setattr("arranger.corpus.load.load_corpus", lambda *a, **k: pytest.fail("read"))
    (tmp_path / "file").write_text("x")
    with pytest.raises(ValueError, match="a folder that can be written to"):
        run_training([tmp_path], tmp_path / "file" / "w", device="cpu")


# --- training randomness (#16): same seed, same weights ---------------------------------------

def _tensors(path):
    return {k: v.clone() for k, v in load_weights(path, "melody").model.state_dict().items()}


def _same(a, b):
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_training_twice_with_one_seed_gives_identical_weights(tmp_path):
    split = prepare_layer(corpus(), "melody", CFG)
    train_layer(split, CFG, tmp_path / "a", torch.device("cpu"))
    torch.rand(1000)  # whatever ran before must not matter: training seeds itself
    train_layer(split, CFG, tmp_path / "b", torch.device("cpu"))
    a, b = _tensors(tmp_path / "a/melody.safetensors"), _tensors(tmp_path / "b/melody.safetensors")
    assert _same(a, b)
    other = TrainConfig(**{**CFG.__dict__, "seed": 1})
    train_layer(split, other, tmp_path / "c", torch.device("cpu"))
    assert not _same(a, _tensors(tmp_path / "c/melody.safetensors"))


def test_how_often_the_best_model_is_exported_does_not_change_training(tmp_path):
    """Held-out windows that never improve (all padding: 0 bits from epoch 1) export the model
    once, real ones every epoch they improve: the weights trained must not depend on that."""
    from dataclasses import replace

    from arranger.training.layer_data import IGNORE

    split = prepare_layer(corpus(), "melody", CFG)
    blank = replace(split, val=replace(split.val, target=torch.full_like(split.val.target,
                                                                         IGNORE)))
    real = train_layer(split, CFG, tmp_path / "real", torch.device("cpu"))
    train_layer(blank, CFG, tmp_path / "blank", torch.device("cpu"))
    vals = [h["val_bits"] for h in real["history"]]
    assert vals == sorted(vals, reverse=True) and len(set(vals)) == 3  # exported 3 times vs once
    last = [torch.load(tmp_path / d / "melody.ckpt.pt", weights_only=True)["model"]
            for d in ("real", "blank")]
    assert _same(*last)


def test_a_resumed_run_ends_with_the_weights_of_an_uninterrupted_one(tmp_path):
    split = prepare_layer(corpus(), "melody", CFG)
    train_layer(split, CFG, tmp_path / "straight", torch.device("cpu"))
    two = TrainConfig(**{**CFG.__dict__, "epochs": 2})
    train_layer(split, two, tmp_path / "resumed", torch.device("cpu"))
    train_layer(split, CFG, tmp_path / "resumed", torch.device("cpu"), resume=True)
    last = [torch.load(tmp_path / d / "melody.ckpt.pt", weights_only=True)["model"]
            for d in ("straight", "resumed")]
    assert _same(*last)


def test_cosine_schedule_decays_the_learning_rate_to_zero_over_the_epochs():
    from arranger.training.train import lr_at

    cos = TrainConfig(lr=1e-2, epochs=10, lr_schedule="cosine")
    rates = [lr_at(cos, e / 2) for e in range(21)]
    assert rates[0] == 1e-2 and abs(rates[10] - 5e-3) < 1e-12 and rates[-1] == 0.0
    assert all(a > b for a, b in zip(rates, rates[1:], strict=False))
    assert lr_at(TrainConfig(lr=1e-2), 7.5) == 1e-2  # constant by default
    with pytest.raises(ValueError, match="lr_schedule"):
        TrainConfig(lr_schedule="step")


def test_a_weights_folder_is_assembled_from_layers_of_separate_runs(tmp_path):
    """The shipped folder from a chords run and a drums run: files byte for byte, one coherent
    card that lists the conditions each model was built with."""
    import json

    from arranger.training.cards import assemble_weights
    from tracks.layers import layer_spec
    from tracks.model import WeightsError

    one = TrainConfig(**{**CFG.__dict__, "epochs": 1})
    for layer, run in (("chords", "a"), ("melody", "a"), ("drums", "b")):
        cfg = one if layer != "chords" else TrainConfig(**{**one.__dict__, "seq_len": 16})
        train_layer(prepare_layer(corpus(), layer, cfg), cfg, tmp_path / run, torch.device("cpu"))
    out = tmp_path / "shipped"
    assemble_weights(out, {"chords": tmp_path / "a", "melody": tmp_path / "a"})
    cards = assemble_weights(out, {"drums": tmp_path / "b"})  # the chords and melody stay
    assert sorted(cards) == ["chords", "drums", "melody"]
    for layer, run in (("chords", "a"), ("melody", "a"), ("drums", "b")):
        name = f"{layer}.safetensors"
        assert (out / name).read_bytes() == (tmp_path / run / name).read_bytes()
    card = json.loads((out / "model_card.json").read_text())
    sizes = list(layer_spec("drums").cond_sizes)
    assert card["drums"]["conditions"] == sizes and card["drums"]["epochs"] == 1
    md = (out / "MODEL_CARD.md").read_text()
    assert f"- drums: {len(sizes)} ({', '.join(map(str, sizes))})" in md
    before = (out / "drums.safetensors").read_bytes()
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "drums.safetensors").write_bytes((tmp_path / "a/melody.safetensors").read_bytes())
    with pytest.raises(WeightsError, match="holds a 'melody' model"):  # nothing written
        assemble_weights(out, {"chords": tmp_path / "a", "drums": foreign})
    assert (out / "drums.safetensors").read_bytes() == before
