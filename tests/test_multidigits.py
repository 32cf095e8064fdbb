"""MultiDigits (two overlapping scikit-learn digits) and the problem registry."""

from __future__ import annotations

import math
import subprocess
import sys

import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits

from gradnorm_core.problems import (
    PROBLEMS,
    MultiDigits,
    MultiHeadNet,
    Problem,
    ToyRegression,
    make_problem,
)


@pytest.fixture(scope="module")
def digits():
    return load_digits()


@pytest.fixture(scope="module")
def problem():
    return MultiDigits(num_train=600, num_val=300, num_test=200, seed=0)


def splits(p):
    return (
        (p.train, p.train_sources, p.train_pool),
        (p.val, p.val_sources, p.val_pool),
        (p.test, p.test_sources, p.test_pool),
    )


def test_shapes_and_dtypes(problem):
    assert problem.task_names == ("left", "right", "sum")
    for (split, sources, _), n in zip(splits(problem), (600, 300, 200)):
        assert len(split) == n
        assert split.inputs.shape == (n, 144) and split.inputs.dtype == torch.float32
        left, right, total = split.targets
        assert left.shape == right.shape == total.shape == (n,)
        assert left.dtype == right.dtype == torch.int64
        assert total.dtype == torch.float32
        assert sources.shape == (n, 2)


def test_default_sizes():
    p = MultiDigits()
    assert (len(p.train), len(p.val), len(p.test)) == (4000, 1000, 1000)


def test_labels_and_pixel_ranges(problem):
    for split, _, _ in splits(problem):
        left, right, total = split.targets
        assert left.min() >= 0 and left.max() <= 9
        assert right.min() >= 0 and right.max() <= 9
        assert total.min() >= 0 and total.max() <= 18
        assert torch.equal(total, (left + right).float())
        assert split.inputs.min() >= 0.0 and split.inputs.max() <= 1.0
        assert split.inputs.max() == 1.0  # some pixel is at full intensity 16/16
    # Over 600 random pairs every class appears on both sides.
    assert set(problem.train.targets[0].tolist()) == set(range(10))
    assert set(problem.train.targets[1].tolist()) == set(range(10))


def test_canvas_matches_independent_reconstruction(problem, digits):
    for split, sources, _ in splits(problem):
        for k in (0, 1, 7, len(split) - 1):
            li, ri = sources[k]
            expected = np.zeros((12, 12))
            for r in range(12):
                for c in range(12):
                    values = []
                    if r < 8 and c < 8:
                        values.append(digits.images[li][r, c])
                    if r >= 4 and c >= 4:
                        values.append(digits.images[ri][r - 4, c - 4])
                    expected[r, c] = max(values) / 16.0 if values else 0.0
            got = split.inputs[k].reshape(12, 12).double().numpy()
            np.testing.assert_allclose(got, expected, atol=1e-7)
            assert split.targets[0][k].item() == digits.target[li]
            assert split.targets[1][k].item() == digits.target[ri]
            assert split.targets[2][k].item() == digits.target[li] + digits.target[ri]


def test_all_labels_match_sources(problem, digits):
    for split, sources, _ in splits(problem):
        np.testing.assert_array_equal(split.targets[0].numpy(), digits.target[sources[:, 0]])
        np.testing.assert_array_equal(split.targets[1].numpy(), digits.target[sources[:, 1]])


