"""Everything `lofi train` does before the first step: read the corpus, decide the layers, encode.

Checked before any training: the output folder can be written, every corpus path exists, and
every layer asked for with ``--layers`` is held by some song. Without ``--layers`` every layer the
corpus holds is trained; the others are copied from the shipped weights (or ``--init-from``), so
the folder always holds three models. The skipped files are listed in ``OUT/skipped.tsv``.
"""

from __future__ import annotations

import fnmatch
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path

from arranger.atomic import write_text
from arranger.errors import InputError
from arranger.training.cards import copy_untrained
from arranger.training.encoded import Job
from arranger.training.train import TrainConfig, prepare_layer
from arranger.training.velocities import table_card
from tracks.layers import MODEL_LAYERS

SKIP_REPORT = "skipped.tsv"
Say = Callable[[str], None]


def parse_layers(text: str) -> list[str]:
    """``"chords,melody"`` -> ``["chords", "melody"]``; an unknown name is an InputError."""
    wanted = [x.strip() for x in text.split(",") if x.strip()]
    for layer in wanted:
        if layer not in MODEL_LAYERS:
            raise InputError("layers", layer, f"{', '.join(MODEL_LAYERS)}, comma-separated "
                             "(the bass follows the chords and has no model)")
    if not wanted:
        raise InputError("layers", text, f"at least one of {', '.join(MODEL_LAYERS)}")
    return wanted


def check_writable(out: Path) -> None:
    """Refuse an output folder that cannot be created or written to (read-only, a file...).

    Probes ``out``, or the nearest folder above it that exists: nothing is created here.
    """
    probe = Path(out).absolute()
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    try:
        if not probe.is_dir():
            raise NotADirectoryError(20, "Not a directory")
        with tempfile.NamedTemporaryFile(dir=probe, prefix=".lofi-write-test."):
            pass
    except OSError as e:
        raise ValueError(f"--out {out}: not a folder that can be written to "
                         f"({e.strerror or type(e).__name__})") from None


def plan_layers(requested: str | None, songs: Sequence) -> tuple[list[str], dict[str, str]]:
    """The layers to train, and why each other layer is not trained.

    ``requested`` None: every layer some song holds. Raises :class:`InputError` for a requested
    layer no song holds, or a corpus that holds none.
    """
    held = {layer: sum(layer in s.layers for s in songs) for layer in MODEL_LAYERS}
    counts = ", ".join(f"{layer} {n}" for layer, n in held.items())
    if requested is None:
        trained = [layer for layer in MODEL_LAYERS if held[layer]]
        if not trained:
            raise ValueError(f"no song of the corpus holds chords, melody or drums ({len(songs)} "
                             f"songs; per layer: {counts}): nothing to train")
    else:
        trained = parse_layers(requested)
        missing = [layer for layer in trained if not held[layer]]
        if missing:
            raise InputError("layers", requested, "layers some song of the corpus holds (songs "
                             f"per layer: {counts}; no song holds {', '.join(missing)})")
    return trained, {layer: f"the corpus holds no {layer} songs" if not held[layer]
                     else "not asked for with --layers" for layer in MODEL_LAYERS
                     if layer not in trained}


def read_songs(corpus: Sequence[Path], include: Sequence[str], workers: int | None,
               say: Say, progress: bool = True):
    """``(songs, report)`` of the corpus, filtered by the ``--include`` patterns."""
    from arranger.corpus.load import load_corpus

    for p in corpus:
        if not Path(p).exists():
            raise FileNotFoundError(f"{p}: no such file or folder")
    songs, report = load_corpus(list(corpus), workers=workers, progress=progress)
    say(report.summary())
    if include:
        songs = [s for s in songs if any(fnmatch.fnmatch(s.source, p) for p in include)]
        say(f"--include kept {len(songs)} songs")
    return songs, report


def prepare_job(corpus: Sequence[Path], out: Path, *, layers: str | None, cfg: TrainConfig,
                device: str = "auto", resume: bool = False, workers: int | None = None,
                include: Sequence[str] = (), init_from: Path | None = None,
                say: Say = print, main: bool = True) -> Job:
    """Read, check and encode: the :class:`Job` every training worker runs.

    ``main``: this process writes (skip report, copies of untrained layers) and reports.
    """
    songs, report = read_songs(corpus, include, workers, say, progress=main)
    trained, untrained = plan_layers(layers, songs)
    if main:
        write_text(out / SKIP_REPORT, report.skip_report())
        if report.examples:
            say(f"the skipped files and why: {out / SKIP_REPORT}")
        _fill_untrained(out, untrained, init_from, say)
    splits = {layer: prepare_layer(songs, layer, cfg, initial(init_from, layer))
              for layer in trained}
    extras = {layer: {"include": list(include)} if include else {} for layer in trained}
    if "drums" in extras:
        extras["drums"] |= table_card(songs, cfg.val_fraction)
    return Job(splits, cfg, out, device, resume, str(init_from or ""), extras)


def _fill_untrained(out: Path, untrained: dict[str, str], init_from: Path | None,
                    say: Say) -> None:
    from arranger.weights import DEFAULT_WEIGHTS

    source = Path(init_from) if init_from else DEFAULT_WEIGHTS
    for layer, because in untrained.items():
        if copy_untrained(out, layer, source, because):
            say(f"{layer}: not trained ({because}): copied the model of {source} into {out}")
        else:
            say(f"{layer}: not trained ({because}): keeping the model already in {out}")


def initial(init_from: Path | str | None, layer: str):
    """The weights of ``layer`` to fine-tune from ``init_from`` (None: train from scratch).

    The preparing process keeps their vocabulary; each worker starts from their values.
    """
    if not init_from:
        return None
    from tracks.model import load_weights

    path = Path(init_from) / f"{layer}.safetensors"
    if not path.exists():
        raise FileNotFoundError(f"--init-from {init_from}: no {layer}.safetensors there")
    return load_weights(path, layer)

