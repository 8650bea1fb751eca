"""Distributed data parallel helpers (torchrun / ``torch.multiprocessing``), single process otherwise.

``torchrun`` sets ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR`` and ``MASTER_PORT``;
:func:`init_distributed` reads them and starts the process group (NCCL on CUDA, Gloo on CPU).
Without them (or with ``WORLD_SIZE=1``) everything runs in one process and the collective helpers
are no-ops, so the same trainer code serves 1 CPU, 1 GPU and many nodes.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Iterator

import torch
import torch.distributed as dist


@dataclass
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")
    initialized_here: bool = False

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1


def _env_int(name: str, default: int) -> int:
    v = os.environ.get(name)
    return int(v) if v not in (None, "") else default


def resolve_device(spec: str, local_rank: int = 0) -> torch.device:
    """``"auto"`` -> ``cuda:<local_rank>`` when CUDA is available, else CPU."""
    if spec == "auto":
        return torch.device("cuda", local_rank) if torch.cuda.is_available() else torch.device("cpu")
    if spec == "cuda":
        return torch.device("cuda", local_rank)
    return torch.device(spec)


def init_distributed(device: str = "auto") -> DistInfo:
    """Join the process group described by the environment, if any; returns this process's :class:`DistInfo`."""
    rank = _env_int("RANK", 0)
    world = _env_int("WORLD_SIZE", 1)
    local = _env_int("LOCAL_RANK", rank if world > 1 else 0)
    dev = resolve_device(device, local)
    if dev.type == "cuda":
        n = torch.cuda.device_count()
        if dev.index is not None and dev.index >= n:
            from ..errors import ConfigError

            raise ConfigError(f"config: process with LOCAL_RANK={local} needs CUDA device {dev.index} but only {n} "
                              f"{'is' if n == 1 else 'are'} visible (use --nproc_per_node <= {n}, or train.device=cpu)")
        torch.cuda.set_device(dev)
    info = DistInfo(rank, world, local, dev)
    if world > 1:
        if dist.is_initialized():
            info.rank, info.world_size = dist.get_rank(), dist.get_world_size()
        else:
            backend = "nccl" if dev.type == "cuda" else "gloo"
            kwargs = {"device_id": dev} if dev.type == "cuda" else {}
            try:
                dist.init_process_group(backend=backend, init_method="env://", **kwargs)
            except TypeError:  # older torch without device_id
                dist.init_process_group(backend=backend, init_method="env://")
            info.initialized_here = True
    return info


def cleanup(info: DistInfo) -> None:
    if info.initialized_here and dist.is_initialized():
        dist.destroy_process_group()


def barrier(info: DistInfo) -> None:
    if info.enabled and dist.is_initialized():
        if info.device.type == "cuda":
            dist.barrier(device_ids=[info.device.index])
        else:
            dist.barrier()


def all_reduce_sum(t: torch.Tensor, info: DistInfo) -> torch.Tensor:
    """Sum ``t`` over all ranks (in place and returned); identity in a single process."""
    if info.enabled and dist.is_initialized():
        dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return t


def all_reduce_mean(t: torch.Tensor, info: DistInfo) -> torch.Tensor:
    return all_reduce_sum(t, info).div_(info.world_size) if info.enabled else t


def all_gather_object(obj, info: DistInfo) -> list:
    if not (info.enabled and dist.is_initialized()):
        return [obj]
    out = [None] * info.world_size
    dist.all_gather_object(out, obj)
    return out


def broadcast_object(obj, info: DistInfo, src: int = 0):
    if not (info.enabled and dist.is_initialized()):
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=src)
    return box[0]


class ShardedSampler(torch.utils.data.Sampler):
    """Seeded, resumable sampler sharded over ranks (a deterministic ``DistributedSampler``).

    Each epoch is a permutation drawn from ``(seed, epoch)`` only, padded by wrapping to a multiple
    of ``world_size * batch_size`` (or truncated with ``drop_last``) and dealt out round-robin to
    ranks; every rank therefore sees the same number of full batches. It yields ``(epoch, index)`` so
    a dataset can derive its per-item randomness from both, whatever the worker count.
    ``set_position(epoch, batches_done)`` restarts mid-epoch for exact resume. With ``infinite=True``
    it runs on through the following epochs, so a DataLoader never drains its workers between epochs
    (batch ``k`` after the start is in epoch ``epoch + (batches_done + k) // batches_per_epoch()``).
    """

    def __init__(self, length: int, batch_size: int, rank: int = 0, world_size: int = 1, seed: int = 0,
                 shuffle: bool = True, drop_last: bool = True, infinite: bool = False):
        if length < 1:
            raise ValueError("ShardedSampler: empty dataset")
        self.length, self.batch_size = length, batch_size
        self.rank, self.world_size = rank, world_size
        self.seed, self.shuffle, self.drop_last = seed, shuffle, drop_last
        self.epoch, self.start_batch = 0, 0
        self.infinite = infinite

    def batches_per_epoch(self) -> int:
        per = self.world_size * self.batch_size
        n = self.length // per if self.drop_last else -(-self.length // per)
        return max(n, 1)

    def set_epoch(self, epoch: int) -> None:
        self.epoch, self.start_batch = epoch, 0

    def set_position(self, epoch: int, batches_done: int) -> None:
        self.epoch, self.start_batch = epoch, batches_done

    def _order(self, epoch: int) -> list[int]:
        if self.shuffle:
            g = torch.Generator().manual_seed((self.seed * 1_000_003 + epoch) % (2**63))
            order = torch.randperm(self.length, generator=g).tolist()
        else:
            order = list(range(self.length))
        need = self.batches_per_epoch() * self.world_size * self.batch_size
        while len(order) < need:  # tiny datasets: wrap around
            order += order[: need - len(order)]
        return order[:need]

    def __iter__(self) -> Iterator[tuple[int, int]]:
        epoch, start = self.epoch, self.start_batch
        while True:
            mine = self._order(epoch)[self.rank::self.world_size]
            for i in mine[start * self.batch_size:]:
                yield (epoch, i)
            if not self.infinite:
                return
            epoch, start = epoch + 1, 0

    def __len__(self) -> int:
        if self.infinite:
            raise TypeError("an infinite ShardedSampler has no length")
        return max(self.batches_per_epoch() - self.start_batch, 0) * self.batch_size
