"""One-line builders for tests: scores, MIDI files and tiny untrained models."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from arranger.compose.coordinator import Models
from arranger.score import HOLD, REST, Chord, Key, Score
from tracks import chords as chord_track
from tracks import drums as drum_track
from tracks import melody as melody_track
from tracks.bass import bass_line
from tracks.model import ConditionedLSTM, LayerWeights, ModelConfig, save_weights

II_V_I = (Chord(2, "m7"), Chord(7, "7"), Chord(0, "maj7"), Chord(0, "maj7"))


def make_score(bars: int = 4, key: str = "C major", progression=II_V_I, seed: int = 0,
               tempo_bpm: float = 90.0) -> Score:
    """A song whose melody plays chord tones on every beat and whose drums play a backbeat."""
    rng = np.random.default_rng(seed)
    chords = tuple(progression[(b // 4) % len(progression)] for b in range(bars * 4))
    melody = np.full(bars * 16, REST, np.int16)
    for beat, chord in enumerate(chords):
        tones = sorted(chord.pitch_classes())
        melody[beat * 4] = 60 + tones[int(rng.integers(len(tones)))]
        melody[beat * 4 + 1] = HOLD
    score = Score(bars, tempo_bpm=tempo_bpm, key=Key.parse(key), chords=chords, melody=melody)
    score.drums[::4] |= 1 << 2  # closed hat on beats
    score.drums[0::16] |= 1  # kick on 1
    score.drums[8::16] |= 1  # kick on 3
    score.drums[4::8] |= 1 << 1  # snare on 2 and 4
    score.bass = bass_line(score, seed=seed)
    return score


DRUM_VOCAB = drum_track.DrumVocab([(1 | 4, 1), (2 | 4, 1), (4, 1), (1, 1), (2, 1),
                                   (1 | 1 << 7, 2), (1 << 8, 1), (1 << 3, 1)])


def tiny_models(hidden: int = 16, seed: int = 0) -> Models:
    import torch

    torch.manual_seed(seed)

    def weights(mod, vocab):
        cfg = ModelConfig(mod.LAYER, len(vocab), mod.COND_SIZES, mod.MULTI_HOT, embed_dim=8,
                          cond_dim=4, hidden=hidden, num_layers=1, dropout=0.0)
        return LayerWeights(ConditionedLSTM(cfg).eval(), list(vocab), {})

    return Models(weights(chord_track, chord_track.VOCAB),
                  weights(melody_track, melody_track.VOCAB),
                  weights(drum_track, DRUM_VOCAB.to_list()))


def save_models(models: Models, folder: Path) -> Path:
    for layer in ("chords", "melody", "drums"):
        save_weights(folder / f"{layer}.safetensors", getattr(models, layer))
    return folder
