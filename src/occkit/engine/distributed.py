"""Distributed training helpers: one process per device, launched by ``torchrun``.

``torchrun`` sets ``RANK``, ``LOCAL_RANK`` and ``WORLD_SIZE``; :func:`init_distributed` reads them
and joins the process group (NCCL on GPUs, gloo on CPU). Without them the run is a single process
and every helper here is a no-op, so the training loop has one code path.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class DistInfo:
    """Where this process sits in the job."""

    rank: int = 0
    local_rank: int = 0
    world_size: int = 1

    @property
    def enabled(self) -> bool:
        """True when more than one process takes part."""
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        """Rank 0: the one process that writes checkpoints, logs and progress bars."""
        return self.rank == 0


def _env_int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError as e:
        raise ValueError(f"environment variable {name}={raw!r} is not an integer") from e


def resolve_device(preference: str, local_rank: int = 0) -> torch.device:
    """``"auto"`` -> ``cuda:<local_rank>`` when CUDA is available, else ``cpu``; otherwise as given.

    A CUDA device asked for where CUDA is missing raises ``ValueError`` naming the option.
    """
    if preference == "auto":
        return torch.device(f"cuda:{local_rank}") if torch.cuda.is_available() else torch.device("cpu")
    dev = torch.device(preference)
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"train.device={preference!r} but CUDA is not available")
        if dev.index is None:
            dev = torch.device(f"cuda:{local_rank}")
    return dev


def init_distributed(device_preference: str = "auto") -> tuple[DistInfo, torch.device]:
    """Join the process group if ``torchrun`` launched us; return (where we are, our device).

    Backend: ``nccl`` when the device is CUDA, ``gloo`` otherwise. ``MASTER_ADDR``/``MASTER_PORT``
    come from the environment (``torchrun`` sets them).
    """
    world = _env_int("WORLD_SIZE", 1)
    rank = _env_int("RANK", 0)
    local_rank = _env_int("LOCAL_RANK", rank)
    if world < 1 or not 0 <= rank < world:
        raise ValueError(f"bad distributed environment: RANK={rank}, WORLD_SIZE={world}")
    info = DistInfo(rank=rank, local_rank=local_rank, world_size=world)
    device = resolve_device(device_preference, local_rank)
    if device.type == "cuda":
        torch.cuda.set_device(device)
    if info.enabled and not dist.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        dist.init_process_group(backend=backend, rank=rank, world_size=world)
    return info, device


def cleanup_distributed() -> None:
    """Leave the process group (if we joined one)."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def is_distributed() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def all_reduce_sum(x: torch.Tensor) -> torch.Tensor:
    """Sum of ``x`` over all processes (in place; returned for chaining). No-op alone."""
    if is_distributed():
        dist.all_reduce(x, op=dist.ReduceOp.SUM)
    return x


def all_reduce_mean(x: torch.Tensor) -> torch.Tensor:
    """Mean of ``x`` over all processes (in place). No-op alone."""
    if is_distributed():
        dist.all_reduce(x, op=dist.ReduceOp.SUM)
        x /= dist.get_world_size()
    return x


def any_process(flag: bool, device: torch.device) -> bool:
    """True when ``flag`` is true on any process (so that every rank takes the same branch)."""
    if not is_distributed():
        return flag
    t = torch.tensor([1.0 if flag else 0.0], device=device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item() > 0)


def max_over_processes(value: float, device: torch.device) -> float:
    """The largest ``value`` over all processes (so that every rank uses the same number)."""
    if not is_distributed():
        return value
    t = torch.tensor([float(value)], dtype=torch.float64, device=device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return float(t.item())


def barrier() -> None:
    """Wait for every process. No-op alone."""
    if is_distributed():
        dist.barrier()