def test_digits_are_read_as_load_digits_gives_them_without_importing_sklearn(digits, monkeypatch):
    from gradnorm_core.problems import multidigits

    code = ("import sys; from gradnorm_core.problems.multidigits import _load_digits; images, labels = _load_digits(); "
            "print(images.shape, labels.shape, 'sklearn' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.split() == ["(1797,", "8,", "8)", "(1797,)", "False"]
    for where in (multidigits.DIGITS_FILE, ("no", "such", "file.csv.gz")):  # the file, then load_digits
        multidigits._load_digits.cache_clear()
        monkeypatch.setattr(multidigits, "DIGITS_FILE", where)
        images, labels = multidigits._load_digits()
        np.testing.assert_array_equal(images, digits.images.astype(np.float32))
        np.testing.assert_array_equal(labels, digits.target)
        assert images.dtype == np.float32 and labels.dtype == np.int64 and not images.flags.writeable
    multidigits._load_digits.cache_clear()


def test_source_pools_are_disjoint_and_cover_the_data(problem):
    pools = [set(pool.tolist()) for _, _, pool in splits(problem)]
    assert not pools[0] & pools[1]
    assert not pools[0] & pools[2]
    assert not pools[1] & pools[2]
    assert set().union(*pools) == set(range(1797))
    assert [len(p) for p in pools] == [1078, 359, 360]
    for (_, sources, _), pool in zip(splits(problem), pools):
        assert set(sources.ravel().tolist()) <= pool
    # The canvases themselves never repeat across splits.
    train_rows = {tuple(row) for row in problem.train.inputs.numpy().round(6).tolist()}
    for split in (problem.val, problem.test):
        assert not any(tuple(row) in train_rows for row in split.inputs.numpy().round(6).tolist())


def test_deterministic_from_seed(problem):
    same = MultiDigits(num_train=600, num_val=300, num_test=200, seed=0)
    other = MultiDigits(num_train=600, num_val=300, num_test=200, seed=1)
    for (a, sa, pa), (b, sb, pb), (c, sc, pc) in zip(splits(problem), splits(same), splits(other)):
        assert torch.equal(a.inputs, b.inputs)
        assert all(torch.equal(x, y) for x, y in zip(a.targets, b.targets))
        np.testing.assert_array_equal(sa, sb)
        np.testing.assert_array_equal(pa, pb)
        assert not torch.equal(a.inputs, c.inputs)
        assert not np.array_equal(pa, pc)


def test_no_global_rng_is_used():
    torch.manual_seed(7)
    np.random.seed(7)
    torch_state, np_state = torch.get_rng_state(), np.random.get_state()
    p = MultiDigits(num_train=10, num_val=10, num_test=10, seed=3)
    p.build_model(seed=5)
    assert torch.equal(torch.get_rng_state(), torch_state)
    assert np.random.get_state()[1].tolist() == np_state[1].tolist()


def test_model_architecture_and_deterministic_init(problem):
    model = problem.build_model(seed=0)
    assert isinstance(model, MultiHeadNet)
    linears = [m for m in model.trunk.modules() if isinstance(m, torch.nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linears] == [(144, 128), (128, 128)]
    assert model.last_shared_layer is linears[-1]
    assert [(h.in_features, h.out_features) for h in model.heads] == [(128, 10), (128, 10), (128, 1)]
    outputs = model(problem.val.inputs)
    assert [tuple(o.shape) for o in outputs] == [(300, 10), (300, 10), (300, 1)]
    same, other = problem.build_model(seed=0), problem.build_model(seed=1)
    for x, y, z in zip(model.parameters(), same.parameters(), other.parameters()):
        assert torch.equal(x, y)
        assert not torch.equal(x, z)


def test_losses_match_independent_computation(problem):
    gen = torch.Generator().manual_seed(0)
    n = len(problem.val)
    outputs = [torch.randn(n, 10, generator=gen), torch.randn(n, 10, generator=gen), torch.randn(n, 1, generator=gen) * 5]
    left, right, total = problem.val.targets
    losses = problem.task_losses(outputs, problem.val.targets)
    assert losses.shape == (3,)

    def cross_entropy(logits, labels):
        z = logits.double().numpy()
        log_softmax = z - z.max(axis=1, keepdims=True)
        log_softmax -= np.log(np.exp(log_softmax).sum(axis=1, keepdims=True))
        return -np.mean(log_softmax[np.arange(len(z)), labels.numpy()])

    assert losses[0].item() == pytest.approx(cross_entropy(outputs[0], left), rel=1e-5)
    assert losses[1].item() == pytest.approx(cross_entropy(outputs[1], right), rel=1e-5)
    mse = np.mean((outputs[2].double().numpy()[:, 0] - total.double().numpy()) ** 2)
    assert losses[2].item() == pytest.approx(mse, rel=1e-5)


def test_metrics_match_independent_computation_and_are_scale_free(problem):
    gen = torch.Generator().manual_seed(1)
    n = len(problem.val)
    left, right, total = problem.val.targets
    outputs = [torch.randn(n, 10, generator=gen), torch.randn(n, 10, generator=gen), total[:, None] + torch.randn(n, 1, generator=gen)]
    metrics = problem.task_metrics(outputs, problem.val.targets)
    for task, logits, labels in (("left", outputs[0], left), ("right", outputs[1], right)):
        accuracy = np.mean(logits.numpy().argmax(axis=1) == labels.numpy())
        assert metrics[f"{task}/accuracy"] == pytest.approx(accuracy)
        assert metrics[f"{task}/normalized_error"] == pytest.approx(1 - accuracy)
    t = total.double().numpy()
    mse = np.mean((outputs[2].double().numpy()[:, 0] - t) ** 2)
    assert metrics["sum/rmse"] == pytest.approx(math.sqrt(mse))
    assert metrics["sum/normalized_error"] == pytest.approx(mse / np.var(t))

    # Multiplying the sum task's outputs and targets by c changes its loss by c**2 but not its
    # normalized error, nor the score.
    c = 12.5
    scaled_targets = (left, right, total * c)
    scaled = problem.task_metrics([outputs[0], outputs[1], outputs[2] * c], scaled_targets)
    assert scaled["sum/normalized_error"] == pytest.approx(metrics["sum/normalized_error"], rel=1e-6)
    assert problem.score(scaled) == pytest.approx(problem.score(metrics), rel=1e-6)
    # A constant prediction of the mean sum scores exactly 1.
    mean_prediction = torch.full((n, 1), float(t.mean()))
    assert problem.task_metrics([outputs[0], outputs[1], mean_prediction], problem.val.targets)[
        "sum/normalized_error"
    ] == pytest.approx(1.0, rel=1e-6)


def test_evaluate_returns_finite_values_for_all_keys(problem):
    result = problem.evaluate(problem.build_model(), problem.val, batch_size=64)
    expected = {
        "left/loss", "right/loss", "sum/loss",
        "left/accuracy", "left/normalized_error",
        "right/accuracy", "right/normalized_error",
        "sum/rmse", "sum/normalized_error", "score",
    }
    assert set(result) == expected
    assert all(math.isfinite(v) for v in result.values())
    # Untrained: near-chance accuracy, cross-entropy near ln 10.
    assert result["left/loss"] == pytest.approx(math.log(10), rel=0.1)
    assert result["left/accuracy"] < 0.3


def test_short_training_beats_chance():
    p = MultiDigits(num_train=3000, num_val=500, num_test=1, seed=0)
    model = p.build_model(seed=0)
    optimizer = torch.optim.Adam(model.parameters(), lr=2e-3)
    gen = torch.Generator().manual_seed(0)
    for _ in range(300):
        x, targets = p.train.batch(torch.randint(0, len(p.train), (128,), generator=gen))
        loss = p.task_losses(model(x), targets).sum()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    result = p.evaluate(model, p.val)
    # Chance is 0.1; held-out pairs are built from source digits never seen in training. The
    # unweighted sum is dominated by the sum task's MSE, so after 300 steps accuracies are about
    # 0.5 (seeds 0-2); the bounds leave room for that spread.
    assert result["left/accuracy"] > 0.3
    assert result["right/accuracy"] > 0.3
    assert result["sum/normalized_error"] < 0.7
    assert result["score"] < 0.7


@pytest.mark.parametrize(
    ("kwargs", "needle"),
    [
        (dict(num_train=0), "num_train"),
        (dict(num_val=-3), "num_val"),
        (dict(num_test=1.5), "num_test"),
        (dict(num_train=True), "num_train"),
        (dict(seed=-1), "seed"),
    ],
)
def test_bad_arguments_raise_one_line_value_error(kwargs, needle):
    with pytest.raises(ValueError) as info:
        MultiDigits(**kwargs)
    assert needle in str(info.value)
    assert "\n" not in str(info.value)


# --- the registry -----------------------------------------------------------------------------

SMALL = dict(num_train=8, num_val=4, num_test=4)


def test_registry_names():
    assert set(PROBLEMS) == {"toy", "toy_t2", "toy_t10", "multidigits", "multimnist", "qm9"}


def test_make_problem_builds_each_problem():
    toy = make_problem("toy", sigmas=[1.0, 2.0, 4.0], seed=3, **SMALL)
    assert isinstance(toy, ToyRegression) and toy.sigmas == (1.0, 2.0, 4.0) and toy.seed == 3
    t2 = make_problem("toy_t2", **SMALL)
    assert isinstance(t2, ToyRegression) and t2.sigmas == (1.0, 100.0)
    t10 = make_problem("toy_t10", seed=2, **SMALL)
    assert t10.num_tasks == 10 and t10.sigmas == ToyRegression.t10_sigmas(2)
    md = make_problem("multidigits", **SMALL)
    assert isinstance(md, MultiDigits) and len(md.train) == 8
    assert all(isinstance(p, Problem) for p in (toy, t2, t10, md))


def test_make_problem_unknown_name():
    with pytest.raises(ValueError, match=r"unknown problem 'mnist'; choose one of: toy, toy_t2, toy_t10, multidigits"):
        make_problem("mnist")


@pytest.mark.parametrize(
    ("name", "options", "pattern"),
    [
        ("toy_t2", dict(sigmas=[1.0, 2.0]), r"unknown option 'sigmas' for problem 'toy_t2'; accepted options: num_train, num_val, num_test, seed"),
        ("multidigits", dict(num_trian=10), r"unknown option 'num_trian' for problem 'multidigits'"),
        ("toy", dict(), r"problem 'toy' needs option 'sigmas'"),
        ("toy", dict(sigmas=[]), r"sigmas"),
        ("toy_t10", dict(num_val=0), r"num_val"),
    ],
)
def test_make_problem_bad_options(name, options, pattern):
    with pytest.raises(ValueError, match=pattern) as info:
        make_problem(name, **options)
    assert "\n" not in str(info.value)
