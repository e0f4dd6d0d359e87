"""Training on several processes with torch.distributed: who this worker is, its process group,
the collectives training needs, and the launcher.

``lofi train --nproc N`` starts N workers through torch's elastic launcher (the code behind
``torchrun``, :func:`torch.distributed.run.run`); ``torchrun --nproc-per-node N -m arranger.cli
train ...`` (with torchrun's rendezvous flags across nodes) runs the same workers. Each worker
learns its rank from the launcher's environment (``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``...),
joins a gloo (CPU) or NCCL (CUDA) group, and wraps its model in DistributedDataParallel, which
averages the gradients. A worker that dies ends the run: the launcher stops the others, and a
peer waiting on a collective gives up after :data:`COLLECTIVE_TIMEOUT_S`.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta

import torch
from torch import nn

COLLECTIVE_TIMEOUT_S = 300  # a peer silent for this long fails the run instead of hanging it
WORKER_MODULE = "arranger.training.worker"  # what `--nproc` runs in each worker


@dataclass(frozen=True)
class World:
    """This process's place among the training workers (one process: rank 0 of 1)."""

    rank: int = 0
    size: int = 1
    local_rank: int = 0
    local_size: int = 1
    run_id: str = ""  # the launcher's run id (shared by all workers of one run)
    restarts: int = 0  # how often the launcher restarted the workers (``--max-restarts``)

    @property
    def main(self) -> bool:
        """Rank 0: the one worker that writes checkpoints, weights, cards and logs."""
        return self.rank == 0

    @property
    def local_main(self) -> bool:
        """Local rank 0: prepares the node's encoded corpus for the other workers on it."""
        return self.local_rank == 0


SOLO = World()


def current() -> World:
    """The :class:`World` the launcher's environment describes (:data:`SOLO` without one)."""
    env = os.environ
    if "WORLD_SIZE" not in env or "TORCHELASTIC_RUN_ID" not in env:
        return SOLO
    return World(int(env["RANK"]), int(env["WORLD_SIZE"]), int(env.get("LOCAL_RANK", 0)),
                 int(env.get("LOCAL_WORLD_SIZE", env["WORLD_SIZE"])), env["TORCHELASTIC_RUN_ID"],
                 int(env.get("TORCHELASTIC_RESTART_COUNT", 0)))


def worker_device(device: torch.device, world: World) -> torch.device:
    """One GPU per worker on its node (``cuda:LOCAL_RANK``); CPU workers share the CPU."""
    if device.type == "cuda" and world.size > 1:
        torch.cuda.set_device(world.local_rank)
        return torch.device("cuda", world.local_rank)
    return device


def start(world: World, device: torch.device) -> None:
    """Join the process group (NCCL on CUDA, gloo on CPU); nothing for one process."""
    import torch.distributed as dist

    if world.size > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo",
                                timeout=timedelta(seconds=COLLECTIVE_TIMEOUT_S))


def stop(world: World) -> None:
    import torch.distributed as dist

    if world.size > 1 and dist.is_initialized():
        dist.destroy_process_group()


def backend(world: World, device: torch.device) -> str:
    if world.size == 1:
        return "none"
    return "nccl" if device.type == "cuda" else "gloo"


def wrap(model: nn.Module, world: World, device: torch.device) -> nn.Module:
    """``model`` in DistributedDataParallel when there are several workers, else itself."""
    if world.size == 1:
        return model
    from torch.nn.parallel import DistributedDataParallel

    ids = [device.index] if device.type == "cuda" else None
    return DistributedDataParallel(model, device_ids=ids)


def all_sum(values: list[float], world: World, device: torch.device) -> list[float]:
    """Element-wise sum of ``values`` over all workers (float64)."""
    if world.size == 1:
        return list(values)
    import torch.distributed as dist

    t = torch.tensor(values, dtype=torch.float64, device=device)
    dist.all_reduce(t)
    return t.tolist()


def any_true(flag: bool, world: World, device: torch.device) -> bool:
    """True on every worker when it is true on one (e.g. rank 0's wall-clock budget ran out)."""
    return all_sum([float(flag)], world, device)[0] > 0


class WorkersFailed(RuntimeError):
    """A training worker exited with an error; the message is one line for the user."""


@contextlib.contextmanager
def peer_errors(world: World) -> Iterator[None]:
    """A collective that fails because a peer died becomes :class:`WorkersFailed` (one line)."""
    try:
        yield
    except RuntimeError as e:  # gloo/NCCL errors (DistBackendError) are RuntimeErrors
        if world.size == 1 or isinstance(e, WorkersFailed):
            raise
        line = (str(e).strip().splitlines() or [type(e).__name__])[0][:160]
        raise WorkersFailed(f"training worker rank {world.rank} stopped: a peer is gone "
                            f"({line})") from None


def launch(nproc: int, args: list[str]) -> None:
    """Run ``python -m WORKER_MODULE *args`` in ``nproc`` workers through the elastic launcher.

    One node, a local rendezvous, no restarts. Raises :class:`WorkersFailed` naming the first
    worker that failed and how.
    """
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.run import get_args_parser, run

    # The launcher would set 1 thread per worker (with a warning); share the cores instead.
    os.environ.setdefault("OMP_NUM_THREADS", str(max(1, len(os.sched_getaffinity(0)) // nproc)))
    # The launcher's logs go to a folder of ours that goes with the run (its default is a
    # /tmp/torchelastic_* folder per run, never removed).
    logs = tempfile.TemporaryDirectory(prefix="lofi-workers-")
    parsed = get_args_parser().parse_args(
        ["--standalone", "--nnodes", "1", "--nproc-per-node", str(nproc), "--max-restarts", "0",
         "--log-dir", logs.name, "--module", WORKER_MODULE, *args])
    try:
        run(parsed)
    except ChildFailedError as e:
        rank, failure = _first_cause(e.failures)
        raise WorkersFailed(f"training worker rank {rank} of {nproc} failed "
                            f"({_how(failure.exitcode)}); the checkpoints in the output folder "
                            "hold the last finished epoch: rerun with --resume") from None
    finally:
        logs.cleanup()


def _first_cause(failures: dict) -> tuple:
    """The worker that failed first: the launcher stops the others with SIGTERM after it."""
    import signal

    own = {r: f for r, f in failures.items() if f.exitcode != -signal.SIGTERM} or failures
    return min(own.items(), key=lambda kv: (kv[1].timestamp, kv[0]))


def _how(exitcode: int) -> str:
    if exitcode < 0:
        import signal

        try:
            return f"killed by {signal.Signals(-exitcode).name}"
        except ValueError:
            return f"killed by signal {-exitcode}"
    return f"exit code {exitcode}"
