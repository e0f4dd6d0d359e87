"""Encode/decode round trips and conditioning consistency of the layer modules."""

import numpy as np
import pytest

from arranger.score import HOLD, REST, Chord, Key
from tests.helpers import DRUM_VOCAB, make_score
from tracks import chords as chord_track
from tracks import drums as drum_track
from tracks import melody as melody_track
from tracks.bass import bass_line
from tracks.common import UNKNOWN, Context


def test_chord_tokens_round_trip():
    score = make_score(bars=4)
    assert chord_track.decode(chord_track.encode(score)) == score.chords
    assert len(chord_track.VOCAB) == chord_track.VOCAB_SIZE
    for tok in range(2, chord_track.VOCAB_SIZE):
        assert chord_track.token_of(chord_track.chord_of(tok)) == tok


def test_melody_tokens_round_trip():
    score = make_score(bars=4)
    assert np.array_equal(melody_track.decode(melody_track.encode(score)), score.melody)


def test_melody_range_is_folded_by_octaves():
    line = np.array([30, HOLD, REST, 110], np.int16)
    fitted = melody_track.fit_range(line)
    assert all(melody_track.LOW <= p < melody_track.HIGH for p in fitted[[0, 3]])
    assert fitted[0] % 12 == 30 % 12 and fitted[3] % 12 == 110 % 12


def test_melody_mask_forbids_hold_after_rest_and_out_of_range():
    prev = np.array([melody_track.REST_TOKEN, melody_track.FIRST_PITCH_TOKEN + 5, 0])
    mask = melody_track.token_mask(prev, 60, 72)
    assert not mask[0, melody_track.HOLD_TOKEN] and mask[1, melody_track.HOLD_TOKEN]
    assert not mask[2, melody_track.HOLD_TOKEN]  # nothing sounds before the first step
    allowed = np.flatnonzero(mask[0, melody_track.FIRST_PITCH_TOKEN:]) + melody_track.LOW
    assert allowed.min() == 60 and allowed.max() == 71


def test_drum_tokens_round_trip_and_rare_reduction():
    score = make_score(bars=2)
    masks, levels = drum_track.decode(drum_track.encode(score, DRUM_VOCAB), DRUM_VOCAB)
    assert np.array_equal(masks, score.drums)
    rare = 1 | 4 | 1 << 6  # kick + hat + high tom: not in the vocabulary
    tok = DRUM_VOCAB.token(rare, 1)
    assert DRUM_VOCAB.mask_of(np.array([tok]))[0] == 1 | 4  # the tom is dropped first


def test_drum_vocab_round_trips_through_list():
    assert drum_track.DrumVocab.from_list(DRUM_VOCAB.to_list()).pairs == DRUM_VOCAB.pairs


@pytest.mark.parametrize("module", [chord_track, melody_track, drum_track])
def test_sliced_conditions_equal_whole_song_conditions(module):
    """The coordinator computes conditions one step at a time; training all at once."""
    score = make_score(bars=3)
    ctx = Context.from_score(score)
    n = len(score.chords) if module is chord_track else score.steps
    cond, multi = module.conditions(ctx, 0, n)
    for t in range(n):
        c, m = module.conditions(ctx, t, t + 1)
        assert np.array_equal(c[:, 0], cond[:, t])
        if multi is not None:
            assert np.array_equal(m[:, 0], multi[:, t])


def test_melody_hears_the_chord_it_sits_on():
    score = make_score(bars=1)
    cond, multi = melody_track.conditions(Context.from_score(score), 0, 16)
    assert cond[0, 0, 0] == 2 + 2  # Dm7 root (2 above C), offset past unknown and N
    assert set(np.flatnonzero(multi[0, 0])) == {0, 2, 5, 9}
    unknown = Context.from_score(score, has={"melody"})
    cond_u, multi_u = melody_track.conditions(unknown, 0, 16)
    assert (cond_u[..., 0] == 0).all() and not multi_u.any()


def test_drums_hear_chord_changes_and_melody_onsets():
    score = make_score(bars=2)
    cond, _ = drum_track.conditions(Context.from_score(score), 0, score.steps)
    change = cond[0, :, 2]
    assert change[0] == 2 and change[16] == 2  # a new chord on each bar line
    assert change[4] == 1 and change[1] == 1
    onset = cond[0, :, 3]
    assert onset[0] == 2 and onset[1] == 1
    ctx = Context.from_score(score, has=set())
    assert (drum_track.conditions(ctx, 0, 16)[0][0, :, 2:4] == 0).all()


