"""Plain-text report of a ``lofi eval`` result: metrics, bits/step, conditioning check."""

from __future__ import annotations

from collections.abc import Sequence

SETS = ("real", "lstm", "markov")
SET_NAMES = {"real": "real", "lstm": "LSTM", "markov": "Markov"}


def fmt(x, digits: int = 3) -> str:
    return "n/a" if x is None else f"{x:.{digits}f}"


def _pm(summary: dict) -> str:
    if summary["mean"] is None:
        return "n/a"
    return f"{summary['mean']:.3f} ± {summary['std']:.3f}"


def _grid(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    """Left-aligned first column, right-aligned others, two spaces apart."""
    table = [list(header), *[list(r) for r in rows]]
    widths = [max(len(r[i]) for r in table) for i in range(len(header))]
    lines = []
    for r in table:
        cells = [r[0].ljust(widths[0])] + [c.rjust(w) for c, w in zip(r[1:], widths[1:],
                                                                          strict=True)]
        lines.append("  ".join(cells).rstrip())
    lines.insert(1, "-" * len(lines[0]))
    return lines


def format_table(result: dict) -> str:
    """The result of :func:`evaluate` as one plain-text report (metrics, bits, conditioning)."""
    cfg, data = result["config"], result["data"]
    held = ", ".join(f"{k} {v}" for k, v in sorted(data["held_out_by_dataset"].items()))
    lines = [f"lofi eval: {data['held_out_songs']} held-out real songs ({held}); "
             f"{cfg['n']} LSTM and {cfg['n']} Markov songs of {cfg['bars']} bars",
             "", "Metrics: mean ± sd per song; overlap = MGEval overlapping area with real "
             "(1 = same distribution)"]
    rows = []
    for name, m in result["metrics"].items():
        rows.append([name, _pm(m["real"]), _pm(m["lstm"]), fmt(m["lstm"]["overlap"]),
                     _pm(m["markov"]), fmt(m["markov"]["overlap"])])
    lines += _grid(["metric", "real", "LSTM", "overlap", "Markov", "overlap"], rows)
    lines += ["", "Held-out bits/step (lower is better)"]
    rows = []
    for layer, b in result["bits_per_step"].items():
        gain = ("n/a" if b["lstm"] is None
                else f"{b['gain_bits']:+.3f} bits ({b['gain_percent']:+.1f}%)")
        rows.append([layer, f"{b['tokens']:,}", fmt(b["lstm"]), fmt(b["markov"]),
                     fmt(b["unigram"]), gain])
    lines += _grid(["layer", "tokens", "LSTM", "Markov", "unigram", "LSTM gain over Markov"], rows)
    lines += ["", "Conditioning check: melody over its own chords vs chords of another song"]
    cond = result["conditioning"]
    rows = [[SET_NAMES[k], str(cond[k]["songs"]), fmt(cond[k]["chord_tone_ratio"]["true"]),
             fmt(cond[k]["chord_tone_ratio"]["shuffled"]), fmt(cond[k]["tonal_distance"]["true"]),
             fmt(cond[k]["tonal_distance"]["shuffled"])] for k in SETS]
    lines += _grid(["songs", "n", "chord_tone_ratio true", "shuffled", "tonal_distance true",
                    "shuffled"], rows)
    bits = cond["melody_bits"]
    lines += ["", f"melody bits/step on {bits.get('songs', 0)} held-out songs with true / "
              "shuffled chords (gap): " + "; ".join(
                  f"{SET_NAMES[k]} {fmt(bits[k]['true'])} / {fmt(bits[k]['shuffled'])} "
                  f"({fmt(_gap(bits[k]))})" for k in ("lstm", "markov"))]
    return "\n".join(lines)


# --- two or more results side by side (e.g. old weights vs new) ------------------------------

GAIN_TARGET = 15.0  # percent fewer bits/step than the Markov baseline, every layer (issue #16)
GAP_TARGET = 0.15  # melody bits/step lost with shuffled chords, at least


def _gap(bits: dict) -> float | None:
    """Shuffled minus true chords; derived, so results written before it was stored work too."""
    if bits.get("true") is None or bits.get("shuffled") is None:
        return None
    return bits["shuffled"] - bits["true"]


def _gain(b: dict) -> str:
    return "n/a" if b.get("lstm") is None else f"{b['gain_percent']:+.1f}%"


def format_comparison(results: dict[str, dict]) -> str:
    """Named ``lofi eval`` results side by side: per layer LSTM and Markov bits/step and the gain
    (target >= 15%), the melody's conditioning gap (target >= 0.15) and each metric's overlap."""
    names = list(results)
    first = next(iter(results.values()))
    rows = [[layer, *(f"{fmt(r['bits_per_step'][layer]['lstm'])} / "
                      f"{fmt(r['bits_per_step'][layer]['markov'])} "
                      f"({_gain(r['bits_per_step'][layer])})" for r in results.values())]
            for layer in first["bits_per_step"]]
    lines = [f"Held-out bits/step, LSTM / Markov (gain; target >= {GAIN_TARGET:g}%)"]
    lines += _grid(["layer", *names], rows)
    gaps = [[SET_NAMES[k], *(fmt(_gap(r["conditioning"]["melody_bits"][k]))
                             for r in results.values())] for k in ("lstm", "markov")]
    lines += ["", f"Melody conditioning gap, bits/step shuffled - true chords "
                  f"(target >= {GAP_TARGET:g})"]
    lines += _grid(["model", *names], gaps)
    rows = [[metric, *(f"{fmt(r['metrics'][metric]['lstm']['overlap'])} / "
                       f"{fmt(r['metrics'][metric]['markov']['overlap'])}"
                       for r in results.values())] for metric in first["metrics"]]
    lines += ["", "MGEval overlapping area with real songs, LSTM / Markov (1 = same distribution)"]
    return "\n".join(lines + _grid(["metric", *names], rows))


def main(argv: Sequence[str] | None = None) -> None:
    """``python -m arranger.evaluation.report A.json B.json ...``: files of ``lofi eval --json``
    side by side, each column named by its file name."""
    import json
    import sys
    from pathlib import Path

    paths = [Path(a) for a in (sys.argv[1:] if argv is None else argv)]
    if not paths:
        raise SystemExit("usage: python -m arranger.evaluation.report EVAL.json [EVAL.json ...]")
    print(format_comparison({p.stem: json.loads(p.read_text()) for p in paths}))


# --- per-preset musical checks (arranger.evaluation.preset_checks) -----------------------------

DRUM_COLUMNS = ("backbeat", "kick_on_1", "groove", "time_keeping")
HIT_CLASSES = ("kick", "snare", "closed_hat", "ride")


def format_pass_table(result: dict) -> list[str]:
    """Share of songs passing each check (and all), one row per preset."""
    presets = result["presets"]
    checks = list(next(iter(presets.values()))["pass"])
    cfg = result["config"]
    lines = [f"Musical checks: share of {cfg['n']} songs of {cfg['bars']} bars per preset "
             f"passing (seed {cfg['seed']})"]
    rows = [[name, *(fmt(p["pass"][c], 2) for c in checks)] for name, p in presets.items()]
    return lines + _grid(["preset", *checks], rows)


def format_drum_table(rows: dict[str, dict]) -> list[str]:
    """Drum statistics per row (a preset or a corpus style): shares of bars, hits per bar and
    mean velocity per class."""
    header = ["drums", "bars", *DRUM_COLUMNS, *(f"{c}/bar" for c in HIT_CLASSES),
              *(f"vel {c}" for c in HIT_CLASSES)]
    table = [[name, str(d["bars"]), *(fmt(d[c], 2) for c in DRUM_COLUMNS),
              *(fmt(d["hits_per_bar"][c], 1) for c in HIT_CLASSES),
              *(fmt(d["velocity"][c], 0) for c in HIT_CLASSES)]
             for name, d in rows.items() if d.get("bars")]
    return _grid(header, table)


def format_presets(result: dict, corpus: dict[str, dict] | None = None) -> str:
    """The pass table, drum statistics (beside ``corpus`` rows, e.g. Groove MIDI styles) and
    the share of identical drum steps between presets at the same seed."""
    drums = {name: p["drums"] for name, p in result["presets"].items()}
    drums |= {f"corpus {k}": v for k, v in (corpus or {}).items()}
    lines = format_pass_table(result) + ["", "Drum statistics per bar (shares of bars, hits "
                                             "per bar, mean MIDI velocity)"]
    lines += format_drum_table(drums)
    same = result["same_drums"]
    if same:
        lines += ["", "Same seed, different presets: share of identical drum steps "
                      "(1 = the same drums)"]
        lines += _grid(["presets", "identical"], [[k, fmt(v, 2)] for k, v in same.items()])
    return "\n".join(lines)


if __name__ == "__main__":
    main()
