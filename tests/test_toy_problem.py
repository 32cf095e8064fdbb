"""The GradNorm paper's toy regression: data, model, losses, metrics, determinism."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from gradnorm_core.problems import MultiHeadNet, Split, ToyRegression
from gradnorm_core.problems.base import regression_metrics

SMALL = dict(num_train=64, num_val=32, num_test=16)


def small(sigmas=(1.0, 100.0), seed=0, **kw) -> ToyRegression:
    return ToyRegression(sigmas, seed=seed, **{**SMALL, **kw})


def test_shapes_and_names():
    p = small((1.0, 2.0, 3.0))
    assert p.task_names == ("task0", "task1", "task2")
    assert p.num_tasks == 3
    assert p.B.shape == (100, 250)
    assert p.eps.shape == (3, 100, 250)
    for split, n in ((p.train, 64), (p.val, 32), (p.test, 16)):
        assert isinstance(split, Split)
        assert len(split) == n
        assert split.inputs.shape == (n, 250) and split.inputs.dtype == torch.float32
        assert len(split.targets) == 3
        for t in split.targets:
            assert t.shape == (n, 100) and t.dtype == torch.float32


def test_default_sizes():
    p = ToyRegression((1.0, 100.0))
    assert (len(p.train), len(p.val), len(p.test)) == (2000, 500, 500)


def test_targets_match_independent_float64_recomputation():
    sigmas = (1.0, 7.5, 100.0)
    p = small(sigmas, seed=3)
    B = p.B.double().numpy()
    eps = p.eps.double().numpy()
    for split in (p.train, p.val, p.test):
        x = split.inputs.double().numpy()
        for i, sigma in enumerate(sigmas):
            expected = sigma * np.tanh(x @ (B + eps[i]).T)
            np.testing.assert_allclose(split.targets[i].numpy(), expected, rtol=1e-4, atol=1e-4 * sigma)


def test_random_quantities_have_the_papers_distributions():
    p = ToyRegression([1.0] * 4, num_train=2000, num_val=1, num_test=1, seed=1)
    # Variances 10 and 3.5 (the paper's N(0, 10) and N(0, 3.5) read as variances), standard
    # normal inputs; tolerances are several standard errors of the sample estimates.
    assert abs(p.B.mean().item()) < 0.1
    assert p.B.var().item() == pytest.approx(10.0, rel=0.05)
    assert p.eps.var().item() == pytest.approx(3.5, rel=0.05)
    assert abs(p.train.inputs.mean().item()) < 0.01
    assert p.train.inputs.var().item() == pytest.approx(1.0, rel=0.02)
    # The tasks' eps_i are distinct draws.
    assert not torch.allclose(p.eps[0], p.eps[1])


def test_targets_over_sigma_are_saturated_tanh():
    p = small((2.0, 50.0))
    for sigma, t in zip(p.sigmas, p.train.targets):
        ratio = t / sigma
        assert ratio.abs().max() <= 1.0
        # Pre-activation std ~58: nearly every output is +-1 after the tanh (documented).
        assert ratio.abs().mean() > 0.95
        assert abs(ratio.mean().item()) < 0.2


def test_scaling_one_sigma_scales_only_that_task():
    a = small((1.0, 100.0), seed=5)
    b = small((1.0, 300.0), seed=5)
    torch.testing.assert_close(a.B, b.B)
    torch.testing.assert_close(a.eps, b.eps)
    for sa, sb in ((a.train, b.train), (a.val, b.val), (a.test, b.test)):
        torch.testing.assert_close(sa.inputs, sb.inputs)
        torch.testing.assert_close(sa.targets[0], sb.targets[0])
        torch.testing.assert_close(sa.targets[1] * 3.0, sb.targets[1], rtol=1e-5, atol=1e-4)


def test_score_is_scale_free_for_a_model_scaled_with_its_task():
    a = small((1.0, 100.0), seed=5)
    b = small((1.0, 300.0), seed=5)
    model = a.build_model(seed=0)
    with torch.no_grad():
        outputs_a = model(a.val.inputs)
    outputs_b = [outputs_a[0], outputs_a[1] * 3.0]
    metrics_a = a.task_metrics(outputs_a, a.val.targets)
    metrics_b = b.task_metrics(outputs_b, b.val.targets)
    for task in a.task_names:
        assert metrics_b[f"{task}/normalized_error"] == pytest.approx(
            metrics_a[f"{task}/normalized_error"], rel=1e-5
        )
    assert metrics_b["task1/rmse"] == pytest.approx(3.0 * metrics_a["task1/rmse"], rel=1e-5)
    assert b.score(metrics_b) == pytest.approx(a.score(metrics_a), rel=1e-5)
    # The losses, unlike the score, are not scale-free: task1's grows by 3**2.
    loss_a = a.task_losses(outputs_a, a.val.targets)
    loss_b = b.task_losses(outputs_b, b.val.targets)
    assert loss_b[1].item() == pytest.approx(9.0 * loss_a[1].item(), rel=1e-4)


@pytest.mark.parametrize("c", [1e-3, 0.5, 7.0, 1e4])
def test_regression_metric_is_scale_invariant(c):
    gen = torch.Generator().manual_seed(0)
    target = torch.randn(50, 20, generator=gen) * 3.0 + 1.0
    output = target + torch.randn(50, 20, generator=gen)
    base = regression_metrics("t", output, target)
    scaled = regression_metrics("t", c * output, c * target)
    assert scaled["t/normalized_error"] == pytest.approx(base["t/normalized_error"], rel=1e-6)
    assert scaled["t/rmse"] == pytest.approx(c * base["t/rmse"], rel=1e-6)


def test_normalized_error_reference_points():
    p = small((1.0, 100.0))
    targets = p.val.targets
    # Perfect predictions score 0; predicting each output column's mean scores exactly 1.
    perfect = p.task_metrics(list(targets), targets)
    column_means = [t.double().mean(dim=0, keepdim=True).expand_as(t) for t in targets]
    means = p.task_metrics(column_means, targets)
    for task in p.task_names:
        assert perfect[f"{task}/normalized_error"] == 0.0
        assert perfect[f"{task}/rmse"] == 0.0
        assert means[f"{task}/normalized_error"] == pytest.approx(1.0, rel=1e-9)


def test_losses_and_metrics_match_independent_computation():
    p = small((2.0, 30.0))
    gen = torch.Generator().manual_seed(1)
    outputs = [torch.randn(32, 100, generator=gen) * s for s in p.sigmas]
    targets = p.val.targets
    losses = p.task_losses(outputs, targets)
    assert losses.shape == (2,)
    metrics = p.task_metrics(outputs, targets)
    for i, (o, t) in enumerate(zip(outputs, targets)):
        o64, t64 = o.double().numpy(), t.double().numpy()
        mse = np.mean((o64 - t64) ** 2)
        assert losses[i].item() == pytest.approx(mse, rel=1e-5)
        assert metrics[f"task{i}/rmse"] == pytest.approx(math.sqrt(mse), rel=1e-9)
        variance = np.mean(np.var(t64, axis=0))
        assert metrics[f"task{i}/normalized_error"] == pytest.approx(mse / variance, rel=1e-9)


def test_same_seed_identical_different_seed_different():
    a, b, c = small(seed=11), small(seed=11), small(seed=12)
    torch.testing.assert_close(a.B, b.B, rtol=0, atol=0)
    for sa, sb, sc in ((a.train, b.train, c.train), (a.val, b.val, c.val), (a.test, b.test, c.test)):
        assert torch.equal(sa.inputs, sb.inputs)
        assert all(torch.equal(x, y) for x, y in zip(sa.targets, sb.targets))
        assert not torch.equal(sa.inputs, sc.inputs)
    assert not torch.equal(a.B, c.B)
    # The three splits are distinct draws.
    assert not torch.equal(a.train.inputs[:16], a.val.inputs[:16])
    assert not torch.equal(a.val.inputs[:16], a.test.inputs)


def test_changing_split_sizes_keeps_other_splits_and_prefixes():
    a = small(seed=2)
    b = ToyRegression((1.0, 100.0), num_train=10, num_val=32, num_test=16, seed=2)
    assert torch.equal(a.val.inputs, b.val.inputs)
    assert torch.equal(a.test.inputs, b.test.inputs)


def test_no_global_rng_is_used():
    torch.manual_seed(123)
    np.random.seed(123)
    torch_state, np_state = torch.get_rng_state(), np.random.get_state()
    p = small(seed=4)
    p.build_model(seed=9)
    ToyRegression.paper_t10(**SMALL)
    assert torch.equal(torch.get_rng_state(), torch_state)
    assert np.random.get_state()[1].tolist() == np_state[1].tolist()


def test_model_architecture_and_deterministic_init():
    p = small((1.0, 2.0, 3.0))
    model = p.build_model(seed=0)
    assert isinstance(model, MultiHeadNet)
    linears = [m for m in model.trunk.modules() if isinstance(m, torch.nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linears] == [(250, 100)] + [(100, 100)] * 3
    relus = [m for m in model.trunk.modules() if isinstance(m, torch.nn.ReLU)]
    assert len(relus) == 4
    assert model.last_shared_layer is linears[-1]
    assert len(model.heads) == 3
    assert all(isinstance(h, torch.nn.Linear) and (h.in_features, h.out_features) == (100, 100) for h in model.heads)
    outputs = model(p.val.inputs)
    assert [o.shape for o in outputs] == [(32, 100)] * 3

    same, other = p.build_model(seed=0), p.build_model(seed=1)
    for x, y, z in zip(model.parameters(), same.parameters(), other.parameters()):
        assert torch.equal(x, y)
        assert not torch.equal(x, z)


def test_evaluate_returns_all_keys_finite():
    p = small((1.0, 100.0))
    result = p.evaluate(p.build_model(), p.val, batch_size=10)
    expected = {"score"} | {f"task{i}/{k}" for i in range(2) for k in ("loss", "rmse", "normalized_error")}
    assert set(result) == expected
    assert all(math.isfinite(v) for v in result.values())
    assert result["score"] == pytest.approx(
        (result["task0/normalized_error"] + result["task1/normalized_error"]) / 2
    )


def test_training_reduces_the_score():
    p = ToyRegression((1.0, 100.0), num_train=2000, num_val=256, num_test=1, seed=0)
    model = p.build_model(seed=0)
    before_train = p.evaluate(model, p.train)["score"]
    before_val = p.evaluate(model, p.val)["score"]
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    gen = torch.Generator().manual_seed(0)
    for _ in range(300):
        x, targets = p.train.batch(torch.randint(0, len(p.train), (64,), generator=gen))
        # Normalised by sigma**2 so both tasks learn; this tests the problem, not a balancer.
        losses = p.task_losses(model(x), targets) / torch.tensor(p.sigmas) ** 2
        optimizer.zero_grad()
        losses.sum().backward()
        optimizer.step()
    # Saturated-tanh targets are slow to fit (about 0.84 train / 0.89 val after 300 steps).
    assert p.evaluate(model, p.train)["score"] < 0.9 * before_train
    assert p.evaluate(model, p.val)["score"] < 0.95 * before_val


def test_presets():
    t2 = ToyRegression.paper_t2(**SMALL)
    assert t2.sigmas == (1.0, 100.0)
    assert t2.num_tasks == 2

    t10 = ToyRegression.paper_t10(**SMALL, seed=0)
    assert t10.num_tasks == 10
    assert t10.sigmas == ToyRegression.t10_sigmas(0)
    assert all(1.0 <= s <= 100.0 for s in t10.sigmas)
    assert len(set(t10.sigmas)) == 10
    assert ToyRegression.paper_t10(**SMALL, seed=0).sigmas == t10.sigmas
    assert ToyRegression.paper_t10(**SMALL, seed=1).sigmas != t10.sigmas
    # Over many seeds the draws cover [1, 100] roughly uniformly.
    many = np.array([ToyRegression.t10_sigmas(s) for s in range(50)]).ravel()
    assert many.min() < 5 and many.max() > 95
    assert np.mean(many) == pytest.approx(50.5, abs=5)


@pytest.mark.parametrize(
    ("kwargs", "needle"),
    [
        (dict(sigmas=()), "sigmas"),
        (dict(sigmas=(1.0, 0.0)), "sigmas[1]"),
        (dict(sigmas=(-2.0,)), "sigmas[0]"),
        (dict(sigmas=(float("nan"),)), "sigmas[0]"),
        (dict(sigmas=(float("inf"),)), "sigmas[0]"),
        (dict(sigmas=("a",)), "sigmas"),
        (dict(sigmas=5.0), "sigmas"),
        (dict(sigmas=(1.0,), num_train=0), "num_train"),
        (dict(sigmas=(1.0,), num_val=-1), "num_val"),
        (dict(sigmas=(1.0,), num_test=2.5), "num_test"),
        (dict(sigmas=(1.0,), seed=-1), "seed"),
    ],
)
def test_bad_arguments_raise_one_line_value_error(kwargs, needle):
    with pytest.raises(ValueError) as info:
        ToyRegression(**kwargs)
    message = str(info.value)
    assert needle in message
    assert "\n" not in message
