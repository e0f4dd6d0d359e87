"""Write a song again from its manifest, replaying its regenerate history: the same score.mid."""

from __future__ import annotations

from pathlib import Path

from arranger.atomic import check_output, interrupt_on_sigterm, song_lock, staged_dir
from arranger.audio.ahead import closed_if_unused
from arranger.compose.generate import compose_songs
from arranger.compose.regenerate import parse_spans, resample
from arranger.compose.song_folder import Output, write_song
from arranger.manifest import Manifest
from arranger.preset import from_dict


def reproduce(manifest_path: Path, out: Path, *, output: Output = Output(),
              force: bool = False) -> Path:
    """Generate the song of ``manifest_path`` into ``out`` and return ``out``.

    A manifest's ``seed`` is its song's own; a song of a batch (``index`` i of
    ``variations``) was row i of the batch generated with seed ``seed - i``.
    """
    out = Path(out)
    check_output(out, force=force)
    m = Manifest.load(manifest_path)
    m.check_weights(str(manifest_path))  # other weights would write another song
    preset = from_dict(m.preset, str(manifest_path))
    weights = Path(m.weights) if m.weights else None
    with interrupt_on_sigterm(), closed_if_unused():
        score = compose_songs(preset, seed=m.seed - m.index, bars=m.bars, weights=weights,
                              variations=m.variations,
                              primer=Path(m.primer) if m.primer else None,
                              check_render=output.render)[m.index]
        for step in m.history:
            spans = parse_spans(step["bars"], score.bars)
            score = resample(score, preset, step["layer"], spans, step["seed"], weights, m.seed)
        with song_lock(out), staged_dir(out, force=force) as stage:
            write_song(stage, score, preset, m, output)
    return out
