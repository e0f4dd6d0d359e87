"""Presets: a TOML file says how a track should sound and feel.

A preset may ``inherits = "other-preset"`` and override a few fields (tables merge key by key).
Validation reports the first problem as one line naming the file, the field, the value and what
is allowed, and nothing is written.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from arranger.audio.config import LayerSound, MasterSound, RenderSettings
from arranger.compose.coordinator import MODEL_LAYERS, Plan
from arranger.score import LAYERS, STEPS_PER_BAR, Key
from arranger.settings import Sampling, SongSettings

PRESETS_DIR = Path(__file__).resolve().parent.parent / "presets"
DEFAULT_PRESET = "rainy-night"
_TOP_KEYS = {"name", "description", "inherits", "song", "sampling", "layers", "master", "render"}
_SONG_KEYS = {"tempo_bpm", "key", "swing", "bars", "loop_bars", "ending", "melody_range",
              "chord_color", "drum_kit", "melody_gap_bars", "drum_loop_bars", "melody_form"}
CHORD_COLORS = ("triads", "natural", "sevenths", "ninths")
DRUM_KITS = ("full", "sparse", "none")


class PresetError(ValueError):
    """A preset that cannot be used; the message is one line naming file, field and value."""


@dataclass(frozen=True)
class Preset:
    """A fully resolved preset."""

    name: str
    description: str = ""
    song: SongSettings = field(default_factory=SongSettings)
    sampling: dict[str, Sampling] = field(default_factory=dict)
    layers: dict[str, LayerSound] = field(default_factory=dict)
    master: MasterSound = field(default_factory=MasterSound)
    render: RenderSettings = field(default_factory=RenderSettings)
    source: str = ""  # file it came from

    @property
    def key(self) -> Key:
        return Key.parse(self.song.key)

    def programs(self) -> dict[str, int]:
        return {layer: sound.program for layer, sound in self.layers.items()}

    def plan(self, bars: int | None = None, bass_seed: int = 0) -> Plan:
        s = self.song
        return Plan(bars=bars or s.bars, tempo_bpm=s.tempo_bpm, key=self.key, swing=s.swing,
                    loop_bars=s.loop_bars, ending=s.ending, melody_low=s.melody_range[0],
                    melody_high=s.melody_range[1], sampling=dict(self.sampling),
                    bass_seed=bass_seed, chord_color=s.chord_color, drum_kit=s.drum_kit,
                    max_gap_steps=round(s.melody_gap_bars * STEPS_PER_BAR),
                    drum_loop_bars=s.drum_loop_bars, melody_form=s.melody_form)

    def to_dict(self) -> dict:
        s = self.song
        return {
            "name": self.name,
            "description": self.description,
            "song": {"tempo_bpm": s.tempo_bpm, "key": s.key, "swing": s.swing, "bars": s.bars,
                     "loop_bars": s.loop_bars, "ending": s.ending,
                     "melody_range": list(s.melody_range), "chord_color": s.chord_color,
                     "drum_kit": s.drum_kit, "drum_loop_bars": s.drum_loop_bars,
                     "melody_gap_bars": s.melody_gap_bars, "melody_form": s.melody_form},
            "sampling": {k: {"temperature": v.temperature, "top_p": v.top_p}
                         for k, v in self.sampling.items()},
            "layers": {k: v.to_dict() for k, v in self.layers.items()},
            "master": self.master.to_dict(),
            "render": self.render.to_dict(),
        }


def preset_names(folder: Path = PRESETS_DIR) -> list[str]:
    return sorted(p.stem for p in folder.glob("*.toml"))


def find_preset(name_or_path: str, folder: Path = PRESETS_DIR) -> Path:
    """A preset file by path or by name in ``presets/``."""
    p = Path(name_or_path)
    if p.suffix == ".toml" or p.exists():
        if not p.is_file():
            raise PresetError(f"{p}: preset file not found")
        return p
    candidate = folder / f"{name_or_path}.toml"
    if not candidate.is_file():
        known = ", ".join(preset_names(folder)) or "none"
        raise PresetError(f"preset {name_or_path!r} not found (known: {known})")
    return candidate


def load_preset(name_or_path: str, folder: Path = PRESETS_DIR) -> Preset:
    """Load, inherit and validate a preset."""
    path = find_preset(name_or_path, folder)
    raw = _resolved_dict(path, folder, seen=())
    return from_dict(raw, str(path))


def _resolved_dict(path: Path, folder: Path, seen: tuple[Path, ...]) -> dict:
    if path.resolve() in seen:
        raise PresetError(f"{path}: inherits: circular inheritance through {path.name}")
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise PresetError(f"{path}: not valid TOML ({str(e).splitlines()[0]})") from None
    parent = data.pop("inherits", None)
    if parent is None:
        return data
    if not isinstance(parent, str):
        raise PresetError(f"{path}: inherits = {parent!r}: expected a preset name")
    parent_path = path.parent / parent if parent.endswith(".toml") else None
    if parent_path is None or not parent_path.is_file():
        parent_path = find_preset(parent, folder)
    base = _resolved_dict(parent_path, folder, seen + (path.resolve(),))
    base.pop("description", None)
    return _merge(base, data)


def _merge(base: dict, over: Mapping) -> dict:
    out = dict(base)
    for k, v in over.items():
        out[k] = _merge(out[k], v) if isinstance(v, Mapping) and isinstance(out.get(k),
                                                                             Mapping) else v
    return out


def from_dict(d: Mapping, where: str = "preset") -> Preset:
    """Validate a preset dict (already inherited) into a :class:`Preset`."""
    _no_unknown(d, _TOP_KEYS, where, "")
    song = _song(d.get("song", {}), where)
    sampling = _sampling(d.get("sampling", {}), where)
    layers_raw = _table(d.get("layers", {}), where, "layers")
    _no_unknown(layers_raw, set(LAYERS), where, "layers.")
    try:
        layers = {k: LayerSound.from_dict(_table(layers_raw.get(k, {}), where, f"layers.{k}"),
                                          f"{where}: layers.{k}")
                  for k in LAYERS}
        master = MasterSound.from_dict(_table(d.get("master", {}), where, "master"),
                                       f"{where}: master")
        render = RenderSettings.from_dict(_table(d.get("render", {}), where, "render"),
                                          f"{where}: render")
    except ValueError as e:
        raise PresetError(str(e)) from None
    name = d.get("name", Path(where).stem)
    if not isinstance(name, str):
        raise PresetError(f"{where}: name = {name!r}: expected a string")
    return Preset(name, str(d.get("description", "")), song, sampling, layers, master, render,
                  where)


def _table(v, where: str, name: str) -> Mapping:
    if not isinstance(v, Mapping):
        raise PresetError(f"{where}: {name} = {v!r}: expected a table")
    return v


def _no_unknown(d: Mapping, allowed: set[str], where: str, prefix: str) -> None:
    for k in d:
        if k not in allowed:
            raise PresetError(f"{where}: {prefix}{k}: unknown field (allowed: "
                              f"{', '.join(sorted(allowed))})")


def _number(d: Mapping, key: str, default, lo, hi, where: str, prefix: str, integer=False):
    v = d.get(key, default)
    ok = isinstance(v, int) if integer else isinstance(v, int | float)
    if isinstance(v, bool) or not ok or not lo <= v <= hi:
        kind = "an integer" if integer else "a number"
        raise PresetError(f"{where}: {prefix}{key} = {v!r}: expected {kind} in {lo}..{hi}")
    return v


def _song(d, where: str) -> SongSettings:
    d = _table(d, where, "song")
    _no_unknown(d, _SONG_KEYS, where, "song.")
    p, dflt = "song.", SongSettings()
    key = d.get("key", dflt.key)
    try:
        Key.parse(key) if isinstance(key, str) else Key.parse("")
    except ValueError:
        raise PresetError(f"{where}: song.key = {key!r}: expected a key like 'F minor', 'Eb', "
                          "'Am'") from None
    ending = d.get("ending", dflt.ending)
    if not isinstance(ending, bool):
        raise PresetError(f"{where}: song.ending = {ending!r}: expected true or false")
    rng = d.get("melody_range", list(dflt.melody_range))
    if (not isinstance(rng, list) or len(rng) != 2 or not all(
            isinstance(x, int) and not isinstance(x, bool) and 36 <= x <= 100 for x in rng)
            or rng[1] - rng[0] < 12):
        raise PresetError(f"{where}: song.melody_range = {rng!r}: expected [low, high] MIDI "
                          "notes in 36..100, at least an octave apart")
    form = d.get("melody_form", dflt.melody_form)
    if not (isinstance(form, str) and len(form) <= 32 and all("A" <= c <= "Z" for c in form)):
        raise PresetError(f"{where}: song.melody_form = {form!r}: expected capital letters, one "
                          "per phrase, like \"AABA\" (or \"\" for none)")
    return SongSettings(
        melody_form=form,
        chord_color=_choice(d, "chord_color", dflt.chord_color, CHORD_COLORS, where),
        drum_kit=_choice(d, "drum_kit", dflt.drum_kit, DRUM_KITS, where),
        drum_loop_bars=_number(d, "drum_loop_bars", dflt.drum_loop_bars, 0, 16, where, p,
                               integer=True),
        melody_gap_bars=float(_number(d, "melody_gap_bars", dflt.melody_gap_bars, 0, 16, where,
                                      p)),
        tempo_bpm=float(_number(d, "tempo_bpm", dflt.tempo_bpm, 40, 200, where, p)),
        key=key,
        swing=float(_number(d, "swing", dflt.swing, 0.0, 0.75, where, p)),
        bars=_number(d, "bars", dflt.bars, 2, 512, where, p, integer=True),
        loop_bars=_number(d, "loop_bars", dflt.loop_bars, 0, 64, where, p, integer=True),
        ending=ending,
        melody_range=(rng[0], rng[1]),
    )


def _choice(d: Mapping, key: str, default: str, allowed: tuple[str, ...], where: str) -> str:
    v = d.get(key, default)
    if v not in allowed:
        raise PresetError(f"{where}: song.{key} = {v!r}: expected one of {', '.join(allowed)}")
    return v


def _sampling(d, where: str) -> dict[str, Sampling]:
    d = _table(d, where, "sampling")
    _no_unknown(d, set(MODEL_LAYERS), where, "sampling.")
    out = {}
    for layer in MODEL_LAYERS:
        t = _table(d.get(layer, {}), where, f"sampling.{layer}")
        _no_unknown(t, {"temperature", "top_p"}, where, f"sampling.{layer}.")
        p = f"sampling.{layer}."
        out[layer] = Sampling(float(_number(t, "temperature", 1.0, 0.05, 3.0, where, p)),
                              float(_number(t, "top_p", 0.95, 0.05, 1.0, where, p)))
    return out


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
