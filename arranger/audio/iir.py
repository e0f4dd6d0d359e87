"""IIR filtering in blocks, kept out of subnormal floats: the loop the Butterworth effects
(:mod:`arranger.audio.fx`) and the loudness meter (:mod:`arranger.audio.loudness`) share.

scipy's ``sosfilt`` copies its input to float64 (a whole stem's channel would cost 67 MB at
once), and in silence an IIR filter's state decays into subnormal floats, ~100x slower to
compute: a drum stem silent a third of the time filtered 2-3x slower, and metered 3x slower.
So a channel is filtered a block at a time, the state carried over (the same output as one
call), on a -400 dBFS guard tone the filter passes: at DC (a low-pass) or at Nyquist (a
high-pass, the K-weighting, whose 38 Hz high-pass would remove a DC tone).

Neither the design nor the filtering imports ``scipy.signal`` (~0.8 s holding the GIL): the loop
is scipy's own compiled one, loaded alone (:mod:`arranger.audio.kernels`).
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from arranger.audio.kernels import SOSFILT, kernel

GUARD = 1e-20  # far below float32's step at any audible level, far above subnormal float64
BLOCK = 1 << 18  # samples a block (even: the Nyquist tone keeps its phase from block to block)


def guarded_sosfilt(sos: np.ndarray, channel: np.ndarray, *, dc: bool, block: int = BLOCK
                    ) -> Iterator[tuple[slice, np.ndarray, np.ndarray]]:
    """``sosfilt(sos, channel)`` block by block: yields (where, the filtered block, float64
    with the guard tone still in it, the tone added there).

    A caller whose filter passes the tone at gain 1 subtracts it (the Butterworth effects);
    a meter may leave it in: its power, ~1e-40, is nothing beside any gate. ``block`` must be
    even.
    """
    if block % 2:
        raise ValueError(f"block = {block}: expected an even number of samples")
    tone = np.full(min(block, len(channel)), GUARD)
    if not dc:
        tone[1::2] = -GUARD
    sos, state = np.asarray(sos, dtype=np.float64), np.zeros((1, len(sos), 2))
    for start in range(0, len(channel), block):
        x = channel[start : start + block]
        guard = tone[: len(x)]
        y = np.add(x, guard, dtype=np.float64)[None]  # a block of its own: filtered in place
        kernel(SOSFILT)._sosfilt(sos, y, state)  # state carried over, in place
        yield slice(start, start + len(x)), y[0], guard


# Each section's zeros: a pole pair's two, a lone real pole's one (z = -1 at Nyquist, 1 at DC)
_NUMERATORS = {"lowpass": ([1.0, 2.0, 1.0], [1.0, 1.0, 0.0]),
               "highpass": ([1.0, -2.0, 1.0], [1.0, -1.0, 0.0]),
               "bandpass": ([1.0, 0.0, -1.0], None)}


def butterworth_sos(order: int, cutoff_hz: float | tuple[float, float], sample_rate: float,
                    kind: str) -> np.ndarray:
    """A digital Butterworth filter as second-order sections: ``"lowpass"`` or ``"highpass"`` at
    ``cutoff_hz``, or ``"bandpass"`` between ``cutoff_hz = (low, high)``.

    scipy.signal.butter's design (the analog prototype's poles, moved to the band and through
    the pre-warped bilinear transform) with the usual pairing: each pole pair over its zeros,
    the poles nearest the unit circle last, and the gain that makes the passband 1 in the first
    section. Its response is butter's to ~1e-10 (a test checks).
    """
    if kind not in _NUMERATORS:
        raise ValueError(f"kind = {kind!r}: expected one of {', '.join(_NUMERATORS)}")
    prototype = -np.exp(1j * np.pi * np.arange(-order + 1, order, 2) / (2 * order))
    edges = 4.0 * np.tan(np.pi * np.atleast_1d(cutoff_hz) / sample_rate)  # pre-warped, fs = 2
    analog, unity = _analog_poles(prototype, edges, kind)
    poles = (4.0 + analog) / (4.0 - analog)  # the bilinear transform
    pair, single = _NUMERATORS[kind]
    real = np.sort(poles[poles.imag == 0].real)
    sections = [[*pair, 1.0, -2 * p.real, abs(p) ** 2] for p in poles[poles.imag > 0]]
    even = real[: len(real) // 2 * 2]  # a band-pass's real poles go in twos, a lone one alone
    sections += [[*pair, 1.0, -(a + b), a * b] for a, b in zip(even[::2], even[1::2], strict=True)]
    if len(real) % 2:
        sections.append([*single, 1.0, -real[-1], 0.0])
    sos = np.array(sorted(sections, key=lambda s: np.abs(np.roots(s[3:])).max()))
    z = np.exp(-1j * 2 * np.arctan(unity / 4.0) * np.arange(3))  # 1, z^-1, z^-2 at unity gain
    sos[0, :3] /= abs(np.prod(sos[:, :3] @ z) / np.prod(sos[:, 3:] @ z))
    return sos


def _analog_poles(prototype: np.ndarray, edges: np.ndarray, kind: str
                  ) -> tuple[np.ndarray, float]:
    """The analog filter's poles, and the (pre-warped) frequency where its gain is 1."""
    if kind == "lowpass":
        return edges[0] * prototype, 0.0
    if kind == "highpass":
        return edges[0] / prototype, np.inf
    centre, half = np.sqrt(edges[0] * edges[1]), prototype * (edges[1] - edges[0]) / 2
    root = np.sqrt(half**2 - centre**2)  # each prototype pole makes two
    return np.concatenate([half + root, half - root]), centre


def sosfilt(sos: np.ndarray, x: np.ndarray, zi: np.ndarray | None = None
            ) -> tuple[np.ndarray, np.ndarray]:
    """``scipy.signal.sosfilt(sos, x, zi=zi)`` of a 1-D ``x`` (``zi`` None: at rest), in
    float64: (y, final state). ``x`` and ``zi`` are left alone."""
    y = np.array(x[None, :], dtype=np.float64, order="C")  # filtered in place
    state = np.zeros((1, len(sos), 2)) if zi is None else np.array(zi[None], dtype=np.float64)
    kernel(SOSFILT)._sosfilt(np.asarray(sos, dtype=np.float64), y, state)
    return y[0], state[0]
