"""Musical checks per shipped preset, drum statistics beside the Groove MIDI corpus's styles.

Run: .venv/bin/python benchmarks/music_checks.py [--n 32] [--seed 0] [--weights DIR] [--json FILE]

For every shipped preset, N songs (one batch, the preset's plan, like ``lofi generate
--variations N``) are checked with :mod:`arranger.evaluation.checks`; the table gives the share
passing each check and all. Drum statistics per preset sit beside those of the Groove MIDI
performances of the lo-fi styles (phase-aligned and trimmed, :mod:`arranger.corpus.groove`),
whose backbeat share per style before and after phase correction and trimming is printed too.
Last, the share of identical drum steps between presets at the same seed. The corpus side is
cached as JSON under ``--cache`` (keyed by info.csv's size and mtime).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from arranger.corpus.groove import (  # noqa: E402
    INFO_FILE,
    LOFI_STYLES,
    Performance,
    backbeat_report,
    hit_velocity,
    performances,
)
from arranger.evaluation.drum_stats import drum_stats  # noqa: E402
from arranger.evaluation.preset_checks import check_presets, resolve_presets  # noqa: E402
from arranger.evaluation.report import _grid, fmt, format_presets  # noqa: E402

GROOVE = Path(os.environ.get("LOFI_CORPUS", ROOT.parent / "shared" / "corpus")) / "groove-gmd"
CACHE_VERSION = 2  # bump when groove.py or drum_stats.py change what they measure


def corpus_side(root: Path, cache: Path) -> dict:
    """Drum statistics per lo-fi style of the trimmed, phased performances, and the backbeat
    report; cached."""
    info = (root / INFO_FILE).stat()
    key = hashlib.sha256(f"{CACHE_VERSION}:{root.resolve()}:{info.st_size}:{info.st_mtime_ns}"
                         .encode()).hexdigest()[:16]
    path = cache / f"groove-{key}.json"
    if path.is_file():
        return json.loads(path.read_text())
    perfs = performances(root, LOFI_STYLES)
    kept = [p for p in perfs if p.score is not None]
    stats = {s: drum_stats([played(p) for p in kept if p.style == s]) for s in LOFI_STYLES}
    excluded: dict[str, int] = {}
    for p in perfs:
        if p.score is None:
            reason = p.reason.split(":")[0]
            excluded[reason] = excluded.get(reason, 0) + 1
    out = {"drums": stats, "backbeat": backbeat_report(perfs), "excluded": excluded}
    cache.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(out, indent=1))
    return out


def played(perf: Performance):
    """The performance's score with each hit's velocity as the drummer played it (the readers
    keep only step levels), so velocity statistics compare with a table's."""
    try:
        return perf.score.copy(drum_hit_velocity=hit_velocity(perf))
    except ValueError:
        return perf.score


def format_backbeat(report: dict) -> str:
    """The corpus's backbeat shares per style as a table."""
    rows = []
    for style, r in report.items():
        b, g, bars = r["backbeat_files"], r["groove_check_files"], r["backbeat_bars"]
        rows.append([style, str(r["read"]), str(r["kept"]),
                     *(fmt(b[k], 2) for k in ("nominal", "phased", "phased_trimmed")),
                     *(fmt(g[k], 2) for k in ("nominal", "phased_trimmed")),
                     *(fmt(v, 2) for v in bars.values())])
    header = ["style", "beats", "kept", "backbeat files: nominal", "phased", "+trimmed",
              "groove check: nominal", "+phase/trim", "bars: nominal", "phased+trimmed",
              "first 8", "after 8"]
    return "\n".join(["Groove MIDI beats: share of files with a backbeat (snare 2+4 and kick 1 "
                      "in >= 3/4 of bars), passing the groove check, and share of such bars",
                      *_grid(header, rows)])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=32, help="songs per preset")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--bars", type=int, default=32)
    ap.add_argument("--presets", default="all", help="'all' or comma-separated names")
    ap.add_argument("--groove", type=Path, default=GROOVE, help="Groove MIDI folder")
    ap.add_argument("--weights", type=Path, default=None,
                    help="weights folder to generate with (default: the shipped weights)")
    ap.add_argument("--cache", type=Path, default=Path("/tmp/music-checks"))
    ap.add_argument("--json", type=Path, default=None, help="also write the results here")
    args = ap.parse_args()
    started = time.monotonic()
    result = check_presets(resolve_presets(args.presets), n=args.n, seed=args.seed,
                           bars=args.bars, weights_dir=args.weights)
    generated = time.monotonic() - started
    corpus = corpus_side(args.groove, args.cache) if (args.groove / INFO_FILE).is_file() else None
    print(format_presets(result, corpus["drums"] if corpus else None))
    if corpus:
        print("\n" + format_backbeat(corpus["backbeat"]))
        print(f"excluded performances: {corpus['excluded']}")
    print(f"\n{len(result['presets'])} presets x {args.n} songs generated and checked in "
          f"{generated:.1f} s; total {time.monotonic() - started:.1f} s")
    if args.json:
        from arranger.atomic import write_text

        write_text(args.json, json.dumps(result | {"corpus": corpus}, indent=1) + "\n")


if __name__ == "__main__":
    main()
