"""The MP3 encoded in parts side by side is the one encoder's stream, byte for byte."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile

from arranger.audio import mp3_parts
from arranger.audio.files import read_audio, read_mp3, write_mp3

RATE = 44100


def music_like(seconds: float, seed: int = 0) -> np.ndarray:
    """Stereo chords, noise bursts and hard hits (LAME switches to short blocks on them),
    with a silent stretch: what frames depend on, in a few seconds."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * RATE)) / RATE
    tone = sum(np.sin(2 * np.pi * f * t) for f in (220.0, 277.2, 329.6)) / 6
    hits = np.zeros_like(t)
    hits[rng.integers(0, len(t), 40)] = 0.9
    hits = np.convolve(hits, np.exp(-np.arange(2000) / 200.0))[: len(t)]
    noise = 0.1 * rng.standard_normal(len(t)) * (np.sin(2 * np.pi * 0.3 * t) > 0.5)
    left, right = tone + hits + noise, tone * 0.8 - hits + noise
    audio = np.stack([left, right]).astype(np.float32)
    audio[:, int(0.4 * len(t)) : int(0.45 * len(t))] = 0.0
    return audio


@pytest.fixture(scope="module")
def song() -> tuple[np.ndarray, bytes]:
    audio = music_like(24.0)
    return audio, mp3_parts.encode_one(audio, RATE, "V2")


@pytest.mark.parametrize("parts", [2, 3])
def test_parts_write_the_one_encoders_bytes(song, parts):
    audio, one = song
    assert mp3_parts.encode(audio, RATE, "V2", parts) == one


def test_the_stream_has_no_bit_reservoir_and_decodes_to_its_length(song, tmp_path):
    """Every frame's main data starts in the frame itself, and the rewritten info frame
    (delay, padding) gives a decoder the exact length back."""
    audio, one = song
    frames = mp3_parts.frames_of(one, RATE)
    assert frames is not None and len(frames) > 2 * mp3_parts.MIN_PART_FRAMES
    main_data_begin = [(one[at + 4] << 1) | (one[at + 5] >> 7) for at, _ in frames[1:]]
    assert max(main_data_begin) == 0
    decoded, rate = read_audio(write_mp3(tmp_path / "a.mp3", audio, RATE))
    assert rate == RATE and decoded.shape == audio.shape
    assert (tmp_path / "a.mp3").read_bytes() == one


def test_a_decode_in_stretches_is_the_whole_files(song, tmp_path):
    audio, one = song
    (tmp_path / "a.mp3").write_bytes(one)
    whole, _ = soundfile.read(tmp_path / "a.mp3", dtype="float32", always_2d=True)
    for parts in (1, 2, 3):
        assert np.array_equal(read_mp3(tmp_path / "a.mp3", parts)[0], whole.T)


def test_streams_that_never_agree_are_not_spliced(song):
    """Parts of other audio (half as loud) write no identical frames: no join, so ``encode``
    would encode the audio in one piece."""
    audio, one = song
    other = mp3_parts.encode_one(audio[:, 100 * 1152 :] / 2, RATE, "V2")
    assert mp3_parts.spliced([one, other], [0, 100], [124], RATE) is None


def test_a_stream_without_lames_tag_is_not_spliced(song):
    audio, one = song
    frames = mp3_parts.frames_of(one, RATE)
    plain = one[frames[0][1] :]  # the audio frames without the info frame ahead of them
    assert mp3_parts.spliced([plain, plain], [0, 0], [100], RATE) is None


def test_short_audio_and_other_rates_are_encoded_whole():
    short = music_like(2.0)
    assert mp3_parts.encode(short, RATE, "V2", 4) == mp3_parts.encode_one(short, RATE, "V2")
    assert mp3_parts.frames_of(b"\x00" * 1000, RATE) is None
    audio = music_like(12.0)
    at_48k = mp3_parts.encode_one(audio, 48000, "V2")
    assert mp3_parts.frames_of(at_48k, RATE) is None  # frames at 48 kHz are not 44.1 kHz's
    assert mp3_parts.encode(audio, 48000, "V2", 2) == at_48k


@pytest.mark.parametrize("length", [0, 1, 63, 64, 1000, 100_003])
def test_crc16_is_lames_byte_at_a_time_crc(length):
    data = np.random.default_rng(length).integers(0, 256, length, dtype=np.uint8).tobytes()
    crc = 0
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0xA001 if crc & 1 else crc >> 1
    assert mp3_parts.crc16(data) == crc
