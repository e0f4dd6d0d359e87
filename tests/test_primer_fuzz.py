"""Hostile primers: `lofi generate --primer` on damaged MIDI never gives a traceback."""

from __future__ import annotations

import random

from typer.testing import CliRunner

from arranger.cli.main import app
from tests.helpers import save_models, tiny_models
from tests.test_render_fuzz import _save, base_midi, huge_inputs, mutants

runner = CliRunner()


def test_damaged_primers_are_one_line_or_continued(tmp_path):
    weights = save_models(tiny_models(), tmp_path / "weights")
    cases = mutants(_save(base_midi()), random.Random(3)) | huge_inputs()
    outcomes = {}
    for name, raw in sorted(cases.items())[::2]:  # half of them: the reader is fuzzed elsewhere
        src, out = tmp_path / f"{name}.mid", tmp_path / f"out_{name}"
        src.write_bytes(raw)
        result = runner.invoke(app, ["generate", "--primer", str(src), "--bars", "4",
                                     "--weights", str(weights), "--no-render", "--out", str(out)])
        assert result.exception is None or isinstance(result.exception, SystemExit), (
            f"{name}: {result.exception!r}")
        lines = [line for line in result.stderr.splitlines() if line.strip()]
        if result.exit_code != 0:
            assert result.exit_code == 2 and len(lines) == 1, (name, lines)
            assert str(src) in lines[0] and not out.exists(), (name, lines)
        else:
            assert (out / "score.mid").is_file(), name
        outcomes[name] = result.exit_code
    assert outcomes["empty"] == 2 and 0 in outcomes.values()
