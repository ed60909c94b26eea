"""Data-parallel training across processes (torchrun): ranks, barriers, gathers, DDP wrapping.

Used by :mod:`guitarsep.training.loop` (``02_train.ipynb``, ``guitarsep train``). With one
process (``WORLD_SIZE`` unset) every method is a no-op, so the loop has one code path.

DDP (``WORLD_SIZE > 1``): gloo on CPU, nccl on CUDA (one GPU per process, ``LOCAL_RANK``).
Batch norm: on CUDA the model is converted to ``SyncBatchNorm`` so the statistics are those of
the global batch (as in a single process); on CPU (gloo) torch has no SyncBatchNorm, and plain
per-rank batch norm is used (each rank normalises over its ``B/W x T`` frames, which for
Open-Unmix is still hundreds of rows). Buffers (running statistics) follow rank 0 (DDP
broadcasts them every forward, and :func:`broadcast_buffers` again before each validation).
"""
from __future__ import annotations

import os

import torch

__all__ = ["Distributed", "unwrap", "broadcast_buffers", "wrap_ddp"]


class Distributed:
    """Rank/world of this process; initialises the process group under torchrun."""

    def __init__(self, device: str | torch.device | None):
        self.world = int(os.environ.get("WORLD_SIZE", "1"))
        self.rank = int(os.environ.get("RANK", "0"))
        self.local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        self.owns_group = False
        if device is None:
            device = "cuda" if torch.cuda.is_available() else "cpu"
        device = torch.device(device)
        if device.type == "cuda" and device.index is None:
            device = torch.device("cuda", self.local_rank if self.world > 1 else 0)
        if device.type == "cuda":
            torch.cuda.set_device(device)
        self.device = device
        if self.world > 1:
            import torch.distributed as dist
            if not dist.is_initialized():
                dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
                self.owns_group = True
            self.rank, self.world = dist.get_rank(), dist.get_world_size()
            if device.type == "cpu":   # share the cores between the local processes
                local = int(os.environ.get("LOCAL_WORLD_SIZE", self.world))
                torch.set_num_threads(max(1, (os.cpu_count() or 1) // local))

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def barrier(self) -> None:
        if self.world > 1:
            import torch.distributed as dist
            if self.device.type == "cuda":
                dist.barrier(device_ids=[self.device.index])
            else:
                dist.barrier()

    def gather(self, obj):
        if self.world == 1:
            return [obj]
        import torch.distributed as dist
        out = [None] * self.world
        dist.all_gather_object(out, obj)
        return out

    def broadcast(self, obj):
        if self.world == 1:
            return obj
        import torch.distributed as dist
        box = [obj]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def mean(self, x: torch.Tensor) -> torch.Tensor:
        """The mean of ``x`` over the ranks (``x`` itself with one process)."""
        if self.world == 1:
            return x
        import torch.distributed as dist
        dist.all_reduce(x)
        return x / self.world

    def close(self) -> None:
        if self.owns_group:
            import torch.distributed as dist
            dist.destroy_process_group()
            self.owns_group = False


def unwrap(model: torch.nn.Module) -> torch.nn.Module:
    """The network inside a DDP wrapper (or ``model`` itself)."""
    return model.module if hasattr(model, "module") else model


def broadcast_buffers(model: torch.nn.Module, dist_: Distributed) -> None:
    """Copy rank 0's buffers (batch-norm running statistics) to every rank."""
    if dist_.world == 1:
        return
    import torch.distributed as dist
    for b in unwrap(model).buffers():
        dist.broadcast(b, src=0)


def wrap_ddp(model: torch.nn.Module, dist_: Distributed) -> torch.nn.Module:
    """``model`` wrapped in DDP when there are several ranks (SyncBatchNorm on CUDA)."""
    if dist_.world == 1:
        return model
    from torch.nn.parallel import DistributedDataParallel as DDP
    if dist_.device.type == "cuda":
        model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)
        return DDP(model, device_ids=[dist_.device.index])
    return DDP(model)
