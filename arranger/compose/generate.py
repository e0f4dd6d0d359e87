"""Write new songs: preset -> coordinator -> score -> files (MIDI, manifest, pictures, audio).

Everything that can fail on bad input (arguments, output folder, weights, soundfont, primer) is
checked before any composing and before a single file is written; the output folder is built in
a staging copy and swapped in whole (:func:`arranger.atomic.staged_dir`).

Variation ``i`` of a batch generated with seed ``s`` is the song of seed ``s + i``: its bass,
its render and its manifest use that seed, so ``lofi generate --seed s+i`` writes it again.
"""

from __future__ import annotations

from pathlib import Path

from arranger.atomic import check_output, interrupt_on_sigterm, song_lock, staged_dir
from arranger.audio.ahead import closed_if_unused
from arranger.compose.coordinator import compose
from arranger.compose.plan import Forced
from arranger.compose.primer import force_primer, primed_preset, read_primer
from arranger.compose.song_folder import Output, write_song
from arranger.errors import InputError
from arranger.manifest import Manifest, package_versions
from arranger.preset import Preset
from arranger.score import Score
from arranger.weights import load_models, weights_hash

MAX_BARS = 512  # longer songs would hold minutes of audio in memory per stem
MAX_VARIATIONS = 64  # one batch; more would hold too many songs' audio at once


def check_bars(bars: int) -> None:
    """Refuse a song length outside 2..``MAX_BARS`` bars (``InputError`` on field ``bars``)."""
    if not 1 < bars <= MAX_BARS:
        raise InputError("bars", bars, f"2..{MAX_BARS} bars")


def check_variations(variations: int) -> None:
    """Refuse a batch size outside 1..``MAX_VARIATIONS``."""
    if not 1 <= variations <= MAX_VARIATIONS:
        raise InputError("variations", variations, f"1..{MAX_VARIATIONS} songs")


def generate(preset: Preset, out: Path, *, seed: int, bars: int | None = None,
             weights: Path | None = None, variations: int = 1, primer: Path | None = None,
             output: Output = Output(), force: bool = False, device: str = "auto"
             ) -> list[Path]:
    """Write ``variations`` songs to ``out`` (``out/01``, ``out/02``... when more than one).

    Returns the song folders; song ``i`` (0-based) has seed ``seed + i`` in its manifest.
    Raises :class:`~arranger.errors.InputError` (naming the field) on bad input, before any work.
    """
    out = Path(out)
    check_output(out, force=force)
    if output.loop:
        from arranger.audio.loop import check_loop

        check_loop(preset.song.loop_bars, bars or preset.song.bars)
    with interrupt_on_sigterm(), closed_if_unused():
        scores = compose_songs(preset, seed=seed,
                               bars=preset.song.bars if bars is None else bars,
                               weights=weights, variations=variations, primer=primer,
                               check_render=output.render, device=device)
        # With a primer the songs have its key and tempo: the manifest records those.
        song_preset = primed_preset(preset, scores[0], primer) if primer else preset
        with song_lock(out), staged_dir(out, force=force) as stage:
            folders = []
            for i, score in enumerate(scores):
                folder = stage / f"{i + 1:02d}" if variations > 1 else stage
                manifest = song_manifest(song_preset, score, seed=seed + i, index=i,
                                         variations=variations, weights=weights, primer=primer)
                write_song(folder, score, song_preset, manifest, output)
                folders.append(out / folder.relative_to(stage))
    return folders


def song_manifest(preset: Preset, score: Score, *, seed: int, index: int = 0,
                  variations: int = 1, weights: Path | None = None,
                  primer: Path | None = None) -> Manifest:
    """The manifest of a new song: ``seed`` is the song's own (batch seed + ``index``)."""
    # Absolute paths: regenerate and --from-manifest may run from another folder.
    return Manifest(preset=preset.to_dict(), seed=seed, bars=score.bars, variations=variations,
                    index=index, weights=_absolute(weights), weights_sha256=weights_hash(weights),
                    primer=_absolute(primer), render_seed=seed, history=[],
                    packages=package_versions())


def _absolute(path: Path | None) -> str:
    return str(Path(path).resolve()) if path else ""


def compose_songs(preset: Preset, *, seed: int, bars: int, weights: Path | None = None,
                  variations: int = 1, primer: Path | None = None,
                  check_render: bool = False, device: str = "auto") -> list[Score]:
    """Validate the inputs, then write ``variations`` scores as one batch.

    Score ``i``'s bass is derived with seed ``seed + i``; with a primer, the scores continue
    its bars in its key and tempo.
    """
    check_bars(bars)
    check_variations(variations)
    torch_device = generation_device(device)
    models = load_models(weights)
    if check_render:
        check_soundfont(preset)
    primer_score = read_primer(primer) if primer else None
    if primer_score is not None:
        preset = primed_preset(preset, primer_score, primer)
    forced = Forced.free(variations, bars)
    if primer_score is not None:
        force_primer(forced, primer_score, models, bars)
    scores = compose(models, preset.plan(bars, bass_seed=seed), seed=seed,
                     variations=variations, forced=forced, device=torch_device)
    for i, score in enumerate(scores[1:], start=1):  # score 0 has seed + 0 already
        score.bass = derive_bass(score, preset, seed + i)
    return scores


def derive_bass(score: Score, preset: Preset, seed: int):
    """The bass line that follows ``score``'s chords, with rhythm patterns drawn from ``seed``.

    Returns an int array of shape (bars * 16,): MIDI note, HOLD or REST per 16th step.
    """
    from arranger.compose.sections import Form, arranged_bass
    from tracks.bass import bass_line

    form = Form.of(preset.song.sections, score.bars)  # silent where the sections leave it out
    return arranged_bass(bass_line(score, seed=seed, loop_bars=preset.song.loop_bars), form)


def generation_device(name: str):
    """``auto``/``cpu``: the numpy CPU path (step-by-step generation is launch-bound on a GPU,
    and it needs no torch import); ``cuda``: PyTorch on the GPU."""
    if name in ("auto", "cpu"):
        return None
    from arranger.training.train import resolve_device

    return resolve_device(name)


def check_soundfont(preset: Preset) -> None:
    """Fail now on a missing SoundFont or libfluidsynth; else load the SoundFont while the
    models compose (closed by :func:`arranger.audio.ahead.closed_if_unused` if unused)."""
    from arranger.audio.ahead import load_ahead
    from arranger.audio.render import fluid
    from arranger.audio.soundfont import find_soundfont

    path = find_soundfont(preset.render.soundfont or None)
    fluid()  # a missing libfluidsynth: one line naming the package, before any composing
    load_ahead(path, preset.render.sample_rate)

