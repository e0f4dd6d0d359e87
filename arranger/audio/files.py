"""Read and write audio files through pedalboard.io (no ffmpeg), atomically.

Every writer renders to a temporary file in the destination folder and ``os.replace``s it into
place (``arranger.atomic``), so a reader or a crash never sees half a file. pedalboard picks the
format from the file extension, which the temporary name keeps (``.mix.wav.abc123.tmp.wav``).
"""

from __future__ import annotations

import errno
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from pedalboard.io import AudioFile

from arranger.atomic import atomic_path, write_bytes
from arranger.audio import mp3_parts

WAV_BIT_DEPTHS = (16, 24, 32)
_LOW_SPACE_BYTES = 1 << 20  # free space under which a failed write is put down to a full disk
MP3_QUALITIES = ("V0", "V1", "V2", "V3", "V4", "V5", "V6", "V7", "V8", "V9", "320k", "256k",
                 "192k", "160k", "128k")


def _as_channels_first(audio: np.ndarray) -> np.ndarray:
    audio = np.atleast_2d(np.asarray(audio, dtype=np.float32))
    if audio.ndim != 2 or audio.shape[0] > 8:
        raise ValueError(f"audio of shape {audio.shape}: expected (channels, samples)")
    return audio


def _write_atomic(path: str | os.PathLike, audio: np.ndarray, sample_rate: float,
                  **options: object) -> Path:
    """Write ``audio`` (channels, samples) to ``path`` via a same-folder temporary file.

    Raises ``OSError`` (``ENOSPC`` when the disk is full) if the encoder cannot write.
    """
    audio = _as_channels_first(audio)
    with atomic_path(Path(path)) as temporary:
        try:
            with AudioFile(str(temporary), "w", samplerate=sample_rate,
                           num_channels=audio.shape[0], **options) as f:
                f.write(audio)
        except RuntimeError as e:  # pedalboard's word for any failed write
            raise _write_failure(Path(path), e) from None
    return Path(path)


def _write_failure(path: Path, error: RuntimeError) -> OSError:
    """The ``OSError`` behind a failed write of ``path``: pedalboard only says "Unable to
    write". Checked while the partial file still holds its space, so a full disk reads full."""
    try:
        stats = os.statvfs(path.parent)
        full = stats.f_bavail * stats.f_frsize < _LOW_SPACE_BYTES
    except OSError:
        full = False
    if full:
        return OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))
    return OSError(errno.EIO, f"{error}", str(path))


def write_wav(path: str | os.PathLike, audio: np.ndarray, sample_rate: float,
              bit_depth: int = 24) -> Path:
    """Write integer PCM WAV (16/24 bit) or 32-bit float; values beyond +-1 clip."""
    if bit_depth not in WAV_BIT_DEPTHS:
        raise ValueError(f"bit_depth = {bit_depth!r}: expected one of {WAV_BIT_DEPTHS}")
    return _write_atomic(path, audio, sample_rate, bit_depth=bit_depth)


def write_mp3(path: str | os.PathLike, audio: np.ndarray, sample_rate: float,
              quality: str = "V2") -> Path:
    """Write MP3 with LAME: ``quality`` is a VBR level ("V0" best .. "V9") or CBR ("320k").

    Encoded on every core this process may use, with LAME's bit reservoir off
    (:mod:`arranger.audio.mp3_parts`): the bytes one encoder writes, in a fraction of the time.
    """
    if quality not in MP3_QUALITIES:
        raise ValueError(f"quality = {quality!r}: expected one of {', '.join(MP3_QUALITIES)}")
    data = mp3_parts.encode(_as_channels_first(audio), sample_rate, quality)
    write_bytes(Path(path), data)
    return Path(path)


def write_flac(path: str | os.PathLike, audio: np.ndarray, sample_rate: float,
               bit_depth: int = 24) -> Path:
    """Write lossless FLAC (16 or 24 bit)."""
    if bit_depth not in (16, 24):
        raise ValueError(f"bit_depth = {bit_depth!r}: expected 16 or 24")
    return _write_atomic(path, audio, sample_rate, bit_depth=bit_depth)


def read_audio(path: str | os.PathLike) -> tuple[np.ndarray, int]:
    """Read a whole file; returns ((channels, samples) float32, sample rate in Hz).

    MP3s are decoded by libsndfile (soundfile), which drops the encoder's padding: the exact
    length that was written (pedalboard would return ~1,800 samples more). They are decoded in
    stretches side by side (:func:`read_mp3`); the array is then a view of a samples-by-channels
    buffer.
    """
    if Path(path).suffix.lower() == ".mp3":
        return read_mp3(path)
    with AudioFile(str(path)) as f:
        return f.read(f.frames).astype(np.float32, copy=False), int(f.samplerate)


def read_mp3(path: str | os.PathLike, parts: int | None = None) -> tuple[np.ndarray, int]:
    """An MP3 decoded in ``parts`` stretches side by side (default: one per core,
    :func:`arranger.audio.mp3_parts.default_parts`): libsndfile's seeks are sample-exact
    (mpg123 decodes the frames before a seek point again), so the stretches join into the
    whole file's decode."""
    import soundfile

    parts = mp3_parts.default_parts() if parts is None else max(1, parts)
    with soundfile.SoundFile(os.fspath(path)) as f:
        out, rate = np.empty((f.frames, f.channels), np.float32), int(f.samplerate)
    bounds = [round(i * len(out) / parts) for i in range(parts + 1)]

    def stretch(i: int) -> None:
        with soundfile.SoundFile(os.fspath(path)) as f:
            f.seek(bounds[i])
            f.read(out=out[bounds[i] : bounds[i + 1]])

    with ThreadPoolExecutor(parts) as pool:  # libsndfile decodes without the GIL
        list(pool.map(stretch, range(parts)))
    return out.T, rate
