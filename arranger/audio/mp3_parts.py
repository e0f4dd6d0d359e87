"""MP3 encoded in parts on both cores and spliced into the one stream a single encoder writes.

LAME's bit reservoir lets a frame's data begin inside earlier frames, so streams encoded apart
cannot be joined. With it off (pedalboard's ``Mp3EnableBitReservoir``) every frame decodes
alone, and LAME's frames depend only on the last few frames of input: two encoders fed the same
samples on the same 1,152-sample grid write byte-identical frames from their third frame on
(measured on whole songs). So each part is encoded with some overlap, and the stream is
spliced in the middle of a run of frames both parts wrote alike: the frames are the single
encoder's, and a decoder meets the same bytes on either side of the join. The LAME info frame
at the head is rewritten for the whole stream (frame and byte counts, seek table, padding,
music length, CRCs), as LAME writes it. Where no such run turns up (never seen), or the
audio is short, or its rate is not MPEG-1's, the audio is encoded in one piece.
"""

from __future__ import annotations

import io
import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from pedalboard.io import AudioFile, WriteableAudioFileFlag

FRAME = 1152  # samples per MPEG-1 Layer III frame
MPEG1_RATES = (44100, 48000, 32000)  # in the header's sample-rate index order
BITRATES_KBPS = (0, 32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320)
OVERLAP_FRAMES = 24  # each side of a split: ~0.6 s of the song encoded twice
SAME_RUN = 4  # identical frames in a row that make a join (a decoder remembers < 1 frame)
MIN_PART_FRAMES = 8 * OVERLAP_FRAMES  # shorter parts are not worth a thread
MAX_PARTS = 4
TOC_BAG = 400  # LAME's seek-table bag (VbrTag.c)
WRITE_BLOCK = 1 << 16  # samples handed to the encoder at once


def encode_one(audio: np.ndarray, sample_rate: int, quality: str) -> bytes:
    """LAME via pedalboard, bit reservoir off: every frame decodable on its own.

    Fed a block at a time (the same bytes as all at once): a part is a strided slice of the
    song, which pedalboard would otherwise copy whole into a contiguous buffer first.
    """
    out = io.BytesIO()
    with AudioFile(out, "w", samplerate=sample_rate, num_channels=audio.shape[0],
                   format="mp3", quality=quality,
                   codec_options={WriteableAudioFileFlag.Mp3EnableBitReservoir: False}) as f:
        for start in range(0, audio.shape[-1], WRITE_BLOCK):
            f.write(audio[:, start : start + WRITE_BLOCK])
    return out.getvalue()


