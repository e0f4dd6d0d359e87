"""One-line builders for tests: scores, MIDI files and tiny untrained models."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from arranger.compose.coordinator import Models
from arranger.score import HOLD, REST, Chord, Key, Score
from tracks import drums as drum_track
from tracks.bass import bass_line
from tracks.drums import drum_mask
from tracks.layers import LAYER_SPECS, MODEL_LAYERS
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


DRUM_VOCAB = drum_track.DrumVocab([
    (drum_mask("kick", "closed_hat"), 1), (drum_mask("snare", "closed_hat"), 1),
    (drum_mask("closed_hat"), 1), (drum_mask("kick"), 1), (drum_mask("snare"), 1),
    (drum_mask("kick", "crash"), 2), (drum_mask("ride"), 1), (drum_mask("open_hat"), 1)])


def tiny_models(hidden: int = 16, seed: int = 0) -> Models:
    import torch

    torch.manual_seed(seed)

    def weights(spec):
        vocab = spec.vocab_of(DRUM_VOCAB)  # the drums' learnt vocabulary: DRUM_VOCAB
        cfg = ModelConfig(spec.name, len(vocab), spec.cond_sizes, spec.multi_hot, embed_dim=8,
                          cond_dim=4, hidden=hidden, num_layers=1, dropout=0.0)
        return LayerWeights(ConditionedLSTM(cfg).eval(), vocab, {})

    return Models(**{layer: weights(LAYER_SPECS[layer]) for layer in MODEL_LAYERS})


def save_models(models: Models, folder: Path) -> Path:
    for layer in MODEL_LAYERS:
        save_weights(folder / f"{layer}.safetensors", getattr(models, layer))
    return folder


# Python source that evaluates to this process's peak resident memory in kB. Not ru_maxrss:
# Linux carries that across fork + exec, so a child of a big pytest process inherits its peak.
PEAK_RSS_KB = ("int(next(line.split()[1] for line in open('/proc/self/status') "
               "if line.startswith('VmHWM')))")
