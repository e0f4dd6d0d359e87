"""All speed and memory figures, measured side by side in one run, printed as ratios.

Run: .venv/bin/python benchmarks/run.py [--quick]
Keep the printed figures, with date and machine, in benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))
CORPUS = Path(os.environ.get("LOFI_CORPUS", ROOT.parent / "shared" / "corpus"))


def header() -> None:
    print(f"# lofi benchmarks, {time.strftime('%Y-%m-%d %H:%M')}")
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, load average "
          f"{os.getloadavg()[0]:.2f}; torch {torch.__version__}; CUDA "
          f"{torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'none'}")


def generation(bars: int) -> None:
    from bench_generate import report

    from arranger.weights import load_models

    print(f"\n## Generation ({bars} bars)")
    report(load_models(), bars)


def corpus_parsing(n_files: int) -> None:
    import music21

    from arranger.corpus.files import read_file

    songs = sorted((CORPUS / "pop909" / "POP909").glob("*/*.mid"))[:n_files]
    if not songs:
        print("\n## Corpus preparation: skipped (no ../shared/corpus)")
        return
    t = time.perf_counter()
    for path in songs:
        read_file(path.parent)
    ours = (time.perf_counter() - t) / len(songs)
    t = time.perf_counter()
    for path in songs:
        music21.converter.parse(str(path), forceSource=True)  # no cached pickle
    m21 = (time.perf_counter() - t) / len(songs)
    print(f"\n## Corpus preparation ({len(songs)} POP909 songs)")
    print(f"lofi read_file (parse + quantise + chords + key): {ours * 1000:.0f} ms/song; music21 "
          f"parse alone: {m21 * 1000:.0f} ms/song -> {m21 / ours:.1f}x faster (target >= 20x)")


def audio(seconds: float) -> None:
    from bench_audio import run

    run(5.0, "", ("wav", "mp3"))  # warm-up: imports and first calls count in whole_generate
    print(f"\n## Render + effects + stems + master ({seconds:.0f} s song, 4 layers)")
    for formats in (("wav",), ("wav", "mp3")):
        r = run(seconds, "", formats)
        busy = sum(r["stage_seconds"].values())
        shares = ", ".join(f"{k} {100 * v / busy:.0f}%" for k, v in r["stage_seconds"].items())
        print(f"{' + '.join(f.upper() for f in formats)} mix: wall {r['total_seconds']:.2f} s -> "
              f"{r['realtime_factor']:.1f}x real time (target >= 60x); CPU "
              f"{r['cpu_seconds']:.2f} s; stage shares: {shares}")


def training(device: str, seconds: float = 20.0) -> None:
    from tracks import melody
    from tracks.model import ConditionedLSTM, ModelConfig

    dev = torch.device(device)
    if dev.type == "cpu":
        torch.set_num_threads(len(os.sched_getaffinity(0)))
    batch, length = (64, 128) if dev.type == "cpu" else (512, 256)
    cfg = ModelConfig("melody", melody.VOCAB_SIZE, melody.COND_SIZES, melody.MULTI_HOT)
    model = ConditionedLSTM(cfg).to(dev)
    opt = torch.optim.AdamW(model.parameters())
    prev = torch.randint(0, cfg.vocab_size, (batch, length), device=dev)
    cond = torch.zeros(batch, length, len(cfg.cond_sizes), dtype=torch.long, device=dev)
    multi = torch.zeros(batch, length, 12, device=dev)
    steps, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=dev.type == "cuda"):
            logits, _ = model(prev, cond, multi)
        loss = torch.nn.functional.cross_entropy(logits.float().flatten(0, 1), prev.flatten())
        opt.zero_grad()
        loss.backward()
        opt.step()
        steps += 1
    if dev.type == "cuda":
        torch.cuda.synchronize()
    rate = steps * batch * length / (time.perf_counter() - start)
    target = " (target >= 3M on an H100-class GPU)" if dev.type == "cuda" else ""
    print(f"training {device}: B{batch} T{length} H{cfg.hidden}x{cfg.num_layers}: "
          f"{rate:,.0f} tokens/s{target}")


def distributed_training(n_songs: int, epochs: int) -> None:
    """`lofi train --nproc 1|2` on a few POP909 songs (melody): tokens/s and held-out bits/step.

    On a 2-core machine one process with 2 threads, one with 1 thread and 2 processes of 1
    thread each (DistributedDataParallel, gloo) are compared on the same songs and global batch.
    """
    import json

    songs = sorted((CORPUS / "pop909" / "POP909").glob("[0-9]*"))[:n_songs]
    if not songs:
        print("\n## Distributed training: skipped (no ../shared/corpus)")
        return
    print(f"\n## Distributed training (melody, {len(songs)} POP909 songs, {epochs} epochs, "
          "H256x2, global batch 16)")
    for nproc, threads in ((1, 2), (1, 1), (2, 1)):
        with tempfile.TemporaryDirectory() as tmp:
            cmd = [sys.executable, "-m", "arranger.cli", "train", *map(str, songs), "--out", tmp,
                   "--layers", "melody", "--epochs", str(epochs), "--batch-size", "16",
                   "--device", "cpu",
                   "--workers", "1", "--nproc", str(nproc), "--threads", str(threads)]
            start = time.perf_counter()
            subprocess.run(cmd, cwd=ROOT, check=True, capture_output=True)
            wall = time.perf_counter() - start
            card = json.loads((Path(tmp) / "model_card.json").read_text())["melody"]
        rates = [h["tokens_per_s"] for h in card["history"]]
        print(f"{nproc} process(es) x {threads} thread(s): {max(rates):,} tokens/s (best epoch; "
              f"median {sorted(rates)[len(rates) // 2]:,}), held-out "
              f"{card['val_bits_per_step']:.3f} bits/step, wall {wall:.0f} s")


def whole_generate(runs: int = 3) -> None:
    walls, peaks = [], []
    for _ in range(runs):  # the median of a few: a shared 2-core machine is noisy
        with tempfile.TemporaryDirectory() as tmp:
            cmd = [sys.executable, "-m", "arranger.cli.main", "generate", "--seed", "1", "--bars",
                   "56", "--out", str(Path(tmp) / "song")]
            start = time.perf_counter()
            child = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
            _, status, usage = os.wait4(child.pid, 0)  # this run's own peak, with its children
            walls.append(time.perf_counter() - start)
            child.returncode = os.waitstatus_to_exitcode(status)  # reaped here, not by Popen
            if child.returncode:
                raise RuntimeError(f"{' '.join(cmd)} failed")
            peaks.append(usage.ru_maxrss / 1024)
    print("\n## Whole `lofi generate` (56 bars at 72 bpm ~ 3 minutes; MIDI, pictures, stems, "
          "WAV + MP3)")
    print(f"wall median {sorted(walls)[len(walls) // 2]:.1f} s, best {min(walls):.1f} s of "
          f"{runs} (target <= 8 s); peak memory {max(peaks):.0f} MB (target <= 1024 MB)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="shorter runs, fewer files")
    args = ap.parse_args()
    header()
    generation(64)
    corpus_parsing(3 if args.quick else 8)
    audio(60.0 if args.quick else 180.0)
    print("\n## Training throughput")
    training("cpu", 5.0 if args.quick else 20.0)
    if torch.cuda.is_available():
        training("cuda", 20.0)
    distributed_training(8 if args.quick else 24, 2 if args.quick else 3)
    whole_generate(1 if args.quick else 3)


if __name__ == "__main__":
    main()
