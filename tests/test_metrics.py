"""Metrics accumulated batch by batch equal a direct numpy computation over the whole split."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import gradnorm_core
from gradnorm_core.problems import MultiDigits, Split
from gradnorm_core.problems.metrics import (
    BinaryErrorRate,
    ErrorRate,
    MeanAbsoluteError,
    Metrics,
    NormalizedMSE,
    regression_metrics,
)

N = 53
# batch sizes that cut the N samples: one batch, equal batches and a ragged end, single samples,
# and an uneven mix
SPLITS = [[N], [8] * 6 + [5], [1] * N, [2, 17, 1, 30, 3]]


def cut(tensor: torch.Tensor, sizes: list[int]) -> list[torch.Tensor]:
    assert sum(sizes) == len(tensor)
    return list(torch.split(tensor, sizes))


def data(seed: int = 0, offset: float = 0.0):
    """Outputs and targets of three tasks: a (N, 4) regression, a (N,) regression whose outputs
    are (N, 1), and a 5-class classification."""
    g = torch.Generator().manual_seed(seed)
    reg = torch.randn(N, 4, generator=g, dtype=torch.float32) * torch.tensor([1.0, 3.0, 0.1, 10.0]) + offset
    reg_out = reg + torch.randn(N, 4, generator=g)
    scalar = torch.randn(N, generator=g) * 2.0 - 1.0 + offset
    scalar_out = (scalar + 0.5 * torch.randn(N, generator=g)).reshape(N, 1)
    labels = torch.randint(0, 5, (N,), generator=g)
    logits = torch.randn(N, 5, generator=g)
    logits[torch.arange(N)[: N // 2], labels[: N // 2]] += 3.0  # about half right for sure
    return [reg_out, scalar_out, logits], [reg, scalar, labels]


def metrics() -> Metrics:
    return Metrics([
        NormalizedMSE("reg", 0), MeanAbsoluteError("reg", 0),
        NormalizedMSE("scalar", 1), MeanAbsoluteError("scalar", 1),
        ErrorRate("cls", 2),
    ])


def accumulate(outputs, targets, sizes) -> dict[str, float]:
    accumulator = metrics()
    for batch in zip(*(cut(t, sizes) for t in outputs), *(cut(t, sizes) for t in targets)):
        accumulator.update(batch[:3], batch[3:])
    return accumulator.compute()


def direct(outputs, targets) -> dict[str, float]:
    """The formulas on the concatenated split, in numpy float64."""
    result = {}
    for task, index in (("reg", 0), ("scalar", 1)):
        t = targets[index].numpy().astype(np.float64)
        o = outputs[index].numpy().astype(np.float64).reshape(t.shape)
        mse = np.mean((o - t) ** 2)
        variance = np.mean(np.var(t.reshape(len(t), -1), axis=0))  # population, per output
        result[f"{task}/rmse"] = math.sqrt(mse)
        result[f"{task}/normalized_error"] = mse / variance
        result[f"{task}/mae"] = np.mean(np.abs(o - t))
    accuracy = np.mean(outputs[2].numpy().argmax(axis=1) == targets[2].numpy())
    result["cls/accuracy"] = accuracy
    result["cls/normalized_error"] = 1.0 - accuracy
    return result


@pytest.mark.parametrize("sizes", SPLITS, ids=["one", "equal", "singles", "uneven"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_accumulated_equals_direct_computation(sizes, seed):
    outputs, targets = data(seed)
    got, expected = accumulate(outputs, targets, sizes), direct(outputs, targets)
    assert set(got) == set(expected)
    for key, value in expected.items():
        assert got[key] == pytest.approx(value, rel=1e-12, abs=1e-15), key


def test_every_batch_split_gives_the_same_numbers():
    outputs, targets = data(3)
    results = [accumulate(outputs, targets, sizes) for sizes in SPLITS]
    for other in results[1:]:
        assert other == pytest.approx(results[0], rel=1e-12)


@pytest.mark.parametrize("sizes", SPLITS[1:], ids=["equal", "singles", "uneven"])
def test_variance_stays_accurate_for_targets_far_from_zero(sizes):
    # a mean 1e6 times the spread: sums of t and t**2 would cancel catastrophically in float64
    g = torch.Generator().manual_seed(4)
    target = (1e7 + torch.randn(N, 3, generator=g, dtype=torch.float64) * 10.0)
    output = target + torch.randn(N, 3, generator=g, dtype=torch.float64)
    metric = NormalizedMSE("far", 0)
    for o, t in zip(cut(output, sizes), cut(target, sizes)):
        metric.update([o], [t])
    t, o = target.numpy(), output.numpy()
    expected = np.mean((o - t) ** 2) / np.mean(np.var(t, axis=0))
    assert metric.compute()["far/normalized_error"] == pytest.approx(expected, rel=1e-9)


def test_reference_points_and_constant_targets():
    outputs, targets = data(5)
    perfect = accumulate([targets[0], targets[1], outputs[2]], targets, SPLITS[1])
    assert perfect["reg/normalized_error"] == 0.0 and perfect["reg/rmse"] == 0.0
    means = [targets[0].double().mean(0).expand(N, 4), targets[1].double().mean().expand(N, 1), outputs[2]]
    assert accumulate(means, targets, SPLITS[3])["reg/normalized_error"] == pytest.approx(1.0, rel=1e-12)
    constant = NormalizedMSE("c", 0)
    for size in (5, 5):
        constant.update([torch.zeros(size)], [torch.full((size,), 3.0)])
    assert constant.compute()["c/normalized_error"] == math.inf


def test_regression_metrics_keeps_its_meaning():
    outputs, targets = data(6)
    t, o = targets[0].double(), outputs[0].double()
    mse = torch.mean((o - t) ** 2)
    expected = mse / t.var(dim=0, unbiased=False).mean()
    got = regression_metrics("reg", outputs[0], targets[0])
    assert got["reg/normalized_error"] == pytest.approx(float(expected), rel=1e-12)
    assert got["reg/rmse"] == pytest.approx(float(mse.sqrt()), rel=1e-12)


def test_errors_are_one_line():
    with pytest.raises(ValueError, match="metric for task 'a' has seen no sample"):
        NormalizedMSE("a", 0).compute()
    with pytest.raises(ValueError, match="metric for task 'b' has seen no sample"):
        ErrorRate("b", 1).compute()
    with pytest.raises(ValueError, match="reads index 3, but the batch has 2 outputs and 2 targets"):
        ErrorRate("c", 3).update([torch.zeros(2, 3)] * 2, [torch.zeros(2)] * 2)
    with pytest.raises(ValueError, match="index must be an integer >= 0"):
        NormalizedMSE("d", -1)
    with pytest.raises(TypeError, match="each metric needs update"):
        Metrics([object()])


def test_exported():
    for name in ("ErrorRate", "BinaryErrorRate", "NormalizedMSE", "MeanAbsoluteError", "Metrics", "Split",
                 "higher_is_better"):
        assert name in gradnorm_core.__all__


@pytest.fixture(scope="module")
def digits():
    return MultiDigits(num_train=64, num_val=300, num_test=64, seed=2)


@pytest.mark.parametrize("batch_size", [7, 64, 1024])
def test_evaluate_batch_by_batch_equals_the_whole_split_at_once(digits, batch_size):
    model = digits.build_model(seed=1)
    split = digits.val
    with torch.no_grad():
        outputs = model(split.inputs)
        losses = digits.task_losses(outputs, split.targets)
    whole = digits.task_metrics(outputs, split.targets)
    result = digits.evaluate(model, split, batch_size=batch_size)
    for key, value in whole.items():
        assert result[key] == pytest.approx(value, rel=1e-9), key
    for task, loss in zip(digits.task_names, losses.tolist()):
        assert result[f"{task}/loss"] == pytest.approx(loss, rel=1e-5)
    assert result["score"] == pytest.approx(digits.score(whole), rel=1e-9)
    assert isinstance(split, Split)


def test_error_rate_refuses_shapes_it_would_miscount():
    """Binary logits (B, 1) against 0/1 targets used to give an accuracy of B/2: refused now."""
    logits, labels = torch.randn(12, 1), torch.randint(0, 2, (12, 1))
    for output, target, match in (
        (logits, labels, "1 class along class_dim -1; for a binary task with one logit use BinaryErrorRate"),
        (logits, labels.reshape(12), "1 class along class_dim"),
        (torch.randn(12, 3), labels, r"class indices, an integer tensor of shape \(12,\), got torch.int64 \(12, 1\)"),
        (torch.randn(12, 3), labels.reshape(12).float(), "got torch.float32"),
        (torch.randn(12), labels.reshape(12),
         r"shape \(\), got torch.int64 \(12,\); for 0/1 targets of one logit use BinaryErrorRate"),
    ):
        metric = ErrorRate("parity", 0)
        with pytest.raises(ValueError, match=match) as info:
            metric.update([output], [target])
        assert "\n" not in str(info.value) and metric.count == 0
    metric = ErrorRate("seg", 0, class_dim=1)  # (B, C, H, W) against (B, H, W)
    logits, labels = torch.randn(2, 4, 3, 3), torch.randint(0, 4, (2, 3, 3))
    metric.update([logits], [labels])
    assert metric.compute()["seg/accuracy"] == pytest.approx(float((logits.argmax(1) == labels).double().mean()))


@pytest.mark.parametrize("output_shape, target_shape, target_dtype", [
    ((N,), (N,), torch.float32), ((N, 1), (N,), torch.int64), ((N,), (N, 1), torch.bool),
    ((N, 1), (N, 1), torch.float64),
])
def test_binary_error_rate_counts_a_logit_above_zero_as_one(output_shape, target_shape, target_dtype):
    g = torch.Generator().manual_seed(3)
    logits = torch.randn(N, generator=g)
    labels = torch.randint(0, 2, (N,), generator=g)
    expected = np.mean((logits.numpy() > 0).astype(int) == labels.numpy())
    for sizes in SPLITS:
        metric = BinaryErrorRate("parity", 0)
        for out, target in zip(cut(logits, sizes), cut(labels, sizes)):
            target = target.reshape(-1, *target_shape[1:]).to(target_dtype)
            metric.update([out.reshape(-1, *output_shape[1:])], [target])
        result = metric.compute()
        assert result["parity/accuracy"] == pytest.approx(expected, abs=1e-15)
        assert result["parity/normalized_error"] == pytest.approx(1 - expected, abs=1e-15)
    assert 0 < expected < 1


def test_binary_error_rate_refuses_other_shapes_and_labels():
    for output, target, match in (
        (torch.randn(6, 2), torch.ones(6), r"output \(6, 2\) and targets \(6,\) must have the same shape"),
        (torch.randn(6), torch.ones(5), "must have the same shape"),
        (torch.randn(6), torch.tensor([0, 1, 2, 0, 1, 0]), "targets must be 0 or 1; for class indices"),
    ):
        metric = BinaryErrorRate("parity", 0)
        with pytest.raises(ValueError, match=match) as info:
            metric.update([output], [target])
        assert "\n" not in str(info.value) and metric.count == 0


def test_every_metric_name_has_one_direction_and_each_task_a_primary_metric():
    from gradnorm_core.problems.metrics import Metric

    expected = {"accuracy": True, "normalized_error": False, "rmse": False, "mae": False, "loss": False, "score": False}
    for name, higher in expected.items():
        assert gradnorm_core.higher_is_better(name) is higher
        assert gradnorm_core.higher_is_better(f"val/task/{name}") is higher
    with pytest.raises(ValueError, match="unknown metric name 'val/a/f1': no Metric declares 'f1'") as info:
        gradnorm_core.higher_is_better("val/a/f1")
    assert "\n" not in str(info.value)
    assert metrics().primary_metrics() == {"reg": "reg/rmse", "scalar": "scalar/rmse", "cls": "cls/accuracy"}
    assert metrics().task_kinds() == {"reg": "regression", "scalar": "regression", "cls": "classification"}
    assert MultiDigits(num_train=8, num_val=8, num_test=8).primary_metrics() == {
        "left": "left/accuracy", "right": "right/accuracy", "sum": "sum/rmse"}
    with pytest.raises(TypeError, match="metric name 'accuracy' is already declared higher-is-better"):
        type("Backwards", (Metric,), {"directions": {"accuracy": False}})

    class F1(Metric):  # a user's metric declares its own name
        directions = {"f1": True}
        primary = "f1"

        def update(self, outputs, targets):
            pass

        def compute(self):
            return {}

    assert gradnorm_core.higher_is_better("a/f1") is True


def test_a_scale_reports_in_the_targets_units():
    outputs, targets = data(seed=4)
    scaled = {}
    for scale in (1.0, 2.5):
        accumulator = Metrics([NormalizedMSE("reg", 0, scale=scale), MeanAbsoluteError("reg", 0, scale=scale)])
        accumulator.update(outputs, targets)
        scaled[scale] = accumulator.compute()
    assert scaled[2.5]["reg/rmse"] == pytest.approx(2.5 * scaled[1.0]["reg/rmse"], rel=1e-12)
    assert scaled[2.5]["reg/mae"] == pytest.approx(2.5 * scaled[1.0]["reg/mae"], rel=1e-12)
    assert scaled[2.5]["reg/normalized_error"] == scaled[1.0]["reg/normalized_error"]
    with pytest.raises(ValueError, match="scale must be a finite number > 0"):
        MeanAbsoluteError("reg", 0, scale=0.0)
