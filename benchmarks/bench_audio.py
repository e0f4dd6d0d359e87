"""Benchmark the audio stage: render + effects + stems + master + export of a synthetic song.

Builds a 4-layer MIDI (chords, bass, melody, drums at 85 bpm, 3 minutes by default), runs
``produce_audio`` with a representative lo-fi preset and prints each stage's time and share and
the real-time factor (seconds of music per second of wall time; the target is >= 60x).

    .venv/bin/python benchmarks/bench_audio.py [--seconds 180] [--soundfont PATH] [--no-mp3]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pretty_midi

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # runnable from a plain checkout
from arranger.audio.config import (  # noqa: E402
    EffectSpec,
    LayerSound,
    MasterSound,
    RenderSettings,
)
from arranger.audio.produce import produce_audio  # noqa: E402

BPM = 85
PROGRESSION = ((57, 60, 64, 67), (50, 53, 57, 60), (55, 59, 62, 65), (48, 52, 55, 59))
SCALE = (0, 2, 3, 5, 7, 9, 10)


def fx(kind: str, **params: object) -> EffectSpec:
    return EffectSpec(kind, dict(params))


def lofi_preset() -> tuple[dict[str, LayerSound], MasterSound]:
    """Per-layer LowPass/Compressor/Reverb and a full lo-fi master chain."""
    room = fx("Reverb", room_size=0.5, wet_level=0.25, dry_level=0.8)
    sounds = {
        "chords": LayerSound(4, -4.0, -0.25, (fx("LowPass", cutoff_frequency_hz=3500.0),
                                               fx("Compressor", threshold_db=-20.0, ratio=3.0),
                                               room)),
        "melody": LayerSound(11, -6.0, 0.3, (fx("LowPass", cutoff_frequency_hz=5000.0),
                                              fx("Compressor", threshold_db=-18.0, ratio=2.5),
                                              room)),
        "bass": LayerSound(33, -2.0, 0.0, (fx("LowPass", cutoff_frequency_hz=1200.0),
                                            fx("Compressor", threshold_db=-22.0, ratio=4.0))),
        "drums": LayerSound(0, -3.0, 0.0, (fx("LowPass", cutoff_frequency_hz=7000.0),
                                            fx("Compressor", threshold_db=-16.0, ratio=4.0),
                                            fx("Reverb", room_size=0.2, wet_level=0.1))),
    }
    master = MasterSound((
        fx("TapeWobble", depth_percent=0.3, flutter_depth_percent=0.05),
        fx("VinylCrackle", density_per_s=3.0, level_db=-32.0, hiss_db=-52.0, rumble_db=-55.0),
        fx("Bitcrush", bit_depth=12.0),
        fx("Resample", target_sample_rate=22050.0, quality="Linear"),
        fx("HighShelf", cutoff_frequency_hz=6000.0, gain_db=-5.0),
        fx("Compressor", threshold_db=-18.0, ratio=2.5, attack_ms=10.0, release_ms=150.0),
        fx("Limiter", threshold_db=-3.0, release_ms=100.0),
    ))
    return sounds, master


def synthetic_song(seconds: float, seed: int = 0) -> pretty_midi.PrettyMIDI:
    """A 4-layer song on a straight 16th grid, about ``seconds`` long."""
    rng = np.random.default_rng(seed)
    midi = pretty_midi.PrettyMIDI(initial_tempo=BPM)
    step = 15.0 / BPM
    layers = {name: pretty_midi.Instrument(program, is_drum=name == "drums", name=name)
              for name, program in (("chords", 4), ("bass", 33), ("melody", 11), ("drums", 0))}

    def note(layer: str, pitch: int, at: int, steps: int, velocity: int) -> None:
        start, end = at * step, (at + steps) * step
        layers[layer].notes.append(pretty_midi.Note(int(velocity), int(pitch), start, end))

    for bar in range(int(seconds / (16 * step))):
        chord, at = PROGRESSION[bar % 4], bar * 16
        for pitch in chord:
            note("chords", pitch, at, 16, 70)
        for beat in range(0, 16, 4):
            note("bass", chord[0] - 12, at + beat, 3, 90)
        for eighth in range(0, 16, 2):
            if rng.random() < 0.7:
                note("melody", 69 + SCALE[rng.integers(7)], at + eighth, 2, rng.integers(70, 100))
        for s in range(16):
            note("drums", 42, at + s, 1, 60 + 20 * (s % 2 == 0))
            if s in (0, 10):
                note("drums", 36, at + s, 1, 100)
            if s in (4, 12):
                note("drums", 38, at + s, 1, 95)
    midi.instruments.extend(layers.values())
    return midi


def run(seconds: float, soundfont: str, formats: tuple[str, ...]) -> dict:
    """Produce the synthetic song once into a temporary folder; returns the report + totals."""
    sounds, master = lofi_preset()
    midi = synthetic_song(seconds)
    with tempfile.TemporaryDirectory() as out:
        start, cpu = time.perf_counter(), time.process_time()
        report = produce_audio(midi, sounds, master, RenderSettings(soundfont=soundfont),
                               Path(out), swing=0.15, seed=0, formats=formats, progress=False)
        report["total_seconds"] = time.perf_counter() - start  # + SoundFont lookup
        report["cpu_seconds"] = time.process_time() - cpu  # all threads of this process
    report["realtime_factor"] = report["length_seconds"] / report["total_seconds"]
    return report


def print_report(report: dict) -> None:
    """Stage times are summed over threads, so they can add up to more than the wall time."""
    busy = sum(report["stage_seconds"].values())
    print(f"soundfont: {report['soundfont']}")
    print(f"song: {report['length_seconds']:.1f} s, {len(report['layers'])} layers, "
          f"{report['loudness_lufs']} LUFS, {report['true_peak_dbtp']} dBTP; "
          f"{os.cpu_count()} CPU cores, load average {os.getloadavg()[0]:.2f}")
    print("stage          thread-seconds  share")
    for stage, seconds in report["stage_seconds"].items():
        print(f"  {stage:<13} {seconds:9.3f} s  {100 * seconds / busy:5.1f} %")
    print(f"wall {report['total_seconds']:.3f} s (stages {busy:.3f} thread-s, CPU "
          f"{report['cpu_seconds']:.3f} s) -> {report['realtime_factor']:.1f}x real time")
    print(f"CPU-bound estimate: {report['length_seconds'] / report['cpu_seconds']:.1f}x on one "
          "free core (a busy machine inflates wall time, not CPU time)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=180.0, help="song length")
    parser.add_argument("--soundfont", default="", help="SoundFont (default: the lookup)")
    parser.add_argument("--no-mp3", action="store_true", help="write mix.wav only")
    parser.add_argument("--repeat", type=int, default=1, help="runs; the fastest is shown")
    args = parser.parse_args()
    formats = ("wav",) if args.no_mp3 else ("wav", "mp3")
    run(5.0, args.soundfont, formats)  # warm-up: first imports and calls are not the stage's
    runs = [run(args.seconds, args.soundfont, formats) for _ in range(max(1, args.repeat))]
    print_report(min(runs, key=lambda r: r["total_seconds"]))


if __name__ == "__main__":
    main()
