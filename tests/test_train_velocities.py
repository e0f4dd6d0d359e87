"""Drum training measures its own velocity table on the Groove songs it trains on."""

from __future__ import annotations

import numpy as np

from arranger import midi_io
from arranger.training.layer_data import is_validation
from tests.test_groove import performance_score, played_velocities, write_dataset
from tracks.drums import VelocityTable
from tracks.model import load_weights

TINY = {"epochs": 1, "hidden": 16, "batch_size": 8, "seq_len": 32, "threads": 1}
SNARE, HAT = 1, 2


def groove_corpus(root, n=8):
    """``n`` hiphop beats, each snare on 2 and 4 at 118, ghosts at 40, hats 70 on the beat."""
    names = [f"b{i}.mid" for i in range(n)]
    write_dataset(root, [("hiphop", "beat", "4-4", name) for name in names])
    for name in names:
        midi_io.write_midi(root / "drummer1" / "session1" / name,
                           played_velocities(performance_score()))
    return [root / "drummer1" / "session1" / name for name in names]


def test_trained_drum_weights_carry_the_table_of_their_training_songs(tmp_path):
    from arranger.training.run import run_training

    groove_corpus(tmp_path / "groove")
    run_training([tmp_path / "groove"], tmp_path / "w", layers="drums", device="cpu",
                 workers=1, overrides=TINY)
    card = load_weights(tmp_path / "w" / "drums.safetensors", "drums").card
    table = VelocityTable.from_card(card)
    assert table is not None and set(table.styles) == {"", "hiphop"}
    cells = table.styles["hiphop"]
    assert cells[SNARE, 4, 2] == cells[SNARE, 12, 2] == 118 and cells[HAT, 0, 1] == 70
    assert cells[SNARE, 4, 2] - cells[SNARE, 6, 0] > 60  # the backbeat over the ghosts
    assert "per-class velocity table" in (tmp_path / "w" / "MODEL_CARD.md").read_text()


def test_the_table_comes_from_training_songs_only(tmp_path):
    from arranger.corpus.files import read_file
    from arranger.training.velocities import table_card

    songs = [s for f in groove_corpus(tmp_path, n=12) for s in read_file(f)]
    held = [s for s in songs if is_validation(s.source, 0.5)]
    assert 0 < len(held) < len(songs)
    before = table_card(songs, 0.5)
    for s in held:  # validation songs played at full force must not move the table
        loud = played_velocities(performance_score())
        loud.drum_hit_velocity = np.where(loud.drum_hit_velocity > 0, 127, 0)
        midi_io.write_midi(s.source, loud)
    assert table_card(songs, 0.5) == before
    assert table_card(songs, 0.0) != before  # with no validation side, they count


def test_drum_songs_without_groove_metadata_give_no_table(tmp_path):
    from arranger.corpus.files import read_file
    from arranger.training.velocities import table_card

    path = tmp_path / "beat.mid"
    midi_io.write_midi(path, played_velocities(performance_score()))
    assert table_card(read_file(path), 0.1) == {}
