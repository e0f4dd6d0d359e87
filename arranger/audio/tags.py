"""Tempo, key and title where DAWs and players read them: WAV chunks and ID3 tags.

Every WAV the audio stage writes (stems, mix, loop) carries three extra RIFF chunks:

- ``acid``: the ACID loop chunk (read by ACID, Ableton Live, FL Studio, Cubase, Reaper...):
  tempo (float bpm), beats, 4/4 meter and the tonic as root note (MIDI 60..71), flagged as a
  loop for ``loop/`` files and as a one-shot (played as is, not looped) for whole songs; both
  are flagged "stretch", so a DAW may warp them to its own tempo.
- ``LIST``/``INFO``: ``INAM`` title, ``IGNR`` genre, ``ICMT`` "72 bpm, F minor", ``ISFT`` "lofi".
- ``id3 ``: an ID3v2.4 tag in the WAV (mutagen), with ``TIT2`` title, ``TBPM`` and ``TKEY``:
  where DJ software and tag editors look for key and tempo.

``mix.mp3`` gets the same ID3 frames. The layout follows libsndfile's reader of the acid chunk
(``wav_read_acid_chunk``): flags u32, root note u16, two unknowns (u16, f32), beats u32, meter
denominator u16, numerator u16, tempo f32; little-endian, 24 bytes.
"""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pretty_midi

from arranger.atomic import atomic_path
from arranger.audio.files import write_wav

