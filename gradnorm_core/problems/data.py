"""A problem's data: ``Split`` (a split held in memory) and batching of any map-style Dataset.

Each item of a split is ``(x, targets)``: the input and a tuple of T target tensors, one per
task. Batches come out of :func:`iterate_batches` either from a :class:`Split` (indexed
directly, the fast path: no per-item Python) or from any other ``torch.utils.data.Dataset``
through a ``DataLoader`` whose batches are exactly the same index sets, so both give the same
tensors batch for batch.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, IterableDataset

Batch = tuple[Any, tuple[torch.Tensor, ...]]


@dataclass(frozen=True)
class Split(Dataset):
    """One data split held in memory: inputs (N, ...) and one target tensor (N, ...) per task.

    A map-style Dataset: ``split[i] == (inputs[i], tuple(t[i] for t in targets))``. The
    training loop moves a Split to its device once and indexes whole batches from it.
    """

    inputs: torch.Tensor
    targets: tuple[torch.Tensor, ...]

    def __len__(self) -> int:
        return self.inputs.shape[0]

    def __getitem__(self, index: int) -> Batch:
        return self.inputs[index], tuple(t[index] for t in self.targets)

    def to(self, device: torch.device | str) -> "Split":
        return Split(self.inputs.to(device), tuple(t.to(device) for t in self.targets))

    def batch(self, index: torch.Tensor | slice) -> Batch:
        return self.inputs[index], tuple(t[index] for t in self.targets)


def check_dataset(name: str, dataset: object) -> Dataset:
    """``dataset`` if it is a map-style Dataset (``__len__`` and ``__getitem__``), else a
    one-line TypeError: the training loop shuffles by index, so it needs both."""
    if isinstance(dataset, IterableDataset) or not (
        hasattr(dataset, "__len__") and hasattr(dataset, "__getitem__")
    ):
        raise TypeError(
            f"{name} split must be a map-style torch.utils.data.Dataset (with __len__ and "
            f"__getitem__, returning (x, targets)), got {type(dataset).__name__}"
        )
    return dataset  # type: ignore[return-value]


def to_device(value: Any, device: torch.device, non_blocking: bool = False) -> Any:
    """``value`` on ``device``: tensors moved, lists/tuples/dicts moved item by item, any other
    object with a ``.to`` (e.g. a graph batch) asked to move itself, anything else unchanged."""
    if isinstance(value, torch.Tensor):
        return value.to(device, non_blocking=non_blocking)
    if isinstance(value, (list, tuple)):
        return type(value)(to_device(v, device, non_blocking) for v in value)
    if isinstance(value, dict):
        return {k: to_device(v, device, non_blocking) for k, v in value.items()}
    if callable(getattr(value, "to", None)):
        return value.to(device)
    return value


class BatchOrder:
    """A DataLoader ``batch_sampler``: consecutive slices of ``batch_size`` indices of ``order``
    (a 1-D index tensor, or None for 0 .. n-1), the last one possibly shorter."""

    def __init__(self, order: torch.Tensor | None, size: int, batch_size: int) -> None:
        self.order = None if order is None else order.cpu()
        self.size = size
        self.batch_size = batch_size

    def __len__(self) -> int:
        return -(-self.size // self.batch_size)

    def __iter__(self) -> Iterator[list[int]]:
        for begin in range(0, self.size, self.batch_size):
            end = min(begin + self.batch_size, self.size)
            if self.order is None:
                yield list(range(begin, end))
            else:
                yield self.order[begin:end].tolist()


def iterate_batches(
    dataset: Dataset,
    batch_size: int,
    device: torch.device | str,
    *,
    order: torch.Tensor | None = None,
    num_workers: int = 0,
    seed: int | Sequence[int] = 0,
) -> Iterator[Batch]:
    """``(x, targets)`` batches of ``dataset`` on ``device``, in the order of ``order``.

    Batch k holds the items ``order[k * batch_size : (k + 1) * batch_size]`` (``order`` None:
    0 .. N-1, i.e. the split in order); ``targets`` is a tuple of T tensors.

    * A :class:`Split` is indexed directly with each slice of ``order`` (move it and ``order``
      to ``device`` first to keep everything there).
    * Any other map-style Dataset goes through a ``DataLoader`` whose ``batch_sampler`` yields
      those same index lists, with ``num_workers`` worker processes, pinned memory when
      ``device`` is CUDA and non-blocking copies to it. Items are collated by
      ``default_collate``, so a batch equals the Split's batch of the same indices. The
      loader's own generator is seeded from ``seed`` (an int or a sequence of ints, e.g.
      ``(seed, epoch)``; its workers' seeds derive from it), so the global RNG is never drawn
      from.
    """
    device = torch.device(device)
    if isinstance(dataset, Split):
        for begin in range(0, len(dataset), batch_size):
            if order is None:
                index: torch.Tensor | slice = slice(begin, begin + batch_size)
            else:
                index = order[begin : begin + batch_size]
            x, targets = dataset.batch(index)
            yield to_device(x, device), to_device(tuple(targets), device)
        return
    check_dataset("the", dataset)
    cuda = device.type == "cuda"
    loader = DataLoader(
        dataset,
        batch_sampler=BatchOrder(order, len(dataset), batch_size),
        num_workers=num_workers,
        pin_memory=cuda,
        generator=_generator(seed),
    )
    for x, targets in loader:
        yield to_device(x, device, cuda), tuple(to_device(list(targets), device, cuda))


def _generator(seed: int | Sequence[int]) -> torch.Generator:
    words = np.random.SeedSequence(seed).generate_state(2, dtype=np.uint32)
    return torch.Generator().manual_seed(int(words[0]) << 32 | int(words[1]))


def batch_length(x: Any, targets: Sequence[torch.Tensor]) -> int:
    """The number of samples in a batch: the first dimension of its first target tensor (or
    of ``x`` when there are no targets)."""
    first = targets[0] if len(targets) else x
    return int(first.shape[0])
