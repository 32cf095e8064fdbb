"""The public helpers for writing a problem, each from ``gradnorm_core`` as a user imports it:
chance losses, ``seeded_init``, ``MemmapDataset`` / ``map_array`` over .npy and IDX files, and
the default data cache directory (``BinaryErrorRate`` is tested in test_metrics.py)."""

from __future__ import annotations

import math
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.nn import functional as F

import gradnorm_core
from gradnorm_core import (
    MemmapDataset, chance_binary_cross_entropy, chance_cross_entropy, chance_mse, default_cache_dir, map_array,
    seeded_init,
)
from gradnorm_core.problems.data import iterate_batches

HELPERS = ("chance_cross_entropy", "chance_binary_cross_entropy", "chance_mse", "seeded_init", "MemmapDataset",
           "map_array", "BinaryErrorRate", "default_cache_dir")


def test_exported_with_docstrings():
    for name in HELPERS:
        assert name in gradnorm_core.__all__ and getattr(gradnorm_core, name).__doc__, name


def test_chance_cross_entropy_is_the_best_constant_logits_loss():
    labels = torch.tensor([0, 0, 1, 2, 2, 2])
    logits = torch.log(torch.tensor([2 / 6, 1 / 6, 3 / 6])).expand(6, 3)  # the class frequencies
    assert chance_cross_entropy(labels) == pytest.approx(float(F.cross_entropy(logits, labels)), rel=1e-6)
    assert chance_cross_entropy(torch.tensor([3, 3])) == 0.0


def test_chance_binary_cross_entropy_is_the_best_constant_logits_loss():
    targets = torch.tensor([1.0, 0.0, 1.0, 1.0, 0.0, 1.0, 1.0, 1.0])  # p = 3/4
    best = F.binary_cross_entropy_with_logits(torch.full((8,), math.log(3.0), dtype=torch.float64), targets.double())
    assert chance_binary_cross_entropy(targets) == pytest.approx(float(best), rel=1e-12)
    for other in (0.9, 1.2):  # any other constant logit does worse
        assert float(F.binary_cross_entropy_with_logits(torch.full((8,), math.log(3.0) * other), targets)) > float(best)
    assert chance_binary_cross_entropy(torch.tensor([[1], [1]])) == 0.0
    with pytest.raises(ValueError, match="targets in \\[0, 1\\]"):
        chance_binary_cross_entropy(torch.tensor([0.0, 2.0]))


def test_chance_mse_is_the_variance():
    targets = torch.tensor([[1.0, 10.0], [3.0, 30.0], [5.0, 20.0]])
    assert chance_mse(targets) == pytest.approx(np.var(targets.double().numpy(), axis=0).mean(), rel=1e-12)


def test_seeded_init_seeds_inside_and_restores_outside():
    torch.manual_seed(123)
    before = torch.get_rng_state()
    with seeded_init(7):
        first = torch.randn(3)
    with seeded_init(7):
        second = torch.randn(3)
    assert torch.equal(first, second) and torch.equal(torch.get_rng_state(), before)
    assert torch.equal(first, torch.randn(3, generator=torch.Generator().manual_seed(7)))


def write_idx(path: Path, array: np.ndarray, code: int) -> None:
    dtype = {0x08: ">u1", 0x0C: ">i4", 0x0D: ">f4"}[code]
    header = bytes([0, 0, code, array.ndim]) + b"".join(int(n).to_bytes(4, "big") for n in array.shape)
    path.write_bytes(header + array.astype(dtype).tobytes())


def scale_pixels(x, targets):
    """A module-level transform (it travels to DataLoader workers)."""
    return x.float()[None] / 255, (targets[0].long(), targets[1])


@pytest.fixture()
def arrays(tmp_path):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(20, 5, 4), dtype=np.uint8)
    labels = rng.integers(0, 10, size=20).astype(np.int32)
    values = rng.normal(size=(20, 2)).astype(np.float32)
    write_idx(tmp_path / "images-idx3-ubyte", images, 0x08)
    write_idx(tmp_path / "labels-idx1-ubyte", labels, 0x0C)
    np.save(tmp_path / "values.npy", values)
    return tmp_path, images, labels, values


def test_memmap_dataset_reads_npy_and_idx_items_one_at_a_time(arrays):
    root, images, labels, values = arrays
    assert isinstance(map_array(root / "images-idx3-ubyte"), np.memmap)
    assert np.array_equal(map_array(root / "labels-idx1-ubyte"), labels)  # big-endian int32 on disk
    indices = np.array([4, 0, 19, 7])
    dataset = MemmapDataset(root / "images-idx3-ubyte", [root / "labels-idx1-ubyte", str(root / "values.npy")],
                            indices=indices)
    assert len(dataset) == 4
    x, (label, value) = dataset[2]
    assert x.dtype == torch.uint8 and np.array_equal(x.numpy(), images[19])
    assert int(label) == labels[19] and label.dtype == torch.int32 and np.array_equal(value.numpy(), values[19])
    with pytest.raises(IndexError):
        dataset[4]
    transformed = MemmapDataset(root / "images-idx3-ubyte", [root / "labels-idx1-ubyte", root / "values.npy"],
                                transform=scale_pixels)
    assert "_arrays" not in pickle.loads(pickle.dumps(transformed)).__dict__  # workers map the files themselves
    batches = list(iterate_batches(transformed, 8, "cpu", order=torch.arange(19, -1, -1), num_workers=1))
    x, (label, value) = batches[0]
    assert x.shape == (8, 1, 5, 4) and label.dtype == torch.int64
    np.testing.assert_allclose(x[:, 0].numpy(), images[19:11:-1] / 255, rtol=1e-6)
    assert np.array_equal(label.numpy(), labels[19:11:-1]) and np.array_equal(value.numpy(), values[19:11:-1])
    assert sum(len(b[0]) for b in batches) == 20


def test_memmap_dataset_and_map_array_errors_are_one_line(arrays, tmp_path):
    root, *_ = arrays
    (tmp_path / "short.npy").write_bytes(b"\x93NUMPY")
    (tmp_path / "trailing").write_bytes((root / "labels-idx1-ubyte").read_bytes() + b"\x00")
    np.save(tmp_path / "five.npy", np.zeros(5))
    cases = [
        (lambda: map_array(tmp_path / "missing"), FileNotFoundError, "no such file"),
        (lambda: map_array(tmp_path / "trailing"), ValueError, "IDX file has trailing bytes"),
        (lambda: map_array(tmp_path / "short.npy"), ValueError, "cannot map this .npy file"),
        (lambda: MemmapDataset(root / "images-idx3-ubyte", [tmp_path / "five.npy"]), ValueError,
         r"the same number of rows, got shapes \(20, 5, 4\), \(5,\)"),
        (lambda: MemmapDataset(root / "values.npy", [root / "values.npy"], indices=[0, 20]), ValueError,
         r"row numbers in 0..19, got 0..20"),
        (lambda: MemmapDataset(root / "values.npy", root / "values.npy"), ValueError, "targets must be a list"),
    ]
    for make, error, match in cases:
        with pytest.raises(error, match=match) as info:
            make()
        assert "\n" not in str(info.value)


def test_default_cache_dir(monkeypatch, tmp_path):
    monkeypatch.setenv("GRADNORM_TUNE_DATA", str(tmp_path / "data"))
    assert default_cache_dir() == tmp_path / "data"
    monkeypatch.delenv("GRADNORM_TUNE_DATA")
    assert default_cache_dir() == Path.home() / ".cache" / "gradnorm-tune" / "mnist"
