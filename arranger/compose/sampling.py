"""Sampling a layer model step by step: the stepper (model + carried state) and the draws.

Nothing here changes its arguments: each function returns new arrays.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from contextlib import nullcontext
from typing import TYPE_CHECKING, Any

import numpy as np

from arranger.compose.plan import FREE
from arranger.song_settings import Sampling
from tracks.common import BOS
from tracks.ensemble import is_numpy_stepper, stepper
from tracks.layers import LayerSpec
from tracks.weights_file import LayerWeights

if TYPE_CHECKING:
    import torch


class Stepper:
    """One layer model with its carried LSTM state, previous tokens and sampling rule.

    ``allowed`` : bool [V], the tokens the model may sample (its weights' inference settings,
    never the start token).
    """

    def __init__(self, weights: LayerWeights, batch: int, sampling: Sampling, spec: LayerSpec,
                 device: torch.device | None = None) -> None:
        self.device = device
        self.model = stepper(weights, device)  # numpy on the CPU (one model or an ensemble)
        settings = weights.inference
        self.blind = list(settings.blind_conditions)
        self.blind_multi = spec.multi_follows in settings.blind_conditions
        self.sampling = sampling
        self.prev = np.full(batch, BOS, dtype=np.int64)
        self.state = None
        self.allowed = settings.allowed_mask(self.model.config.vocab_size)
        self.allowed[BOS] = False

    def blinded(self, cond: np.ndarray, multi: np.ndarray | None
                ) -> tuple[np.ndarray, np.ndarray | None]:
        """The conditions as the model hears them: its blind ones unknown (0); new arrays
        where they change (see arranger.training.train.blind_conditions)."""
        if self.blind:
            cond = cond.copy()
            cond[..., self.blind] = 0
            if self.blind_multi:
                multi = np.zeros_like(multi)
        return cond, multi

    def logits(self, cond: np.ndarray, multi: np.ndarray | None,
               blinded: bool = False) -> np.ndarray:
        """Logits [B, V] of this step from cond [B, 1, C] and multi [B, 1, M] (already
        :meth:`blinded` if ``blinded``); the state moves on."""
        if not blinded:
            cond, multi = self.blinded(cond, multi)
        m = None if multi is None else multi[:, -1]
        if isinstance(self.model, is_numpy_stepper):  # the per-step hot path: no tensors
            out, self.state = self.model.step(self.prev, cond[:, -1], m, self.state)
            return out
        import torch

        def tensor(a: np.ndarray) -> torch.Tensor:
            return torch.as_tensor(a, device=self.device)

        out, self.state = self.model(tensor(self.prev[:, None]), tensor(cond),
                                     None if m is None else tensor(multi), self.state)
        return out[:, -1].float().cpu().numpy()

    def advance(self, tokens: np.ndarray) -> None:
        self.prev = tokens.astype(np.int64)

    def take(self, rows: Sequence[int]) -> None:
        """Keep only these batch rows (in this order): their state and previous tokens.

        A row steps the same whatever the batch it is in, so a row taken on goes on exactly
        as it would have in the whole batch (candidates ranked part-way, the rest dropped).
        """
        self.prev = self.prev[list(rows)]
        self.state = take_state(self.state, list(rows))


def take_state(state: Any, rows: list[int]) -> Any:
    """A model state with only ``rows``: an LSTM's (h, c) arrays or tensors [layers, B, H]
    (batch axis 1), an ensemble's tuple of its members' states, or any other model's [B, ...]
    array or tensor (batch axis 0, e.g. a Markov model's token history)."""
    if state is None:
        return None
    if isinstance(state, tuple | list):
        return tuple(take_state(s, rows) for s in state)
    return state[:, rows] if state.ndim == 3 else state[rows]


class RowStreams:
    """One random stream per batch row: row r draws from ``default_rng(seed + r)``.

    So a row's song does not depend on the batch it is generated in: variation i of a batch
    with seed s is the song seed s + i gives alone. Draws are buffered a block per row (a
    Generator gives the same doubles drawn one by one or as a block).
    """

    BLOCK = 256

    def __init__(self, seed: int, batch: int, candidates: int = 1) -> None:
        # With K candidates per song, rows i*K..i*K+K-1 are song i's: its first candidate
        # draws as the song alone does, the others from streams of their own.
        self.generators = [np.random.default_rng(
            int(seed) + r // candidates if r % candidates == 0
            else [int(seed) + r // candidates, r % candidates]) for r in range(batch)]
        self.buffer = self._blocks()  # [B, BLOCK]
        # Draws taken from each row's block: ``even`` while every row has drawn alike (the
        # common case: a draw is a column of the buffer), else ``used`` per row.
        self.even: int | None = 0
        self.used = np.zeros(batch, np.int64)
        self.rows = np.arange(batch)

    def uniform(self, rows: np.ndarray | None = None) -> np.ndarray:
        """The next draw in [0, 1) of each of ``rows`` (int [n], default all), float [n, 1]."""
        if rows is None and self.even is not None:
            if self.even == self.BLOCK:
                self.buffer, self.even = self._blocks(), 0
            self.even += 1
            return self.buffer[:, self.even - 1 : self.even].copy()
        if self.even is not None:  # the rows start to draw apart
            self.used[:], self.even = self.even, None
        if rows is None:
            rows = self.rows
        if np.maximum.reduce(self.used[rows]) == self.BLOCK:
            self._refill(rows)
        used = self.used[rows]
        u = self.buffer[rows, used]
        self.used[rows] = used + 1
        return u[:, None]

    def take(self, rows: Sequence[int]) -> None:
        """Keep only the streams of these rows (in this order), each going on where it was.

        A row taken twice gets a copy of its generator, so the two draw alike but apart.
        """
        rows = list(rows)
        self.generators = [copy.deepcopy(self.generators[r]) for r in rows]
        self.buffer, self.used = self.buffer[rows], self.used[rows]
        self.rows = np.arange(len(rows))

    def _blocks(self) -> np.ndarray:
        """A new block of draws for every row, [B, BLOCK]."""
        return np.stack([g.random(self.BLOCK) for g in self.generators])

    def _refill(self, rows: np.ndarray) -> None:
        """A new block for each of ``rows`` whose block is used up."""
        for r in rows[self.used[rows] == self.BLOCK].tolist():
            self.buffer[r], self.used[r] = self.generators[r].random(self.BLOCK), 0


def sample(logits: np.ndarray, mask: np.ndarray, sampling: Sampling,
           u: np.ndarray) -> np.ndarray:
    """Temperature + nucleus (top-p) sampling by inverse CDF of the uniform draws ``u``.

    logits float [B, V]; mask bool [B or 1, V]; u float [B, 1] in [0, 1); returns tokens
    int [B]. The nucleus is cut at a probability value (the smallest one kept,
    :func:`nucleus_floor`). The rows are sampled as columns (:func:`sample_columns`), and one
    row alone as a vector: numpy calls cost more than the arithmetic at these sizes, and a
    vector's maximum, mass and draw are scalars.
    """
    if len(logits) == 1:  # a song alone
        return sample_columns(logits[0], mask[0], sampling, u[0, 0])[None]
    return sample_columns(logits.T, mask.T, sampling, u[:, 0])


def sample_columns(logits: np.ndarray, mask: np.ndarray, sampling: Sampling,
                   u: float | np.ndarray) -> np.ndarray:
    """:func:`sample` with the vocabulary first: logits [V] or [V, B], mask [V] or [V, B or
    1], u a float or [B]; the token (a scalar) or tokens [B].

    Each row's maximum, mass and draw broadcast over the vocabulary as they are. (The ufuncs
    are called directly: ``max``/``sum``/``cumsum`` are these reductions behind a Python
    wrapper that costs as much as the arithmetic at these sizes.)
    """
    z = np.where(mask, logits, -np.inf)
    if sampling.temperature != 1.0:  # (a product by 1.0 changes nothing)
        z *= 1.0 / max(sampling.temperature, 1e-4)
    z -= np.maximum.reduce(z)
    p = np.exp(z, out=z)
    if sampling.top_p < 1.0:
        np.multiply(p, p >= nucleus_floor(p, sampling.top_p), out=p)  # (a set by mask is slower)
    cum = np.add.accumulate(p)
    # The draw's token: how many cumulated masses lie at or under it. The last is left out
    # (a draw rounded up to the whole mass takes the last token), and cum never decreases.
    return np.add.reduce(cum[:-1] <= u * cum[-1])


def nucleus_floor(p: np.ndarray, top_p: float) -> np.ndarray:
    """The smallest probability of each row's nucleus (a scalar for p [V], [B] for p [V, B]):
    the fewest largest of ``p`` (unnormalised) whose mass before the last one is under
    ``top_p``.

    Found by sorting the values alone: cheaper than an argsort, and ties are all in or all
    out, so no tie order (which differs between sort algorithms) can change a song.
    """
    ascending = np.sort(p, axis=0)
    desc = ascending[::-1]
    cum = np.add.accumulate(desc)
    at = len(p) - np.add.reduce((cum - desc) < top_p * cum[-1])  # desc[nucleus size - 1]
    return ascending[at] if p.ndim == 1 else ascending[at, np.arange(p.shape[1])]


def choose(logits: np.ndarray, mask: np.ndarray, forced: np.ndarray, sampling: Sampling,
           streams: RowStreams) -> tuple[np.ndarray, np.ndarray | None]:
    """Sample where ``forced`` is FREE (each row from its own stream), take the forced token
    elsewhere.

    Returns the tokens int64 [B] and the log-probability (nats, float64 [B]) the model gave
    each forced token, 0 where it sampled; None instead when every row sampled.
    """
    if np.maximum.reduce(forced) == FREE:  # the common case: every row samples
        return sample(logits, mask, sampling, streams.uniform()), None
    if np.minimum.reduce(forced) != FREE:  # ... or every row is forced (a loop, an ending)
        return forced.copy(), token_logp(logits, forced)
    is_forced = forced != FREE
    tokens = forced.copy()
    free = np.flatnonzero(~is_forced)
    rows_mask = mask if len(mask) == 1 else mask[free]
    tokens[free] = sample(logits[free], rows_mask, sampling, streams.uniform(free))
    return tokens, forced_logp(logits, forced, np.flatnonzero(is_forced))


def forced_logp(logits: np.ndarray, forced: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """Log-probability (nats, float64 [B]) of ``forced[rows]`` under ``logits`` [B, V]; 0 in
    the other rows."""
    logp = np.zeros(len(forced))
    logp[rows] = token_logp(logits[rows], forced[rows])
    return logp


def token_logp(logits: np.ndarray, tokens: np.ndarray) -> np.ndarray:
    """Log-probability (nats, float64 [B]) the model's logits [B, V] give ``tokens`` [B], at
    temperature 1 and with no mask: the model's own likelihood of what was written."""
    z = logits.astype(np.float64)
    top = np.maximum.reduce(z, axis=1)
    logz = np.log(np.add.reduce(np.exp(z - top[:, None]), axis=1)) + top
    return z[np.arange(len(z)), tokens] - logz


def no_grad(device: torch.device | None):
    """PyTorch's inference mode on its path; nothing (no torch import) on the numpy one."""
    if device is None:
        return nullcontext()
    import torch

    return torch.inference_mode()