def default_parts() -> int:
    """One part per core this process may run on (its affinity), at most ``MAX_PARTS``."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return max(1, min(cores or 1, MAX_PARTS))


def encode(audio: np.ndarray, sample_rate: float, quality: str, parts: int | None = None
           ) -> bytes:
    """The MP3 of (channels, samples) float32 ``audio``: ``encode_one``'s bytes, written by
    ``parts`` encoders (default: :func:`default_parts`) side by side
    where the audio allows (see the module docstring)."""
    sample_rate = int(sample_rate) if float(sample_rate).is_integer() else sample_rate
    parts = default_parts() if parts is None else parts
    n_frames = audio.shape[-1] // FRAME
    parts = min(parts, n_frames // MIN_PART_FRAMES)
    if parts < 2 or sample_rate not in MPEG1_RATES:
        return encode_one(audio, sample_rate, quality)
    splits = [round(i * n_frames / parts) for i in range(1, parts)]  # in frames
    firsts = [0] + [s - OVERLAP_FRAMES for s in splits]  # each part's first frame
    stops = [(s + OVERLAP_FRAMES) * FRAME for s in splits] + [audio.shape[-1]]
    with ThreadPoolExecutor(parts - 1) as pool:  # pedalboard encodes without the GIL
        rest = [pool.submit(encode_one, audio[:, first * FRAME : stop], sample_rate, quality)
                for first, stop in zip(firsts[1:], stops[1:], strict=True)]
        streams = [encode_one(audio[:, : stops[0]], sample_rate, quality)]
        streams += [job.result() for job in rest]
    joined = spliced(streams, firsts, splits, sample_rate)
    return joined if joined is not None else encode_one(audio, sample_rate, quality)


def frames_of(stream: bytes, sample_rate: int) -> list[tuple[int, int]] | None:
    """(offset, size) of every frame, the info frame first; None unless every frame is an
    MPEG-1 Layer III frame at ``sample_rate`` end to end."""
    rate_index, found, at = MPEG1_RATES.index(sample_rate), [], 0
    while at + 4 <= len(stream):
        header = int.from_bytes(stream[at : at + 4], "big")
        bitrate = (header >> 12) & 15
        if (header >> 17) != 0x7FFD or (header >> 10) & 3 != rate_index or not 0 < bitrate < 15:
            return None  # not sync + MPEG-1 + Layer III at this rate
        size = 144 * 1000 * BITRATES_KBPS[bitrate] // sample_rate + ((header >> 9) & 1)
        found.append((at, size))
        at += size
    return found if at == len(stream) and len(found) > 1 else None


def spliced(streams: Sequence[bytes], first_frames: Sequence[int], splits: Sequence[int],
            sample_rate: int) -> bytes | None:
    """The streams joined into one: stream ``i`` begins at song frame ``first_frames[i]``, and
    hands over to the next near song frame ``splits[i]``. None if a join is not found, or
    the streams are not LAME's as this module knows them."""
    framed = [frames_of(s, sample_rate) for s in streams]
    if any(f is None for f in framed):
        return None
    pieces, start = [], 0  # song frames [start, join) of the stream before
    for i, split in enumerate(splits):
        join = _join(streams[i], framed[i], first_frames[i], streams[i + 1], framed[i + 1],
                     first_frames[i + 1], split)
        if join is None:
            return None
        pieces.append(_audio_frames(streams[i], framed[i], first_frames[i], start, join))
        start = join
    last = len(streams) - 1
    pieces.append(_audio_frames(streams[last], framed[last], first_frames[last], start, None))
    frames = [frame for piece in pieces for frame in piece]
    return info_frame(streams[0][: framed[0][0][1]], streams[last][: framed[last][0][1]],
                      frames)


def _frame(stream: bytes, framed: list[tuple[int, int]], first: int, song_frame: int) -> bytes:
    offset, size = framed[1 + song_frame - first]  # framed[0] is the info frame
    return stream[offset : offset + size]


def _audio_frames(stream: bytes, framed: list[tuple[int, int]], first: int, start: int,
                  stop: int | None) -> list[bytes]:
    stop = first + len(framed) - 1 if stop is None else stop
    return [_frame(stream, framed, first, k) for k in range(start, stop)]


def _join(before: bytes, framed_before: list[tuple[int, int]], first_before: int,
          after: bytes, framed_after: list[tuple[int, int]], first_after: int,
          split: int) -> int | None:
    """The song frame to hand over at: the middle of the first run of ``SAME_RUN`` frames
    both streams wrote alike, clear of the later one's first frames and the earlier one's
    last (each encoder's warm-up and flush differ)."""
    low = first_after + 3
    high = first_before + len(framed_before) - 1 - 3  # the earlier stream's last frames: flush
    run = 0
    for k in range(max(low, split - OVERLAP_FRAMES), min(high, split + OVERLAP_FRAMES)):
        same = (_frame(before, framed_before, first_before, k)
                == _frame(after, framed_after, first_after, k))
        run = run + 1 if same else 0
        if run == SAME_RUN:
            return k + 1 - SAME_RUN // 2
    return None