ACID_ONE_SHOT, ACID_ROOT_NOTE, ACID_STRETCH = 0x01, 0x02, 0x04
_ACID = struct.Struct("<IHhfIHHf")
_ACID_UNKNOWN = (-32768, 0.0)  # what ACID itself writes (0x8000, 0.0)
_MIDDLE_C = 60
_PITCH_NAMES = ("C", "Db", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B")
GENRE = "Lo-fi"
SOFTWARE = "lofi"


@dataclass(frozen=True)
class SongTags:
    """What a file says about its music.

    tempo_bpm : quarter notes per minute; beats : length in quarter notes (4/4);
    tonic : pitch class 0..11 (None: no key); minor : the mode; loop : made to repeat.
    """

    title: str
    tempo_bpm: float
    beats: int
    tonic: int | None = None
    minor: bool = False
    loop: bool = False

    @property
    def key_text(self) -> str:
        """ID3 ``TKEY`` form: ``"Fm"``, ``"Eb"``; "" without a key."""
        if self.tonic is None:
            return ""
        return _PITCH_NAMES[self.tonic] + ("m" if self.minor else "")

    @property
    def comment(self) -> str:
        key = f", {_PITCH_NAMES[self.tonic]} {'minor' if self.minor else 'major'}" \
            if self.tonic is not None else ""
        return f"{self.tempo_bpm:g} bpm{key}"


def song_tags(midi: pretty_midi.PrettyMIDI, title: str, *, loop: bool = False,
              beats: int | None = None) -> SongTags:
    """Tags of ``midi``: its first tempo and key signature; ``beats`` defaults to its length."""
    _, tempi = midi.get_tempo_changes()
    tempo = round(float(tempi[0]), 3) if len(tempi) else 120.0
    if beats is None:
        beats = math.ceil(round(midi.get_end_time() * tempo / 60.0, 6))
    keys = midi.key_signature_changes
    tonic = keys[0].key_number % 12 if keys else None
    minor = bool(keys) and keys[0].key_number >= 12
    return SongTags(title, tempo, int(beats), tonic, minor, loop)


def acid_chunk(tags: SongTags) -> bytes:
    """The ``acid`` chunk's 24 bytes of data."""
    flags = ACID_STRETCH | (0 if tags.loop else ACID_ONE_SHOT)
    root = 0
    if tags.tonic is not None:
        flags |= ACID_ROOT_NOTE
        root = _MIDDLE_C + tags.tonic
    return _ACID.pack(flags, root, *_ACID_UNKNOWN, tags.beats, 4, 4, tags.tempo_bpm)


def read_acid(data: bytes) -> dict[str, float | int | bool | None]:
    """The fields of an ``acid`` chunk's data (the inverse of :func:`acid_chunk`)."""
    flags, root, _, _, beats, denominator, numerator, tempo = _ACID.unpack(data[: _ACID.size])
    return {"loop": not flags & ACID_ONE_SHOT, "stretch": bool(flags & ACID_STRETCH),
            "root_note": root if flags & ACID_ROOT_NOTE else None, "beats": beats,
            "meter": (numerator, denominator), "tempo_bpm": tempo}


def info_list(tags: SongTags) -> bytes:
    """A ``LIST`` chunk's data of type ``INFO``: title, genre, comment, software."""
    out = b"INFO"
    for key, text in (("INAM", tags.title), ("IGNR", GENRE), ("ICMT", tags.comment),
                      ("ISFT", SOFTWARE)):
        if text:
            out += _chunk(key.encode(), text.encode("utf-8") + b"\0")
    return out


def _chunk(name: bytes, data: bytes) -> bytes:
    """A RIFF chunk: id, little-endian size, data, a pad byte to an even length."""
    return name + struct.pack("<I", len(data)) + data + b"\0" * (len(data) % 2)


def riff_chunks(path: Path) -> dict[str, bytes]:
    """The top-level chunks of a RIFF/WAVE file, id -> data (the last of a repeated id)."""
    with open(path, "rb") as f:
        head = f.read(12)
        if head[:4] != b"RIFF" or head[8:12] != b"WAVE":
            raise ValueError(f"{path} is not a RIFF/WAVE file")
        chunks = {}
        while len(header := f.read(8)) == 8:
            name, size = header[:4].decode("latin-1"), struct.unpack("<I", header[4:])[0]
            chunks[name] = f.read(size) if name != "data" else b""
            f.seek(size if name == "data" else 0, 1)
            f.seek(size % 2, 1)
    return chunks


def _append_chunks(path: Path, chunks: bytes) -> None:
    """Append whole chunks to a WAV file and grow its RIFF size to match."""
    with open(path, "r+b") as f:
        f.seek(0, 2)
        if f.tell() % 2:
            f.write(b"\0")
        f.write(chunks)
        size = f.tell() - 8
        f.seek(4)
        f.write(struct.pack("<I", size))


def _id3_frames(tags: SongTags) -> list:
    from mutagen.id3 import TBPM, TCON, TIT2, TKEY

    frames = [TIT2(encoding=3, text=tags.title), TBPM(encoding=3, text=f"{tags.tempo_bpm:g}"),
              TCON(encoding=3, text=GENRE)]
    if tags.key_text:
        frames.append(TKEY(encoding=3, text=tags.key_text))
    return frames


def tag_wav(path: Path, tags: SongTags) -> None:
    """Add ``acid``, ``LIST``/``INFO`` and ``id3 `` chunks to the WAV file at ``path``."""
    from mutagen.wave import WAVE

    _append_chunks(Path(path), _chunk(b"acid", acid_chunk(tags)) +
                   _chunk(b"LIST", info_list(tags)))
    wave = WAVE(path)
    wave.add_tags()
    for frame in _id3_frames(tags):
        wave.tags.add(frame)
    wave.save()


def tag_mp3(path: Path, tags: SongTags) -> None:
    """Write an ID3v2.4 tag (title, TBPM, TKEY, genre) into the MP3 at ``path``."""
    from mutagen.id3 import ID3, ID3NoHeaderError

    try:
        id3 = ID3(path)
    except ID3NoHeaderError:
        id3 = ID3()
    for frame in _id3_frames(tags):
        id3.add(frame)
    id3.save(path)


def write_tagged_wav(path: Path, audio: np.ndarray, sample_rate: int, tags: SongTags) -> Path:
    """Write a 24-bit WAV with its tags, atomically: a reader never sees it untagged."""
    path = Path(path)
    with atomic_path(path) as temporary:
        write_wav(temporary, audio, sample_rate)
        tag_wav(temporary, tags)
    return path
