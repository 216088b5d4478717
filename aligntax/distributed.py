"""Processes of one stage run: who I am, waiting for the others, gathering their results.

A stage started by a multi-process launcher (``torchrun --nproc_per_node N -m stages.<stage>`` or
``accelerate launch``) gets its rank and world size from accelerate's ``PartialState`` (gloo on
CPU, nccl on GPUs, one GPU per process). Each process does its share of the work, the results
meet on every rank (``gather``) or the processes wait for each other (``barrier``), and only the
main process writes outputs and metrics (``is_main``). Started with plain ``python`` there is one
process and every call here is a no-op, so single-process behaviour is unchanged.

If any process fails, the launcher stops the others and the stage fails with that process's
error; since only the main process writes, and only after the gather/barrier, nothing partial
is written.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import TypeVar

import torch
import torch.distributed as dist
from accelerate import PartialState

T = TypeVar("T")

WAIT = timedelta(hours=12)
"""How long a process may wait at a barrier or gather for a slower one (a resumed augmentation
run can leave one rank with many more chunks than another; a failed rank is stopped by the
launcher, so a long wait never hides an error)."""


def state() -> PartialState:
    """The process state, set up once per process (CPU processes use gloo)."""
    return PartialState(cpu=not torch.cuda.is_available(), timeout=WAIT)


def rank() -> int:
    """This process's index, 0 <= rank < world_size()."""
    return state().process_index


def world_size() -> int:
    """Number of processes of this run (1 under plain python)."""
    return state().num_processes


def is_main() -> bool:
    """True in the one process that writes outputs and metrics (rank 0)."""
    return state().is_main_process


def barrier() -> None:
    """Wait until every process reaches this point."""
    state().wait_for_everyone()


def gather(obj: T) -> list[T]:
    """Every process's ``obj``, in rank order, on every process (``[obj]`` with one process)."""
    if world_size() == 1:
        return [obj]
    out: list = [None] * world_size()
    dist.all_gather_object(out, obj)
    return out


def contiguous_share(n: int, world: int | None = None, index: int | None = None) -> range:
    """This process's part of ``range(n)`` split into ``world`` contiguous, near-equal parts
    (the first ``n % world`` parts one longer); an empty range when there are more processes than items."""
    world = world_size() if world is None else world
    index = rank() if index is None else index
    size, extra = divmod(n, world)
    start = index * size + min(index, extra)
    return range(start, start + size + (index < extra))


def owned(items: Sequence[T], world: int | None = None, index: int | None = None) -> list[T]:
    """The items whose position ``i`` has ``i % world == index`` (round robin: balances work
    when items are sorted by cost)."""
    world = world_size() if world is None else world
    index = rank() if index is None else index
    return [x for i, x in enumerate(items) if i % world == index]
