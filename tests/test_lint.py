"""The code stays ruff-clean (the rules are in pyproject.toml)."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_ruff_is_clean():
    ruff = shutil.which("ruff", path=str(Path(sys.executable).parent)) or shutil.which("ruff")
    if ruff is None:
        pytest.skip("ruff is not installed")
    result = subprocess.run([ruff, "check", "--quiet", "arranger", "tracks", "tests",
                             "benchmarks"], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


SOURCES = sorted([*ROOT.glob("arranger/**/*.py"), *ROOT.glob("tracks/*.py")])
MAX_MODULE_LINES, MAX_FUNCTION_LINES, MAX_TOP_MODULES = 400, 60, 12  # the house's sizes


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(ROOT)))
def test_modules_and_functions_stay_small(path):
    import ast

    source = path.read_text(encoding="utf-8")
    assert source.count("\n") <= MAX_MODULE_LINES
    long = [f"{node.name} ({node.end_lineno - node.lineno + 1} lines)"
            for node in ast.walk(ast.parse(source))
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
            and node.end_lineno - node.lineno + 1 > MAX_FUNCTION_LINES]
    assert not long, f"{path.name}: functions over {MAX_FUNCTION_LINES} lines: {long}"


def test_the_engine_shows_its_architecture():
    top = [p for p in (ROOT / "arranger").glob("*.py")]
    packages = [p for p in (ROOT / "arranger").iterdir() if (p / "__init__.py").is_file()]
    assert len(top) <= MAX_TOP_MODULES, sorted(p.name for p in top)
    assert len(packages) >= 3


def test_every_module_imports_on_its_own():
    """Importing any module first works: no import cycle waits for another module to go first.

    One interpreter, our modules forgotten before each import (third-party ones stay loaded,
    which keeps it quick)."""
    names = [".".join(p.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
             for p in SOURCES if p.name != "__main__.py"]
    code = ("import importlib, sys\n"
            f"for name in {names!r}:\n"
            "    for m in [m for m in sys.modules if m.split('.')[0] in ('arranger', 'tracks')]:\n"
            "        del sys.modules[m]\n"
            "    try:\n"
            "        importlib.import_module(name)\n"
            "    except Exception as e:\n"
            "        print(f'cannot import {name}: {type(e).__name__}: {e}')\n")
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                            text=True, timeout=300)  # (pyfluidsynth prints a line under CI=true)
    failed = [line for line in result.stdout.splitlines() if line.startswith("cannot import")]
    assert result.returncode == 0 and not failed, result.stdout + result.stderr