def test_chords_hear_previous_beat_of_melody():
    score = make_score(bars=1)
    ctx = Context.from_score(score)
    cond, multi = chord_track.conditions(ctx, 0, 4)
    assert not multi[0, 0].any()  # nothing before the first beat
    heard = int(score.melody[0]) % 12
    assert multi[0, 1, heard] == 1.0 and cond[0, 1, 2] == 1
    ctx.melody[:] = UNKNOWN
    assert chord_track.conditions(ctx, 0, 4)[0][0, 1, 2] == 0


@pytest.mark.parametrize("pcs,bass,expected", [
    ([0, 4, 7], 0, (0, "maj")), ([2, 5, 9, 0], 2, (2, "m7")), ([7, 11, 2, 5], 7, (7, "7")),
    ([9, 0, 4], 9, (9, "min")), ([11, 2, 5, 9], 11, (11, "m7b5")), ([0, 4, 7, 11], 0, (0, "maj7")),
])
def test_chord_recognition(pcs, bass, expected):
    w = np.zeros(12)
    w[pcs] = 1.0
    assert chord_track.chord_from_pitch_classes(w, bass) == expected


def test_voicings_lead_smoothly_and_stay_in_range():
    chords = [Chord(2, "m7")] * 4 + [Chord(7, "7")] * 4 + [Chord(0, "maj7")] * 8
    spans = chord_track.voice(chords, Key(0))
    assert [s[:2] for s in spans] == [(0, 4), (4, 8), (8, 16)]
    for (_, _, a), (_, _, b) in zip(spans, spans[1:], strict=False):
        assert sum(abs(x - y) for x, y in zip(a, b, strict=True)) <= 8  # voice leading
    assert all(52 <= p <= 76 for _, _, v in spans for p in v)


def test_recolor_to_ninths_and_triads():
    chords = (Chord(2, "m7"), Chord(7, "7"), Chord(0, "maj"))
    assert [c.quality for c in chord_track.recolor(chords, "ninths")] == ["m9", "9", "maj9"]
    assert [c.quality for c in chord_track.recolor(chords, "triads")] == ["min", "maj", "maj"]


