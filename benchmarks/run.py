"""All speed and memory figures, measured side by side in one run, printed as ratios.

Run: .venv/bin/python benchmarks/run.py [--quick] [--json FILE]
Keep the printed figures, with date and machine, in benchmarks/RESULTS.md. ``--json`` also
writes every printed figure under the stable keys of :data:`KEYS` (null where a part was
skipped, e.g. no corpus), with the machine, the date, the load average and the torch version.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))
CORPUS = Path(os.environ.get("LOFI_CORPUS", ROOT.parent / "shared" / "corpus"))
WHOLE_BARS = 56  # ~3 minutes at the default preset's 72 bpm

# The figures --json always holds (null when not measured), and what each one is.
KEYS = {
    "generate_64_bars_b1_s": "64 bars, batch 1, numpy stateful path (best of 3)",
    "generate_64_bars_b16_s": "64 bars, 16 variations in one batch (best of 2)",
    "generate_64_bars_b16_ratio": "b16 seconds / b1 seconds (target <= 2)",
    "generate_64_bars_b1_model_s": "of b1: seconds inside the LSTM steps",
    "generate_64_bars_torch_b1_s": "the same song through the PyTorch stateful path",
    "generate_64_bars_torch_b16_s": "16 variations through the PyTorch stateful path",
    "generate_64_bars_window_b1_s": "PyTorch re-running a 100-step window per step, b1",
    "generate_64_bars_window_b16_s": "the same, b16",
    "generate_window_vs_numpy_x": "window b1 / numpy b1 (target >= 20)",
    "corpus_read_ms_per_song": "lofi read_file of a POP909 song",
    "corpus_music21_ms_per_song": "music21 parse alone of the same songs",
    "corpus_speedup_x": "music21 / lofi (target >= 20)",
    "audio_realtime_x": "render + effects + stems + master, WAV mix: seconds of music per wall "
                        "second (target >= 60)",
    "audio_wall_s": "wall seconds of that", "audio_cpu_s": "CPU seconds of that",
    "audio_mp3_realtime_x": "the same with the MP3 too",
    "audio_stage_shares": "share of thread-seconds per stage, WAV mix",
    "train_tokens_per_s": "training throughput, CPU",
    "train_cuda_tokens_per_s": "training throughput, CUDA (null without a GPU)",
    "distributed_training": "lofi train --nproc/--threads runs: tokens/s, bits/step, wall",
    "whole_generate_median_s": "whole `lofi generate`, 56 bars: median wall (target <= 5)",
    "whole_generate_best_s": "its best run",
    "whole_generate_cpu_s": "its median CPU seconds, the picture process included",
    "whole_generate_peak_mb": "its process tree's peak footprint: the main process's RSS + "
                              "its children's private pages (target <= 1024)",
    "whole_generate_rss_sum_mb": "the tree's peak summed RSS (shared pages counted twice)",
    "whole_generate_hwm_sum_mb": "sum of each process's own peak: an upper bound",
    "whole_generate_runs": "timed runs (after one warm-up)",
}


def machine() -> dict[str, Any]:
    """Where and when the figures were taken."""
    import torch

    cuda = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    return {"date": time.strftime("%Y-%m-%d %H:%M"), "machine": platform.machine(),
            "processor": platform.processor(), "cores": os.cpu_count(),
            "load_average": [round(x, 2) for x in os.getloadavg()],
            "torch": torch.__version__, "cuda": cuda}


def header(meta: dict[str, Any]) -> None:
    print(f"# lofi benchmarks, {meta['date']}")
    print(f"machine: {meta['machine']}, {meta['cores']} cores, load average "
          f"{meta['load_average'][0]:.2f}; torch {meta['torch']}; CUDA {meta['cuda'] or 'none'}")


def results_document(meta: dict[str, Any], figures: dict[str, Any]) -> dict[str, Any]:
    """The --json document: ``meta`` (machine, date, load...) and every key of :data:`KEYS`
    (null where not measured); a figure without a key there is refused (keys stay stable)."""
    unknown = sorted(set(figures) - set(KEYS))
    if unknown:
        raise KeyError(f"figures without a stable key: {unknown}")
    return {**meta, **{key: figures.get(key) for key in KEYS}}


def write_json(path: Path, meta: dict[str, Any], figures: dict[str, Any]) -> None:
    """Write :func:`results_document` to ``path`` (atomically: a reader never sees half)."""
    from arranger.atomic import write_text

    write_text(path, json.dumps(results_document(meta, figures), indent=1) + "\n")


def generation(bars: int) -> dict[str, float]:
    """Numpy vs PyTorch vs a re-run window, at batch 1 and 16 (bench_generate's timings)."""
    import torch
    from bench_generate import (
        TARGET_B1_SECONDS,
        TARGET_B16_RATIO,
        model_seconds,
        time_compose,
        windowed,
    )

    from arranger.weights import load_models

    models, cpu = load_models(), torch.device("cpu")
    b1, b16 = time_compose(models, bars), time_compose(models, bars, 16, 2)
    one, sixteen = b1.seconds, b16.seconds
    torch1 = time_compose(models, bars, device=cpu).seconds
    torch16 = time_compose(models, bars, 16, repeat=2, device=cpu).seconds
    win1 = time_compose(windowed(models), bars, repeat=1, device=cpu).seconds
    win16 = time_compose(windowed(models), bars, 16, repeat=1, device=cpu).seconds
    model = model_seconds(models, bars)
    print(f"\n## Generation ({bars} bars)")
    print(f"{bars} bars, 3 layer models, CPU (generation_mode: 1 torch thread, "
          f"{b1.blas_threads} and {b16.blas_threads} BLAS threads at b1 and b16: they follow "
          "the load average)")
    print(f"  numpy stateful    b1 {one:6.3f} s   b16 {sixteen:6.3f} s "
          f"({sixteen / one:.2f}x one; targets <= {TARGET_B1_SECONDS} s and "
          f"<= {TARGET_B16_RATIO:g}x)")
    print(f"  of which LSTM steps (model time) at b1: {model:.3f} s; sampling, masks and "
          f"conditions: {one - model:.3f} s")
    print(f"  torch stateful    b1 {torch1:6.3f} s   b16 {torch16:6.3f} s")
    print(f"  torch 100-window  b1 {win1:6.3f} s   b16 {win16:6.3f} s")
    print(f"  carried state vs re-running the window (same torch model): {win1 / torch1:.1f}x at "
          f"b1, {win16 / torch16:.1f}x at b16; numpy path vs window: {win1 / one:.1f}x "
          "(target >= 20x)")
    prefix = f"generate_{bars}_bars"
    return {f"{prefix}_b1_s": one, f"{prefix}_b16_s": sixteen,
            f"{prefix}_b16_ratio": sixteen / one, f"{prefix}_b1_model_s": model,
            f"{prefix}_torch_b1_s": torch1, f"{prefix}_torch_b16_s": torch16,
            f"{prefix}_window_b1_s": win1, f"{prefix}_window_b16_s": win16,
            "generate_window_vs_numpy_x": win1 / one}


def corpus_parsing(n_files: int) -> dict[str, float]:
    songs = sorted((CORPUS / "pop909" / "POP909").glob("*/*.mid"))[:n_files]
    if not songs:
        print("\n## Corpus preparation: skipped (no ../shared/corpus)")
        return {}
    import music21

    from arranger.corpus.files import read_file

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
    return {"corpus_read_ms_per_song": ours * 1000, "corpus_music21_ms_per_song": m21 * 1000,
            "corpus_speedup_x": m21 / ours}


def audio(seconds: float) -> dict[str, Any]:
    from bench_audio import run

    run(5.0, "", ("wav", "mp3"))  # warm-up: imports and first calls count in whole_generate
    print(f"\n## Render + effects + stems + master ({seconds:.0f} s song, 4 layers)")
    figures: dict[str, Any] = {}
    for formats in (("wav",), ("wav", "mp3")):
        r = run(seconds, "", formats)
        busy = sum(r["stage_seconds"].values())
        shares = {k: v / busy for k, v in r["stage_seconds"].items()}
        print(f"{' + '.join(f.upper() for f in formats)} mix: wall {r['total_seconds']:.2f} s -> "
              f"{r['realtime_factor']:.1f}x real time (target >= 60x); CPU "
              f"{r['cpu_seconds']:.2f} s; stage shares: "
              + ", ".join(f"{k} {100 * v:.0f}%" for k, v in shares.items()))
        if formats == ("wav",):
            figures |= {"audio_realtime_x": r["realtime_factor"], "audio_wall_s":
                        r["total_seconds"], "audio_cpu_s": r["cpu_seconds"],
                        "audio_stage_shares": shares}
        else:
            figures["audio_mp3_realtime_x"] = r["realtime_factor"]
    return figures


def training(device: str, seconds: float = 20.0) -> float:
    """Training tokens per second of the melody model on random batches."""
    import torch

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
    return rate


def distributed_training(n_songs: int, epochs: int) -> dict[str, list]:
    """`lofi train --nproc 1|2` on a few POP909 songs (melody): tokens/s and held-out bits/step.

    On a 2-core machine one process with 2 threads, one with 1 thread and 2 processes of 1
    thread each (DistributedDataParallel, gloo) are compared on the same songs and global batch.
    """
    songs = sorted((CORPUS / "pop909" / "POP909").glob("[0-9]*"))[:n_songs]
    if not songs:
        print("\n## Distributed training: skipped (no ../shared/corpus)")
        return {}
    print(f"\n## Distributed training (melody, {len(songs)} POP909 songs, {epochs} epochs, "
          "H256x2, global batch 16)")
    runs = []
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
        median = sorted(rates)[len(rates) // 2]
        print(f"{nproc} process(es) x {threads} thread(s): {max(rates):,} tokens/s (best epoch; "
              f"median {median:,}), held-out {card['val_bits_per_step']:.3f} bits/step, "
              f"wall {wall:.0f} s")
        runs.append({"nproc": nproc, "threads": threads, "tokens_per_s": max(rates),
                     "median_tokens_per_s": median,
                     "val_bits_per_step": card["val_bits_per_step"], "wall_s": wall})
    return {"distributed_training": runs}


def whole_run(env: dict[str, str]) -> dict[str, float]:
    """One whole `lofi generate` in a fresh process: wall, CPU (its children included) and the
    peaks of its process tree (:class:`process_tree.TreePeak`)."""
    from process_tree import TreePeak

    with tempfile.TemporaryDirectory() as tmp:
        cmd = [sys.executable, "-m", "arranger.cli.main", "generate", "--seed", "1", "--bars",
               str(WHOLE_BARS), "--out", str(Path(tmp) / "song")]
        start = time.perf_counter()
        child = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                                 stderr=subprocess.DEVNULL)
        with TreePeak(child.pid) as peak:
            _, status, usage = os.wait4(child.pid, 0)
        wall = time.perf_counter() - start
        child.returncode = os.waitstatus_to_exitcode(status)  # reaped here, not by Popen
        if child.returncode:
            raise RuntimeError(f"{' '.join(cmd)} failed")
    return {"wall_s": wall, "cpu_s": usage.ru_utime + usage.ru_stime} | peak.figures()


def whole_generate(runs: int = 3) -> dict[str, float]:
    """Median of ``runs`` whole generates after one warm-up (page cache, bytecode).

    The project's own modules are byte-compiled once into a cache of the run's, as an install
    would have them (this sandbox sets PYTHONDONTWRITEBYTECODE, which recompiles them at every
    start, ~0.2 s that no installed lofi pays).
    """
    with tempfile.TemporaryDirectory() as cache:
        env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
        env["PYTHONPYCACHEPREFIX"] = cache
        whole_run(env)  # warm-up
        done = [whole_run(env) for _ in range(runs)]  # a shared 2-core machine is noisy
    walls = [r["wall_s"] for r in done]
    peak, rss, bound = (max(r[k] for r in done) for k in ("peak_mb", "peak_rss_sum_mb",
                                                          "hwm_sum_mb"))
    print(f"\n## Whole `lofi generate` ({WHOLE_BARS} bars at 72 bpm ~ 3 minutes; MIDI, pictures, "
          "stems, WAV + MP3)")
    print(f"wall median {statistics.median(walls):.1f} s, best {min(walls):.1f} s of {runs} "
          f"(target <= 5 s); CPU {statistics.median(r['cpu_s'] for r in done):.1f} s; peak "
          f"memory {peak:.0f} MB (target <= 1024 MB: main RSS + the picture process's private "
          f"pages, sampled every 10 ms; summed RSS {rss:.0f} MB; sum of each process's own "
          f"peak {bound:.0f} MB)")
    return {"whole_generate_median_s": statistics.median(walls),
            "whole_generate_best_s": min(walls),
            "whole_generate_cpu_s": statistics.median(r["cpu_s"] for r in done),
            "whole_generate_peak_mb": peak, "whole_generate_rss_sum_mb": rss,
            "whole_generate_hwm_sum_mb": bound,
            "whole_generate_runs": runs}


PARTS = ("generation", "corpus", "audio", "training", "distributed", "whole")


def measure(parts: tuple[str, ...], quick: bool, cuda: bool) -> dict[str, Any]:
    """The figures of the asked-for ``parts`` of :data:`PARTS`, printed as they come."""
    figures: dict[str, Any] = {}
    if "generation" in parts:
        figures |= generation(64)
    if "corpus" in parts:
        figures |= corpus_parsing(3 if quick else 8)
    if "audio" in parts:
        figures |= audio(60.0 if quick else 180.0)
    if "training" in parts:
        print("\n## Training throughput")
        figures["train_tokens_per_s"] = training("cpu", 5.0 if quick else 20.0)
        if cuda:
            figures["train_cuda_tokens_per_s"] = training("cuda", 20.0)
    if "distributed" in parts:
        figures |= distributed_training(8 if quick else 24, 2 if quick else 3)
    if "whole" in parts:
        figures |= whole_generate(1 if quick else 3)
    return figures


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="shorter runs, fewer files")
    ap.add_argument("--json", type=Path, default=None, help="also write the figures here")
    ap.add_argument("--only", nargs="+", choices=PARTS, default=PARTS, help="parts to measure")
    args = ap.parse_args()
    meta = machine()
    header(meta)
    figures = measure(tuple(args.only), args.quick, bool(meta["cuda"]))
    if args.json:
        meta |= {"load_average_end": [round(x, 2) for x in os.getloadavg()],
                 "quick": args.quick, "parts": list(args.only)}
        write_json(args.json, meta, figures)
        print(f"\nwrote {args.json}")


if __name__ == "__main__":
    main()