def info_frame(head: bytes, tail: bytes, frames: Sequence[bytes]) -> bytes | None:
    """The stream of these audio frames behind LAME's Xing/Info frame: ``head``'s (the first
    part's), with the counts, seek table, CRCs and ``tail``'s (the last part's) end padding;
    None unless both are LAME's tag with all four Xing fields.

    Layout (MPEG-1 stereo/mono side info, then "Xing"/"Info"): flags, frames, bytes, 100-entry
    seek table, quality, then the LAME tag: encoder delay + padding (12 + 12 bits) at 141 past
    the tag's start, music length at 148, music CRC at 152, tag CRC at 154 (CRC-16 of the
    frame's first 190 bytes).
    """
    frame, music = bytearray(head), b"".join(frames)
    tag = _tag_offset(frame)
    if (tag is None or _tag_offset(tail) != tag or frame[tag + 120 : tag + 124] != b"LAME"
            or int.from_bytes(frame[tag + 4 : tag + 8], "big") != 15):
        return None
    total = len(frame) + len(music)
    frame[tag + 8 : tag + 12] = len(frames).to_bytes(4, "big")
    frame[tag + 12 : tag + 16] = total.to_bytes(4, "big")
    frame[tag + 16 : tag + 116] = seek_table([BITRATES_KBPS[f[2] >> 4] for f in frames])
    lame = tag + 120
    delay = int.from_bytes(frame[lame + 21 : lame + 24], "big") >> 12
    padding = int.from_bytes(tail[lame + 21 : lame + 24], "big") & 0xFFF
    frame[lame + 21 : lame + 24] = ((delay << 12) | padding).to_bytes(3, "big")
    frame[lame + 28 : lame + 32] = total.to_bytes(4, "big")
    frame[lame + 32 : lame + 34] = crc16(music).to_bytes(2, "big")
    frame[lame + 34 : lame + 36] = crc16(bytes(frame[: lame + 34])).to_bytes(2, "big")
    return bytes(frame) + music


def _tag_offset(frame: bytes) -> int | None:
    """Where "Xing"/"Info" sits: after the header, its CRC if any, and the side info (17 bytes
    mono, 32 not)."""
    at = 4 + 2 * (not frame[1] & 1) + (17 if (frame[3] >> 6) == 3 else 32)
    return at if frame[at : at + 4] in (b"Xing", b"Info") else None


def seek_table(kbps: Sequence[int]) -> bytes:
    """LAME's 100-entry seek table (VbrTag.c ``Xing_seek_table``) of frames of these
    bitrates: entry ``i`` is 256 x the share of the bitrate sum (LAME sums kbps, not bytes)
    reached at ``i`` % of the frames, from a bag of running sums that halves when it fills."""
    bag, want, seen, total = [], 1, 0, 0
    for rate in kbps:
        total += rate
        seen += 1
        if seen < want:
            continue
        bag.append(total)
        seen = 0
        if len(bag) == TOC_BAG:
            bag, want = bag[1::2], want * 2
    table = bytearray(100)
    for i in range(1, 100):  # LAME's float: i / 100 in single precision
        at = int(np.floor(np.float32(i) / np.float32(100) * np.float32(len(bag))))
        table[i] = min(255, int(256.0 * float(np.float32(bag[min(at, len(bag) - 1)]))
                                / float(np.float32(total))))
    return bytes(table)


def crc16(data: bytes, chunks: int = 4096) -> int:
    """LAME's CRC-16 (reflected polynomial 0xA001, start 0) of ``data``.

    A byte at a time in Python would take seconds for a song: the data is cut into
    ``chunks`` rows whose CRCs numpy steps side by side, then folded together (the CRC is
    linear: crc(a + b) = crc(a) carried through len(b) zero bytes, xor crc(b)).
    """
    buf = np.frombuffer(data, np.uint8)
    rows = max(1, min(chunks, len(buf) // 64))
    width = len(buf) // rows
    body = np.ascontiguousarray(buf[: rows * width].reshape(rows, width).T)
    crc = _crc_steps(np.zeros(rows, np.uint32), body)
    starts = np.arange(512, dtype=np.uint32)  # low and high byte states, through width zeros
    carried = _crc_steps(np.r_[starts[:256], starts[:256] << 8], np.zeros((width, 1), np.uint8))
    total = 0
    for value in crc.tolist():
        total = int(carried[total & 0xFF]) ^ int(carried[256 + (total >> 8)]) ^ value
    return int(_crc_steps(np.array([total], np.uint32), buf[rows * width :, None])[0])


def _crc_steps(state: np.ndarray, columns: np.ndarray) -> np.ndarray:
    """CRC states (uint32 [n]) after each takes its column of ``columns`` [steps, n or 1]."""
    for column in columns:
        state = (state >> 8) ^ _CRC_TABLE[(state ^ column) & 0xFF]
    return state


def _crc_table() -> np.ndarray:
    table = []
    for value in range(256):
        for _ in range(8):
            value = (value >> 1) ^ 0xA001 if value & 1 else value >> 1
        table.append(value)
    return np.array(table, np.uint32)


_CRC_TABLE = _crc_table()
