"""``manifest.json``: everything needed to reproduce a song and to regenerate parts of it."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

from arranger.atomic import write_text

MANIFEST = "manifest.json"
FORMAT_VERSION = 1
_PACKAGES = ("lofi", "torch", "numpy", "pretty_midi", "mido", "music21", "pedalboard",
             "pyfluidsynth", "typer")


@dataclass
class Manifest:
    """What wrote a song: the resolved preset, seeds, weights and the regenerate history."""

    preset: dict
    seed: int
    bars: int
    variations: int = 1  # size of the batch this song was generated in
    index: int = 0  # this song's row in that batch
    weights: str = ""  # weights folder ("" = shipped defaults)
    weights_sha256: str = ""
    primer: str = ""
    render_seed: int = 0
    history: list[dict] = field(default_factory=list)  # one entry per `lofi regenerate`
    packages: dict[str, str] = field(default_factory=dict)
    format_version: int = FORMAT_VERSION

    def to_json(self) -> str:
        return json.dumps(self.__dict__, indent=2, sort_keys=False) + "\n"

    def save(self, folder: Path) -> None:
        write_text(Path(folder) / MANIFEST, self.to_json())

    @classmethod
    def load(cls, path: Path) -> Manifest:
        path = Path(path)
        if path.is_dir():
            path = path / MANIFEST
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ValueError(f"{path}: no manifest here (was this folder written by "
                             "`lofi generate`?)") from None
        except json.JSONDecodeError as e:
            raise ValueError(f"{path}: not valid JSON ({e.msg} at line {e.lineno})") from None
        if not isinstance(data, dict) or data.get("format_version") != FORMAT_VERSION:
            raise ValueError(f"{path}: format_version must be {FORMAT_VERSION}")
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"{path}: unknown field {unknown[0]!r}")
        try:
            return cls(**data)
        except TypeError as e:
            raise ValueError(f"{path}: {e}") from None


def package_versions() -> dict[str, str]:
    out = {}
    for name in _PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out
