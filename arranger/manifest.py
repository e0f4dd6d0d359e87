"""``manifest.json``: everything needed to reproduce a song and to regenerate parts of it.

A manifest is read like a preset: every field is declared once (with its range) and checked by
the generic mechanism of :mod:`arranger.settings`; a bad one is a single line naming the file,
the field and the value. Its ``preset`` is checked as a preset, and ``weights_sha256`` against
the weights a reproduction would use (:meth:`Manifest.check_weights`).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

from arranger.atomic import write_text
from arranger.errors import InputError
from arranger.score import LAYERS
from arranger.settings import FileError, Settings, parse, setting, spec_of, unreadable_reason
from arranger.song_settings import SongSettings

MANIFEST = "manifest.json"
FORMAT_VERSION = 1
_PACKAGES = ("lofi", "torch", "numpy", "pretty_midi", "mido", "music21", "pedalboard",
             "pyfluidsynth", "typer")
MAX_SEED = 2**63 - 1  # numpy's and torch's generators take any seed in 0..2**63-1
MAX_VARIATIONS = 64  # songs in one batch
_BARS = spec_of(SongSettings, "bars")
_SPAN = re.compile(r"([1-9][0-9]{0,5})-([1-9][0-9]{0,5})")


def _is_span(text: str) -> bool:
    """``A-B`` with A <= B, or several, comma-separated (a section's occurrences)."""
    matches = [_SPAN.fullmatch(part) for part in text.split(",")]
    return all(m is not None and int(m[1]) <= int(m[2]) for m in matches)


def _is_sha256(text: str) -> bool:
    return text == "" or re.fullmatch(r"[0-9a-f]{64}", text) is not None


@dataclass(frozen=True)
class HistoryEntry(Settings):
    """One ``lofi regenerate`` of the song: which layer, which bars, with which seed."""

    layer: str = setting(choices=LAYERS, help="the layer regenerated")
    bars: str = setting(check=_is_span,
                        expected="bars 'A-B' with 1 <= A <= B, e.g. '9-16' (or several: "
                                 "'5-12,17-24')",
                        help="first and last bar regenerated, 1-based")
    seed: int = setting(low=0, high=MAX_SEED, help="the seed it sampled with")


@dataclass
class Manifest(Settings):
    """What wrote a song: the resolved preset, seeds, weights and the regenerate history."""

    preset: dict = setting(help="the resolved preset (checked as a preset)")
    seed: int = setting(low=0, high=MAX_SEED, help="the song's seed")
    bars: int = setting(low=_BARS.low, high=_BARS.high, unit="bars", help="song length")
    variations: int = setting(1, low=1, high=MAX_VARIATIONS,
                              help="size of the batch this song was generated in")
    index: int = setting(0, low=0, high=MAX_VARIATIONS - 1, help="this song's row in that batch")
    weights: str = setting("", help="weights folder (\"\" = shipped defaults)")
    weights_sha256: str = setting("", check=_is_sha256,
                                  expected="64 lower-case hex digits (or \"\" for unknown)",
                                  help="SHA-256 over the three weights files")
    primer: str = setting("", help="the MIDI file the song continues (\"\" = none)")
    render_seed: int = setting(0, low=0, high=MAX_SEED, help="seed of the audio rendering")
    history: list[dict] = setting(default_factory=list, schema=HistoryEntry,
                                  help="one entry per `lofi regenerate`")
    packages: dict[str, str] = setting(default_factory=dict, help="package versions")
    format_version: int = setting(FORMAT_VERSION, choices=(FORMAT_VERSION,),
                                  help="layout of this file")

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=False) + "\n"

    def save(self, folder: Path) -> None:
        write_text(Path(folder) / MANIFEST, self.to_json())

    @classmethod
    def parse_at(cls, d: Any, file: str, path: str) -> Manifest:
        """The generic checks, then those across fields: index, history bars, the preset."""
        m = parse(cls, d, file, path)
        if m.index >= m.variations:
            raise InputError("index", m.index, f"an integer in 0..{m.variations - 1} (a row of "
                             f"its batch of {m.variations})", file)
        for i, step in enumerate(m.history):
            if int(step["bars"].rpartition("-")[2]) > m.bars:
                raise InputError(f"history[{i}].bars", step["bars"], f"bars within the song's "
                                 f"1..{m.bars}", file)
        from arranger.preset import from_dict  # presets import the engine; manifests need not

        from_dict(m.preset, f"{file}: preset")
        return m

    @classmethod
    def load(cls, path: Path) -> Manifest:
        """Read and check ``path`` (a manifest file or a song folder holding one)."""
        path = Path(path)
        if path.is_dir():
            path = path / MANIFEST
        return cls.from_dict(_read_json(path), str(path))

    def check_weights(self, where: str = "") -> None:
        """Refuse (one line) to reproduce with weights other than those that wrote the song."""
        if not self.weights_sha256:
            return
        from arranger.weights import weights_hash

        folder = Path(self.weights) if self.weights else None
        try:
            actual = weights_hash(folder)
        except OSError:
            raise InputError("weights", self.weights, "a folder holding the chords, melody and "
                             "drums .safetensors that wrote this song", where) from None
        if actual != self.weights_sha256:
            raise InputError("weights_sha256", self.weights_sha256, f"the hash of the weights in "
                             f"{folder or 'the shipped weights'} ({actual[:16]}...): the weights "
                             "changed since this song was written", where)


def _read_json(path: Path) -> Any:
    """The decoded JSON of ``path``; anything unreadable is one line naming the file."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise FileError(str(path), "no manifest here (was this folder written by `lofi "
                        "generate`?)") from None
    except json.JSONDecodeError as e:
        reason = f"{e.msg} at line {e.lineno}"
    except (ValueError, RecursionError, OSError) as e:  # UnicodeDecodeError, > 4,300 digits
        reason = unreadable_reason(e)
    raise FileError(str(path), f"not valid JSON ({reason})")


def package_versions() -> dict[str, str]:
    out = {}
    for name in _PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out
