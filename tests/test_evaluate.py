"""`lofi eval`: split, generation, conditioning check and the printed table, end to end."""

import json

import pytest

from arranger.corpus.piece import Song
from arranger.evaluation.evaluate import crop, evaluate, evaluate_songs
from arranger.evaluation.metrics import METRICS
from arranger.evaluation.report import format_table
from arranger.evaluation.sets import conditioning_check, derangement, with_chords
from arranger.midi_io import write_midi
from arranger.score import Chord
from tests.helpers import make_score, save_models, tiny_models

LAYERS = frozenset({"chords", "melody", "bass", "drums"})
PROGRESSIONS = (
    (Chord(2, "m7"), Chord(7, "7"), Chord(0, "maj7"), Chord(0, "maj7")),
    (Chord(9, "min"), Chord(5, "maj"), Chord(4, "min"), Chord(10, "maj")),
    (Chord(1, "dim"), Chord(6, "maj"), Chord(11, "min"), Chord(3, "aug")),
)


def song_score(i: int, bars: int = 8):
    return make_score(bars=bars, seed=i, progression=PROGRESSIONS[i % 3],
                      key=("C major", "A minor", "Eb major")[i % 3])


def check_table(text: str) -> None:
    for name in METRICS:
        assert name in text
    for part in ("Held-out bits/step", "chords", "melody", "drums", "Conditioning check",
                 "chord_tone_ratio true", "tonal_distance true", "real", "LSTM", "Markov"):
        assert part in text


@pytest.mark.parametrize("n", [2, 5, 9])
def test_derangement_moves_everything_and_is_seeded(n):
    order = derangement(n, seed=3)
    assert sorted(order) == list(range(n)) and all(order[i] != i for i in range(n))
    assert order == derangement(n, seed=3)


def test_with_chords_repeats_or_cuts_and_crop():
    score = make_score(bars=4)
    two = (Chord(0, "maj"),) * 4 + (Chord(5, "maj"),) * 4
    assert with_chords(score, two).chords == two * 2
    assert with_chords(score, two * 3).chords == two * 2
    cut = crop(make_score(bars=8), 3)
    assert cut.bars == 3 and len(cut.melody) == 48 and len(cut.chords) == 12
    assert crop(score, 8) is score


def test_shuffled_chords_break_a_melody_that_follows_its_chords():
    scores = [song_score(i) for i in range(6)]
    check = conditioning_check(scores, seed=0)
    assert check["chord_tone_ratio"]["true"] == 1.0
    assert check["chord_tone_ratio"]["shuffled"] < 0.8
    assert check["tonal_distance"]["shuffled"] > check["tonal_distance"]["true"]


@pytest.mark.parametrize("chordless", [False, True])
def test_evaluate_songs_reports_every_metric_as_json(chordless):
    def layers(i):  # with chordless, every fourth song is a melody without chords
        return LAYERS - {"chords"} if chordless and i % 4 == 0 else LAYERS

    songs = [Song(f"song{i}.mid", song_score(i), layers(i)) for i in range(12)]
    result = evaluate_songs(songs, songs, tiny_models(), n=3, bars=8, val_fraction=0.4)
    json.dumps(result, allow_nan=False)
    assert set(result["metrics"]) == set(METRICS)
    assert result["metrics"]["chord_tone_ratio"]["real"]["mean"] == 1.0
    assert result["metrics"]["tonal_distance"]["lstm"]["n"] == 3
    for layer, bits in result["bits_per_step"].items():
        assert bits["tokens"] > 0 and bits["markov"] < bits["unigram"], layer
    real = result["conditioning"]["real"]
    assert real["chord_tone_ratio"]["true"] > real["chord_tone_ratio"]["shuffled"]
    markov = result["conditioning"]["melody_bits"]["markov"]
    assert markov["true"] < markov["shuffled"]  # the Markov melody reads its chords
    check_table(format_table(result))


def test_split_needs_held_out_songs():
    songs = [Song("only.mid", song_score(0), LAYERS)]
    with pytest.raises(ValueError, match="no held-out song"):
        evaluate_songs(songs, songs, tiny_models(), n=2, val_fraction=0.0)


def test_eval_end_to_end_on_midi_files(tmp_path):
    for i in range(12):
        write_midi(tmp_path / "corpus" / f"song{i:02d}.mid", song_score(i))
    weights = save_models(tiny_models(), tmp_path / "weights")
    result = evaluate([tmp_path / "corpus"], weights, n=4, seed=1, progress=False, bars=8,
                      val_fraction=0.4, cache_dir=tmp_path / "cache", workers=1)
    assert result["data"]["held_out_songs"] > 0 and result["seconds"] >= 0
    assert result["config"]["corpus"] == [str(tmp_path / "corpus")]
    text = format_table(result)
    check_table(text)
    assert f"{result['data']['held_out_songs']} held-out real songs" in text


def test_conditioning_gap_and_two_results_side_by_side(tmp_path, capsys):
    from arranger.evaluation.report import format_comparison, main

    songs = [Song(f"song{i}.mid", song_score(i), LAYERS) for i in range(12)]
    old = evaluate_songs(songs, songs, tiny_models(), n=2, bars=4, val_fraction=0.4)
    new = evaluate_songs(songs, songs, tiny_models(seed=1), n=2, bars=4, val_fraction=0.4)
    bits = new["conditioning"]["melody_bits"]["markov"]
    assert bits["gap"] == pytest.approx(bits["shuffled"] - bits["true"]) and bits["gap"] > 0
    text = format_comparison({"old": old, "new": new})
    lstm = new["bits_per_step"]["chords"]
    assert f"{lstm['lstm']:.3f} / {lstm['markov']:.3f} ({lstm['gain_percent']:+.1f}%)" in text
    assert f"{bits['gap']:.3f}" in text.split("conditioning gap")[1]
    for metric in METRICS:
        assert metric in text.split("MGEval")[1]
    for name, result in (("old", old), ("new", new)):
        (tmp_path / f"{name}.json").write_text(json.dumps(result))
    main([str(tmp_path / "old.json"), str(tmp_path / "new.json")])
    assert capsys.readouterr().out.strip() == text  # columns named by the files
