"""One run on several processes or GPUs with PyTorch's DistributedDataParallel.

``torchrun --nproc-per-node N -m archs train ...`` starts N copies of the command; each finds its rank in
the environment (``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR``/``MASTER_PORT``), as
torchvision's reference scripts do, and :func:`context` joins the process group: gloo on CPUs, NCCL on
CUDA (one GPU per process, ``cuda:LOCAL_RANK``). Without those variables everything here is a no-op.

How a run is split, so that N processes train the same model a single process would:

- **Global batch.** ``batch_size`` is the global batch: each rank takes ``batch_size / N`` images of it
  (it must divide evenly). Every epoch all ranks draw the same permutation of the whole in-memory data set
  (same seed) and rank r takes the r-th slice of each global batch; DDP averages the gradients, so a step
  is the single-process step on the same global batch. The learning rate is the one for that global
  batch, unchanged (no scaling rule is applied: the settings mean what they mean for one process).
- **BatchNorm** keeps per-rank batch statistics (PyTorch's default; ``SyncBatchNorm`` is not used), so
  with BatchNorm the N-process run is close to, not equal to, the single-process one.
- **Records.** Loss, accuracy and images are summed over ranks when a record is made; the test set is
  split over ranks and the sums combined. Only rank 0 records into the run store and prints; its result
  reports ``world_size``.
- **Stop and divergence** are decided together: ranks agree at each record (an all-reduce of a flag), so
  no rank waits forever for one that has left.

The seam for executors (a run that asks for several GPUs): a :class:`~archs.training.request.RunRequest`
is carried out by :func:`~archs.training.request.execute_request` in each of N processes started with
this environment (``torch.distributed.run`` does it); an executor only has to start them, with
``MASTER_PORT`` free and one GPU per process.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch

__all__ = ["Context", "context", "launched_by_torchrun"]


def launched_by_torchrun() -> bool:
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


@dataclass(frozen=True)
class Context:
    """This process's place in a run: rank 0 of 1 when not distributed."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def device(self, device: torch.device) -> torch.device:
        """This rank's device: ``cuda:LOCAL_RANK`` for CUDA, the device itself otherwise."""
        if self.enabled and device.type == "cuda":
            return torch.device("cuda", self.local_rank)
        return device

    def local_batch(self, global_batch: int) -> int:
        if global_batch % self.world_size:
            from archs.training.config import ConfigError

            raise ConfigError(f"batch_size: the global batch ({global_batch}) must divide evenly over "
                              f"{self.world_size} processes", "batch_size")
        return global_batch // self.world_size

    def wrap(self, model: torch.nn.Module, device: torch.device) -> torch.nn.Module:
        """The model wrapped in DistributedDataParallel (or itself, alone)."""
        if not self.enabled:
            return model
        from torch.nn.parallel import DistributedDataParallel

        ids = [device.index] if device.type == "cuda" else None
        return DistributedDataParallel(model, device_ids=ids)

    def sum(self, *values: torch.Tensor | float | int) -> list[float]:
        """Each value summed over all ranks (one all-reduce)."""
        if not self.enabled:
            return [float(v) for v in values]
        import torch.distributed as dist

        device = torch.device("cuda", self.local_rank) if dist.get_backend() == "nccl" else torch.device("cpu")
        packed = torch.tensor([float(v) for v in values], dtype=torch.float64, device=device)
        dist.all_reduce(packed)
        return packed.tolist()

    def any(self, flag: bool) -> bool:
        """True on every rank if it is true on any."""
        return self.sum(1.0 if flag else 0.0)[0] > 0 if self.enabled else flag


_CONTEXT: Context | None = None


def context(device_type: str = "cpu") -> Context:
    """This process's context, joining the process group on first use when torchrun started it."""
    global _CONTEXT
    if _CONTEXT is not None:
        return _CONTEXT
    if not launched_by_torchrun():
        _CONTEXT = Context()
        return _CONTEXT
    import torch.distributed as dist

    rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    local = int(os.environ.get("LOCAL_RANK", rank))
    if not dist.is_initialized():
        backend = "nccl" if device_type == "cuda" else "gloo"
        if backend == "nccl":
            torch.cuda.set_device(local)
        dist.init_process_group(backend, rank=rank, world_size=world)
    _CONTEXT = Context(rank, world, local)
    return _CONTEXT
