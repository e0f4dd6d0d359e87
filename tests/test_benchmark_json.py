"""benchmarks/run.py --json: stable keys; the process-tree memory sampler it reports with."""

import importlib.util
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def _module(name: str):
    spec = importlib.util.spec_from_file_location(f"bench_{name}", BENCHMARKS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_json_holds_every_stable_key_and_the_machine(tmp_path):
    run = _module("run")
    meta = {"date": "2026-12-01 12:00", "machine": "x86_64", "cores": 2,
            "load_average": [1.0, 0.5, 0.2], "torch": "2.13.0+cpu", "cuda": None}
    figures = {"generate_64_bars_b1_s": 0.5, "whole_generate_peak_mb": 900.0,
               "distributed_training": [{"nproc": 2, "tokens_per_s": 11740}]}
    path = tmp_path / "bench.json"
    run.write_json(path, meta, figures)
    doc = json.loads(path.read_text())
    required = {"generate_64_bars_b1_s", "generate_64_bars_b16_ratio", "audio_realtime_x",
                "whole_generate_median_s", "whole_generate_peak_mb", "train_tokens_per_s"}
    assert required <= set(doc) and set(run.KEYS) <= set(doc)
    assert doc["generate_64_bars_b1_s"] == 0.5 and doc["audio_realtime_x"] is None  # not run
    assert doc["distributed_training"][0]["tokens_per_s"] == 11740
    assert {k: doc[k] for k in meta} == meta


def test_a_figure_without_a_stable_key_is_refused():
    run = _module("run")
    with pytest.raises(KeyError, match="generate_65_bars"):
        run.results_document({}, {"generate_65_bars_b1_s": 1.0})


@pytest.mark.skipif(not Path("/proc/self/statm").exists(), reason="needs Linux /proc")
def test_the_tree_peak_counts_a_child_and_its_forked_grandchild():
    tree = _module("process_tree")
    # The parent holds 120 MB, then forks a child that allocates 80 MB of its own; both wait.
    code = textwrap.dedent("""
        import os, sys, time
        big = b"x" * (120 * 2**20)  # written: resident
        pid = os.fork()
        if pid == 0:
            more = b"y" * (80 * 2**20)
            time.sleep(0.6)
            os._exit(0)
        time.sleep(0.8)
        os.waitpid(pid, 0)
    """)
    child = subprocess.Popen([sys.executable, "-c", code])
    with tree.TreePeak(child.pid, interval=0.01, scan_every=5) as peak:
        child.wait()
    figures = peak.figures()
    assert figures["processes"] == 2
    # Both at once: 120 + 80 (+ interpreters); the child's copy of the 120 counted once.
    assert 200 <= figures["peak_mb"] < figures["peak_rss_sum_mb"] - 60
    assert figures["hwm_sum_mb"] >= figures["peak_rss_sum_mb"] - 1  # an upper bound


def test_a_process_name_with_parentheses_still_gives_its_parent():
    tree = _module("process_tree")
    assert tree.parent_of(b"123 (a) b (c)) S 77 123 123 0 -1") == 77
    assert os.getpid() in tree.descendants(os.getppid())
