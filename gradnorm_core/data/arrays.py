"""Arrays on disk, read one item at a time: :func:`map_array` maps a NumPy ``.npy`` file or an
IDX file into memory without reading it, and :class:`MemmapDataset` is a map-style Dataset over
such arrays, for a problem's ``load_data()`` when a split should not be loaded whole."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

__all__ = ["IDX_DTYPES", "MemmapDataset", "map_array"]

# IDX type codes -> big-endian numpy dtypes
IDX_DTYPES: dict[int, np.dtype] = {
    0x08: np.dtype("u1"),
    0x09: np.dtype("i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
NPY_MAGIC = b"\x93NUMPY"

ArraySource = str | os.PathLike | np.ndarray
Item = tuple[Any, tuple[Any, ...]]


def map_array(path: str | os.PathLike) -> np.ndarray:
    """The array in ``path``, memory-mapped read-only; only its header is read.

    The format is told from the first bytes: a NumPy ``.npy`` file (``np.load(mmap_mode="r")``)
    or an IDX file (MNIST's: two zero bytes, a type code, the number of dimensions, each
    dimension as a big-endian uint32, then the data), not gzip-compressed. A missing file raises
    FileNotFoundError, any other file (a compressed or truncated one included) a one-line
    ValueError naming it.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    with open(path, "rb") as f:
        head = f.read(6)
    if head == NPY_MAGIC:
        try:
            return np.load(path, mmap_mode="r", allow_pickle=False)
        except ValueError as error:
            raise ValueError(f"{path}: cannot map this .npy file ({str(error).splitlines()[0]})") from None
    if head[:2] == b"\x1f\x8b":
        raise ValueError(f"{path}: gzip-compressed; decompress it (gunzip) to map it")
    if len(head) < 4 or head[:2] != b"\x00\x00" or head[2] not in IDX_DTYPES or head[3] == 0:
        raise ValueError(f"{path}: neither a .npy file nor an IDX file (bad magic number {head[:4].hex()})")
    ndim, dtype = head[3], IDX_DTYPES[head[2]]
    with open(path, "rb") as f:
        header = f.read(4 + 4 * ndim)
    if len(header) < 4 + 4 * ndim:
        raise ValueError(f"{path}: truncated IDX file (header needs {4 + 4 * ndim} bytes)")
    shape = tuple(int.from_bytes(header[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    expected = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    found = path.stat().st_size - len(header)
    if found != expected:
        kind = "truncated IDX file" if found < expected else "IDX file has trailing bytes"
        raise ValueError(f"{path}: {kind}: shape {shape} needs {expected} data bytes, found {found}")
    if expected == 0:
        return np.zeros(shape, dtype)
    return np.memmap(path, dtype=dtype, mode="r", offset=len(header), shape=shape)


class MemmapDataset(Dataset):
    """A map-style Dataset over arrays with one row per sample, read one item at a time.

    ``inputs`` and each of ``targets`` is a file path (``.npy`` or IDX, memory-mapped by
    :func:`map_array`) or an array. Item ``i`` is ``(inputs[j], (targets[0][j], ...))`` with
    ``j = indices[i]`` (all rows when ``indices`` is None), each row copied into a tensor of its
    stored dtype; ``transform(x, targets)``, when given, turns those tensors into the item (e.g.
    scale pixels, cast labels to int64, derive a target). Files are opened on first use in each
    process and never pickled, so DataLoader workers map them themselves (arrays given in memory
    travel by copy); ``transform`` must then be a module-level function.

    Construction maps the files to check them: equal numbers of rows, ``indices`` a 1-D sequence
    of row numbers in range; otherwise a one-line ValueError.
    """

    def __init__(
        self,
        inputs: ArraySource,
        targets: Sequence[ArraySource],
        indices: Sequence[int] | np.ndarray | None = None,
        transform: Callable[[torch.Tensor, tuple[torch.Tensor, ...]], Item] | None = None,
    ) -> None:
        if isinstance(targets, (str, bytes, os.PathLike, np.ndarray)) or not isinstance(targets, Sequence):
            raise ValueError("targets must be a list of arrays or file paths, one per task")
        self.sources = [inputs, *targets]
        self.transform = transform
        arrays = self._open()
        rows = {np.shape(a)[0] if np.ndim(a) else None for a in arrays}
        if len(rows) != 1 or None in rows:
            shapes = ", ".join(str(np.shape(a)) for a in arrays)
            raise ValueError(f"inputs and targets must be arrays with the same number of rows, got shapes {shapes}")
        self.rows = rows.pop()
        if indices is None:
            self.indices = None
        else:
            index = np.asarray(indices)
            if index.ndim != 1 or not (np.issubdtype(index.dtype, np.integer) or index.size == 0):
                raise ValueError(f"indices must be a 1-D sequence of row numbers, got {index.dtype} {index.shape}")
            if index.size and (index.min() < 0 or index.max() >= self.rows):
                raise ValueError(f"indices must be row numbers in 0..{self.rows - 1}, got {index.min()}..{index.max()}")
            self.indices = index.astype(np.int64)

    @property
    def arrays(self) -> list[np.ndarray]:
        """The arrays, mapped in this process: the inputs, then each target (all rows)."""
        return self._open()

    def _open(self) -> list[np.ndarray]:
        arrays = self.__dict__.get("_arrays")
        if arrays is None:
            arrays = [s if isinstance(s, np.ndarray) else map_array(s) for s in self.sources]
            self.__dict__["_arrays"] = arrays
        return arrays

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state.pop("_arrays", None)  # each process maps the files again
        return state

    def __len__(self) -> int:
        return self.rows if self.indices is None else len(self.indices)

    def __getitem__(self, i: int) -> Item:
        if not -len(self) <= i < len(self):
            raise IndexError(f"item {i} out of range for a dataset of {len(self)} items")
        j = int(i if self.indices is None else self.indices[i])
        x, *targets = (torch.from_numpy(np.array(a[j], dtype=a.dtype.newbyteorder("="))) for a in self._open())
        if self.transform is not None:
            return self.transform(x, tuple(targets))
        return x, tuple(targets)
