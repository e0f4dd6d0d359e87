"""Crafted weights files are refused from their header alone: one line, bounded memory."""

from __future__ import annotations

import json
import struct
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import PEAK_RSS_KB
from tracks.weights_file import MAX_MODEL_BYTES, WeightsError, read_weights, tensor_shapes

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = ROOT / "tracks" / "weights" / "drums.safetensors"


def _config(**changes) -> dict:
    meta = json.loads(_header(SHIPPED)["__metadata__"]["config"])
    return meta | changes


def _header(path: Path) -> dict:
    with open(path, "rb") as f:
        (size,) = struct.unpack("<Q", f.read(8))
        return json.loads(f.read(size))


def _write(path: Path, config: dict, dtype: str = "F32", extra: dict | None = None,
           meta: dict | None = None) -> Path:
    """A safetensors file whose header declares ``config``'s tensors; data left sparse."""
    from tracks.weights_file import ModelConfig

    shapes = tensor_shapes(ModelConfig.from_dict(config))
    header, offset = {}, 0
    for name, shape in {**shapes, **(extra or {})}.items():
        n = {"F16": 2, "F32": 4}.get(dtype, 8)
        for dim in shape:
            n *= dim
        header[name] = {"dtype": dtype, "shape": list(shape), "data_offsets": [offset, offset + n]}
        offset += n
    header["__metadata__"] = meta or {"config": json.dumps(config), "vocab": "[]", "card": "{}"}
    blob = json.dumps(header).encode()
    blob += b" " * (-len(blob) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(blob)) + blob)
        f.truncate(8 + len(blob) + offset)  # sparse: gigabytes declared, nothing on disk
    return path


def test_a_header_declaring_gigabytes_is_refused_before_any_tensor_is_read(tmp_path):
    path = _write(tmp_path / "drums.safetensors", _config(hidden=16384))  # ~3 GiB of LSTM
    code = ("import sys\nfrom tracks.weights_file import read_weights, WeightsError\n"
            "try:\n    read_weights(sys.argv[1], 'drums')\nexcept WeightsError as e:\n"
            f"    print(e)\nprint({PEAK_RSS_KB} // 1024)\n")
    out = subprocess.run([sys.executable, "-c", code, str(path)], cwd=ROOT, capture_output=True,
                         text=True, timeout=60)
    message, peak_mb = out.stdout.strip().splitlines()
    assert f"expected at most {MAX_MODEL_BYTES // 2**20} MB" in message
    assert int(peak_mb) < 1024


@pytest.mark.parametrize(("config", "extra", "dtype", "needle"), [
    (_config(hidden="256"), None, "F32", "hidden"),
    (_config(cond_sizes="abc"), None, "F32", "cond_sizes"),
    (_config(), {"evil": (3,)}, "F32", "do not match the config"),
    (_config(), None, "I64", "dtype I64"),
    (_config(layer="melody"), None, "F32", "expected 'drums'"),
])
def test_crafted_configs_and_tensors_are_one_line(tmp_path, config, extra, dtype, needle):
    if not isinstance(config["hidden"], int) or not isinstance(config["cond_sizes"], list):
        path = _write(tmp_path / "w.safetensors", _config(),
                      meta={"config": json.dumps(config), "vocab": "[]"})
    else:
        path = _write(tmp_path / "w.safetensors", config, dtype=dtype, extra=extra)
    with pytest.raises(WeightsError) as e:
        read_weights(path, "drums")
    assert needle in str(e.value) and "\n" not in str(e.value)


def test_metadata_that_is_not_json_is_one_line(tmp_path):
    path = _write(tmp_path / "w.safetensors", _config(), meta={"config": "{not json"})
    with pytest.raises(WeightsError, match="not valid JSON"):
        read_weights(path, "drums")


def test_the_shipped_weights_still_load():
    weights = read_weights(SHIPPED, "drums")
    assert weights.config.layer == "drums" and weights.numpy_arrays()
