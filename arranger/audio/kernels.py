"""scipy's compiled loops, loaded from their files alone.

Importing ``scipy.signal`` takes ~0.8 s and ``scipy.ndimage`` ~0.4 s, holding the GIL (they pull
in scipy.stats, interpolate, optimize and the array-API layers), beside the synthesis that
runs meanwhile: a song's first layers rendered 0.4-0.6 s slower. The audio stage needs only
three loops of theirs (an IIR filter, a running minimum and a running mean), which are
extension modules of their own: loaded by path, each takes milliseconds. Where a scipy lays
them out otherwise, the package is imported after all (slower, the same results).
"""

from __future__ import annotations

import importlib
import importlib.machinery
import importlib.util
import sys
import threading
from pathlib import Path
from types import ModuleType

_LOCK = threading.Lock()
_LOADED: dict[str, ModuleType] = {}

SOSFILT = "scipy.signal._sosfilt"  # _sosfilt(sos, x [n, samples], zi [n, sections, 2])
ND_IMAGE = "scipy.ndimage._nd_image"  # min_or_max_filter1d, uniform_filter1d
ND_NEAREST = 0  # ndimage's mode code for "nearest" (_ni_support._extend_mode_to_code)
KERNELS = (SOSFILT, ND_IMAGE)  # what the audio stage uses


def kernel(name: str) -> ModuleType:
    """The extension module ``name`` (one of the names above), loaded once, thread-safely."""
    with _LOCK:
        if name not in _LOADED:
            _LOADED[name] = sys.modules.get(name) or _load_alone(name)
        return _LOADED[name]


def preload() -> None:
    """Load every kernel the audio stage uses (a side thread's work while synthesis starts)."""
    for name in KERNELS:
        kernel(name)


def _load_alone(name: str) -> ModuleType:
    import scipy

    package, _, leaf = name.rpartition(".")
    folder = Path(scipy.__file__).parent / package.removeprefix("scipy.")
    for suffix in importlib.machinery.EXTENSION_SUFFIXES:
        path = folder / f"{leaf}{suffix}"
        if path.is_file():
            loader = importlib.machinery.ExtensionFileLoader(name, str(path))
            module = importlib.util.module_from_spec(
                importlib.util.spec_from_file_location(name, path, loader=loader))
            loader.exec_module(module)
            return module
    return importlib.import_module(name)  # laid out otherwise: through the package
