"""Presets: a TOML file says how a track should sound and feel.

A preset may ``inherits = "other-preset"`` and override a few fields (tables merge key by key).
``inherits`` names a preset, never a path: ``"name"`` is ``presets/name.toml``, ``"name.toml"``
the file of that name next to the preset that asks. Every field is declared once, in
:mod:`arranger.settings` and :mod:`arranger.audio.config`; validation reports the first problem
as one line naming the file, the field, the value and what is allowed, and nothing is written.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from arranger.audio.config import LayerSound, MasterSound, RenderSettings
from arranger.compose.plan import Plan
from arranger.errors import InputError
from arranger.score import LAYERS, Key
from arranger.settings import (
    INTERNAL,
    FileError,
    Settings,
    parse,
    setting,
    split_where,
    unreadable_reason,
)
from arranger.song_settings import Sampling, SongSettings
from tracks.layers import MODEL_LAYERS

PRESETS_DIR = Path(__file__).resolve().parent.parent / "presets"
DEFAULT_PRESET = "rainy-night"


class PresetError(FileError):
    """A preset that cannot be used: one line naming file, field and value.

    ``PresetError(field, value, expected, where)`` as :class:`arranger.errors.InputError`;
    :meth:`about_file` for a problem with the whole file (``FILE: problem``).
    """

    def __init__(self, field: str, value: Any, expected: str, where: str = "") -> None:
        InputError.__init__(self, field, value, expected, where)

    @classmethod
    def about_file(cls, where: str, problem: str) -> PresetError:
        return cls("", None, problem, where)


@dataclass(frozen=True)
class Preset(Settings):
    """A fully resolved preset."""

    name: str = setting("", help="the preset's name (default: its file's name)")
    description: str = setting("", help="one line for `lofi presets`")
    song: SongSettings = setting(default_factory=SongSettings, help="feel and form")
    sampling: dict[str, Sampling] = setting(default_factory=dict, choices=MODEL_LAYERS,
                                            fill=True, help="how each layer model samples")
    layers: dict[str, LayerSound] = setting(default_factory=dict, choices=LAYERS, fill=True,
                                            help="how each layer sounds")
    master: MasterSound = setting(default_factory=MasterSound, help="the master bus")
    render: RenderSettings = setting(default_factory=RenderSettings, help="MIDI to audio")
    source: str = field(default="", metadata=INTERNAL)  # file it came from

    @classmethod
    def from_dict(cls, d: Any, where: str = "preset") -> Preset:
        """As the module's :func:`from_dict` (errors as :class:`PresetError`, name filled)."""
        return from_dict(d, where)

    @property
    def key(self) -> Key:
        return Key.parse(self.song.key)

    def programs(self) -> dict[str, int]:
        return {layer: sound.program for layer, sound in self.layers.items()}

    def plan(self, bars: int | None = None, bass_seed: int = 0) -> Plan:
        """The generation plan of this preset's song, ``bars`` long if given."""
        density = {layer: sound.density for layer, sound in self.layers.items()
                   if sound.density is not None}
        plan = Plan(self.song, dict(self.sampling), bass_seed, density)
        return plan.with_song(bars=bars) if bars else plan


def preset_names(folder: Path = PRESETS_DIR) -> list[str]:
    return sorted(p.stem for p in folder.glob("*.toml"))


def _known(folder: Path) -> str:
    return ", ".join(preset_names(folder)) or "none"


def find_preset(name_or_path: str, folder: Path = PRESETS_DIR) -> Path:
    """A preset file by path or by name in ``presets/``."""
    p = Path(name_or_path)
    if p.suffix == ".toml" or p.exists():
        if not p.is_file():
            raise PresetError.about_file(str(p), "preset file not found")
        return p
    candidate = folder / f"{name_or_path}.toml"
    if Path(name_or_path).name != name_or_path or not candidate.is_file():
        raise PresetError("preset", name_or_path, f"a preset name or a .toml file (preset "
                          f"{name_or_path!r} not found; known: {_known(folder)})")
    return candidate


def load_preset(name_or_path: str, folder: Path = PRESETS_DIR) -> Preset:
    """Load, inherit and validate a preset."""
    path = find_preset(name_or_path, folder)
    raw = _resolved_dict(path, folder, seen=())
    return from_dict(raw, str(path))


def read_toml(path: Path) -> dict[str, Any]:
    """The table of a TOML file; anything unreadable is one line naming the file."""
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except (ValueError, RecursionError, OSError) as e:  # TOMLDecodeError, UnicodeDecodeError
        reason = unreadable_reason(e)
    raise PresetError.about_file(str(path), f"not valid TOML ({reason})")


def _resolved_dict(path: Path, folder: Path, seen: tuple[Path, ...]) -> dict:
    data = read_toml(path)
    parent = data.pop("inherits", None)
    if parent is None:
        return data
    parent_path = _parent_path(parent, path, folder)
    if parent_path.resolve() in seen + (path.resolve(),):
        raise PresetError("inherits", parent, f"a preset that does not inherit back (circular "
                          f"inheritance through {parent_path.name})", str(path))
    base = _resolved_dict(parent_path, folder, seen + (path.resolve(),))
    base.pop("description", None)
    song = data.get("song")
    if isinstance(song, Mapping) and "sections" in song and "bars" not in song \
            and isinstance(base.get("song"), dict):
        base["song"].pop("bars", None)  # a form of its own sets its own length
    return _merge(base, data)


def _parent_path(parent: Any, path: Path, folder: Path) -> Path:
    """The file ``inherits = parent`` of preset ``path`` names: a preset, never a path."""
    if not isinstance(parent, str) or not parent or Path(parent).name != parent \
            or parent.startswith("."):
        raise PresetError("inherits", parent, "the name of a preset (not a path): a name in "
                          f"{folder} or a .toml file next to this one", str(path))
    candidate = path.parent / parent if parent.endswith(".toml") else folder / f"{parent}.toml"
    if not candidate.is_file():
        raise PresetError("inherits", parent, f"a preset in {candidate.parent} (known: "
                          f"{_known(candidate.parent)})", str(path))
    return candidate


def _merge(base: dict, over: Mapping) -> dict:
    out = dict(base)
    for k, v in over.items():
        out[k] = _merge(out[k], v) if isinstance(v, Mapping) and isinstance(out.get(k),
                                                                             Mapping) else v
    return out


def from_dict(d: Any, where: str = "preset") -> Preset:
    """Validate a preset dict (already inherited) into a :class:`Preset`.

    ``where`` is the file (``"FILE: table"`` for a preset inside another file, e.g. a manifest).
    """
    file, path = split_where(where)
    try:
        preset = parse(Preset, d, file, path)
    except InputError as e:
        raise PresetError(e.field, e.value, e.expected, e.where) from None
    return replace(preset, name=preset.name or Path(file).stem, source=where)


def dump_toml(d: Mapping, prefix: str = "") -> str:
    """A small TOML writer for resolved presets (tables, scalars, lists, inline tables)."""
    lines, tables = [], []
    for k, v in d.items():
        if isinstance(v, Mapping):
            tables.append((k, v))
        else:
            lines.append(f"{k} = {_toml_value(v)}")
    out = ""
    if lines:
        out += (f"[{prefix}]\n" if prefix else "") + "\n".join(lines) + "\n\n"
    for k, v in tables:
        out += dump_toml(v, f"{prefix}.{k}" if prefix else k)
    return out


def _toml_value(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, str):
        return '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(v, Mapping):
        return "{ " + ", ".join(f"{k} = {_toml_value(x)}" for k, x in v.items()) + " }"
    if isinstance(v, list | tuple):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    return repr(v)