def test_bass_follows_the_chords():
    score = make_score(bars=8)
    line = bass_line(score, seed=3)
    onsets = np.flatnonzero(line >= 0)
    for beat, chord in enumerate(score.chords):  # a note starts on every chord change
        if beat == 0 or chord != score.chords[beat - 1]:
            assert beat * 4 in onsets
    on_root = [line[s] % 12 == score.chords[s // 4].root for s in onsets if s % 16 == 0]
    assert all(on_root)  # downbeats play the root
    absolute = line[onsets] + score.key.tonic
    assert absolute.min() >= 28 and absolute.max() <= 62


def test_drum_masks_are_built_by_class_name():
    from arranger.score import DRUM_CLASSES
    from tracks.drums import ALL_DRUMS, KITS, drum_mask

    assert drum_mask("kick") == 1 << DRUM_CLASSES.index("kick")
    assert drum_mask("kick", "crash") == (1 << DRUM_CLASSES.index("kick")
                                          | 1 << DRUM_CLASSES.index("crash"))
    assert drum_mask(*DRUM_CLASSES) == ALL_DRUMS == 511 and drum_mask() == 0
    assert all(drum_mask(*KITS[k]) & ~ALL_DRUMS == 0 for k in KITS)
    with pytest.raises(ValueError, match="unknown drum class 'cowbell'"):
        drum_mask("cowbell")


def test_one_registry_declares_every_model_layer():
    from arranger.score import LAYERS
    from tracks.layers import LAYER_SPECS, MODEL_LAYERS, layer_spec

    assert MODEL_LAYERS == ("chords", "melody", "drums")
    assert [layer for layer in LAYERS if layer in LAYER_SPECS] == list(MODEL_LAYERS)
    score = make_score(bars=4)
    everything = frozenset(LAYERS)
    for spec in LAYER_SPECS.values():
        codec = spec.codec(DRUM_VOCAB.to_list())
        tokens, cond, multi = spec.sequence(score, everything, codec)
        assert len(tokens) == 4 * spec.tokens_per_bar and cond.shape == (len(tokens),
                                                                         len(spec.cond_sizes))
        assert (cond < np.array(spec.cond_sizes)).all()
        assert (multi is None) == (spec.multi_hot == 0)
        assert len(spec.vocab_of(codec)) > tokens.max()
        blind = spec.sequence(score, frozenset(), codec)[1]
        # Lacking the other layers changes only the conditions declared unknowable.
        kept = [i for i in range(len(spec.cond_sizes)) if i not in spec.unknowable]
        assert np.array_equal(blind[:, kept], cond[:, kept])
        assert not np.array_equal(blind, cond)
    with pytest.raises(ValueError, match="layer 'bass': no model"):
        layer_spec("bass")


def test_drums_hear_the_songs_style_and_tempo_bucket():
    score = make_score(bars=1, tempo_bpm=90.0)
    score.style = "hiphop"
    cond, _ = drum_track.conditions(Context.from_score(score), 0, score.steps)
    style, tempo = cond[0, :, drum_track.STYLE_COND], cond[0, :, drum_track.TEMPO_COND]
    assert (style == 1 + drum_track.GROOVE_STYLES.index("hiphop")).all()
    assert (tempo == 1 + sum(e <= 90.0 for e in drum_track.TEMPO_EDGES)).all()  # 90-100 bpm
    assert cond.max(axis=(0, 1)).tolist() < list(drum_track.COND_SIZES)
    unknown, _ = drum_track.conditions(Context.empty(1, 1), 0, 16)
    assert (unknown[..., drum_track.STYLE_COND:] == 0).all()  # no style, no tempo: unknown
    buckets = drum_track.tempo_value(np.array([60.0, 69.9, 70.0, 135.0, 200.0]))
    assert buckets.tolist() == [1, 1, 2, 8, 8]


def test_a_four_condition_drum_model_reads_only_its_own_columns():
    """Weights from before style and tempo (4 conditions) step the same whatever the style."""
    import torch

    from tracks.inference import NumpyStep
    from tracks.model import ConditionedLSTM, ModelConfig

    torch.manual_seed(0)
    cfg = ModelConfig("drums", 9, drum_track.COND_SIZES[:4], 0, 8, 4, 16, 1, 0.0)
    model = ConditionedLSTM(cfg).eval()
    step = NumpyStep.of(model)
    prev = np.array([0, 3])
    outs = []
    for style in ("", "jazz"):
        cond, _ = drum_track.conditions(Context.empty(2, 1, None, style, 72.0), 0, 1)
        logits, _ = step.step(prev, cond[:, 0])
        with torch.no_grad():
            torch_logits, _ = model(torch.from_numpy(prev[:, None]), torch.from_numpy(cond))
        np.testing.assert_allclose(torch_logits[:, 0].numpy(), logits, atol=1e-5)
        outs.append(logits)
    np.testing.assert_array_equal(outs[0], outs[1])


def test_velocity_table_keeps_each_steps_level_and_falls_back_to_pooled():
    from arranger.score import DRUM_CLASSES, velocity_level

    shape = (len(DRUM_CLASSES), 16, drum_track.LEVELS)
    pooled = np.full(shape, 80)
    hiphop = np.full(shape, 70)
    hiphop[drum_track.DRUM_CLASSES.index("snare"), 4] = (30, 90, 120)
    table = drum_track.VelocityTable({"": pooled, "hiphop": hiphop})
    again = drum_track.VelocityTable.from_card(table.to_card())
    assert drum_track.VelocityTable.from_card({}) is None
    masks = np.zeros(16, np.int64)
    masks[4] = drum_track.drum_mask("snare", "closed_hat")
    masks[8] = drum_track.drum_mask("kick")
    levels = np.ones(16, np.int64)
    levels[4], levels[8] = drum_track.ACCENT, drum_track.GHOST
    vel = again.hit_velocities(masks, levels, "hiphop")
    snare, hat, kick = (DRUM_CLASSES.index(c) for c in ("snare", "closed_hat", "kick"))
    assert vel[4, snare] == 120 and vel[4, hat] == 70  # each class its own velocity
    assert velocity_level(vel[8, kick]) == drum_track.GHOST  # 70 pulled into the ghost range
    assert (vel[masks == 0] == 0).all()
    unknown = again.hit_velocities(masks, levels, "polka")  # a style it lacks: the pooled one
    np.testing.assert_array_equal(unknown, again.hit_velocities(masks, levels, ""))
    assert unknown[4, hat] == unknown[4, snare] == 100  # 80 raised into the accent range
