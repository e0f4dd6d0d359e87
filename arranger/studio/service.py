"""What the API does, without HTTP: check a request, queue its job, report songs.

Requests are checked here, before anything is queued, with the engine's own validation (the
preset's ranges, ``parse_bars``), so a bad request is one line at once and never a failed job.
"""

from __future__ import annotations

import secrets
import threading
from dataclasses import dataclass, field
from pathlib import Path

from arranger.errors import InputError
from arranger.manifest import MANIFEST, Manifest
from arranger.score import LAYERS
from arranger.studio import tasks
from arranger.studio.jobs import Job, Worker
from arranger.studio.library import SCORE, STEMS, Library, Missing

NEW_SEEDS = 2**31  # a regenerate without a seed draws one below this (short to read back)


class Conflict(RuntimeError):
    """A request that cannot be done in the song's present state (HTTP 409); one line."""


@dataclass
class Studio:
    """The library, the worker, and how songs are written (weights, output formats)."""

    library: Library
    worker: Worker
    weights: Path | None = None
    output: object = None  # arranger.compose.song_folder.Output; None: the engine's default
    _new_song: threading.Lock = field(default_factory=threading.Lock)

    def presets(self) -> list[dict]:
        """Every preset with the song settings the page offers to override (``default``: the
        one ``lofi generate`` uses without ``--preset``)."""
        from arranger.preset import DEFAULT_PRESET, load_preset, preset_names

        out = []
        for name in preset_names():
            p = load_preset(name)
            out.append({"name": name, "description": p.description, "key": p.song.key,
                        "tempo": p.song.tempo_bpm, "bars": p.song.bars,
                        "default": name == DEFAULT_PRESET})
        return out

    def create(self, preset: str, seed: int, bars: int | None, key: str | None,
               tempo: float | None) -> str:
        """Queue a new song; returns its id."""
        resolved = _resolved_preset(preset, bars=bars, key=key, tempo_bpm=tempo)
        label = f"generate {preset}, seed {seed}, {resolved['song']['bars']} bars"
        with self._new_song:  # two requests at once must not get the same id
            song_id = self.library.new_id(preset, seed, taken=set(self.worker.songs()))
            self.worker.submit(song_id, "generate", label, tasks.generate_song,
                               self.library.root, song_id, resolved, seed, self.weights,
                               self._output())
        return song_id

    def regenerate(self, song_id: str, layer: str, bars: str | None, seed: int | None) -> Job:
        """Queue resampling ``layer`` (bars ``"A-B"`` of it, or all) of a song."""
        from arranger.compose.regenerate import check_layer, parse_bars

        manifest = self._manifest(song_id)
        check_layer(layer)
        first, end = parse_bars(bars, manifest.bars)
        if seed is None:  # a new take every time, also after an undo (recorded in the history)
            seed = secrets.randbelow(NEW_SEEDS)
        label = f"regenerate {layer}" + (f", bars {first + 1}-{end}" if bars else "")
        return self.worker.submit(song_id, "regenerate", label, tasks.regenerate_song,
                                  self.library.root, song_id, layer, bars, seed, self._output())

    def undo(self, song_id: str) -> Job:
        """Queue going back one regenerate step."""
        if not self._manifest(song_id).history:
            raise Conflict(f"song {song_id!r}: nothing to undo (no regenerate history)")
        return self.worker.submit(song_id, "undo", "undo", tasks.undo_song, self.library.root,
                                  song_id, self._output())

    def songs(self) -> list[dict]:
        """Every song (in the library or queued), newest first."""
        ids = list(dict.fromkeys(self.worker.songs() + self.library.song_ids()))
        return [self.summary(song_id) for song_id in ids]

    def summary(self, song_id: str) -> dict:
        """Status, what it is and a version that changes whenever its files do."""
        folder = self.library.folder(song_id)
        jobs = self.worker.jobs(song_id)
        manifest = _manifest_or_none(folder)
        if manifest is None and not jobs:
            raise Missing(f"song {song_id!r} not found in the library")
        status, error, active = _status(jobs)
        out = {"id": song_id, "status": status, "error": error, "ready": manifest is not None,
               "version": _version(folder) if manifest is not None else "",
               "job": active.to_dict() if active else None, "progress": None}
        if manifest is not None:
            out |= _about(manifest)
        if active is not None and active.status == "running":
            out["progress"] = self._progress(song_id, active)
        elif active is not None and self.worker.starting:
            out["progress"] = {"done": 0, "of": 0, "label": "starting the engine"}
        return out

    def detail(self, song_id: str) -> dict:
        """The summary, plus files, manifest and the song's jobs."""
        out = self.summary(song_id)
        out["files"] = self.library.files(song_id) if out["ready"] else []
        out["manifest"] = self.library.manifest(song_id).to_dict() if out["ready"] else None
        out["jobs"] = [j.to_dict() for j in self.worker.jobs(song_id)]
        return out

    def _manifest(self, song_id: str) -> Manifest:
        try:
            return self.library.manifest(song_id)
        except Missing:
            if self.worker.jobs(song_id):
                raise Conflict(f"song {song_id!r} is still being generated") from None
            raise

    def _output(self):
        from arranger.compose.song_folder import Output

        return self.output if self.output is not None else Output(progress=False)

    def _progress(self, song_id: str, job: Job) -> dict:
        """Steps done of a running generate, read off the folder it is building."""
        if job.kind != "generate":
            return {"done": 0, "of": 0, "label": job.label}
        out = self._output()
        steps = [(SCORE, "composing")] + [(f"{STEMS}/{layer}.wav", "rendering stems")
                                          for layer in LAYERS if out.render]
        steps += [(f"mix.{fmt}", "mastering" if fmt == "wav" else f"writing mix.{fmt}")
                  for fmt in (out.formats if out.render else ())]
        stages = self.library.staging_dirs(song_id)
        done = [any((s / name).is_file() for s in stages) for name, _ in steps]
        label = next((what for (_, what), ok in zip(steps, done, strict=True) if not ok),
                     "drawing the piano roll")
        return {"done": sum(done), "of": len(steps), "label": label}


def _resolved_preset(name: str, **song) -> dict:
    """The preset ``name`` with the given song fields replaced, validated as a preset is."""
    from arranger.preset import from_dict, load_preset, preset_names

    names = preset_names()
    if name not in names:  # by name only: never a path a request could point anywhere
        raise InputError("preset", name, f"one of {', '.join(names)}")
    d = load_preset(name).to_dict()
    d["song"] |= {k: v for k, v in song.items() if v is not None}
    return from_dict(d, "request").to_dict()


def _status(jobs: list[Job]) -> tuple[str, str, Job | None]:
    active = next((j for j in jobs if j.status in ("queued", "running")), None)
    if active is not None:
        return active.status, "", active
    if jobs and jobs[-1].status == "error":
        return "error", jobs[-1].error, None
    return "done", "", None


def _manifest_or_none(folder: Path) -> Manifest | None:
    try:
        return None if folder.is_symlink() else Manifest.load(folder / MANIFEST)
    except ValueError:  # not there (yet), or not ours
        return None


def _version(folder: Path) -> str:
    st = (folder / MANIFEST).stat()
    return f"{folder.stat().st_ino}-{st.st_mtime_ns}"


def _about(m: Manifest) -> dict:
    song = m.preset.get("song", {})
    return {"preset": m.preset.get("name", ""), "seed": m.seed, "bars": m.bars,
            "key": song.get("key", ""), "tempo": song.get("tempo_bpm"),
            "history": m.history}
