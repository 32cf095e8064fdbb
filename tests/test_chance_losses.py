"""Problem.chance_losses (the loss of the best constant prediction on the train split) and
GradNorm's ``initial_losses`` rules: "first_step" (the default), "chance", or T numbers."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn
from torch.nn import functional as F

import gradnorm_core
from gradnorm_core import INITIAL_LOSS_RULES, GradNorm, make_problem, resolve_initial_losses
from gradnorm_core.__main__ import main, parse_method
from gradnorm_core import chance_cross_entropy, chance_mse, default_cache_dir
from gradnorm_core.data.mnist import load_mnist
from gradnorm_core.data.qm9 import load_qm9
from gradnorm_core.problems import QM9, MultiDigits, MultiMNIST, Problem, Split, ToyRegression
from gradnorm_core.problems.base import MultiHeadNet
from test_multimnist import synthetic_mnist
from test_qm9 import NAMES as QM9_NAMES
from test_qm9 import needs_qm9pack
from test_qm9 import synthetic as synthetic_qm9
from trainables import TrialConfig, TrialConfigError

SMALL = {"num_train": 300, "num_val": 20, "num_test": 20}


# --- an independent computation: optimise a free constant prediction through the problem's loss


def constant_prediction_losses(problem: Problem) -> list[float]:
    """Per task, the minimum over a free constant output (one value per output element, shared by
    every train sample) of the problem's own ``task_losses`` on the train split, found by LBFGS
    in float64 from zeros. Each task is optimised alone (losses differ by orders of magnitude)."""
    targets = [t.double() if t.is_floating_point() else t for t in problem.train.targets]
    count = len(problem.train)
    with torch.no_grad():
        shapes = [o.shape[1:] for o in problem.build_model()(problem.train.inputs[:1])]
    constants = [torch.zeros(shape, dtype=torch.float64) for shape in shapes]
    found = []
    for task in range(problem.num_tasks):
        free = constants[task].clone().requires_grad_(True)
        optimizer = torch.optim.LBFGS([free], lr=1, max_iter=500, tolerance_grad=1e-12,
                                      tolerance_change=1e-16, line_search_fn="strong_wolfe")

        def loss() -> torch.Tensor:
            outputs = [c.expand(count, *c.shape) for c in constants]
            outputs[task] = free.expand(count, *free.shape)
            return problem.task_losses(outputs, targets)[task]

        def closure() -> torch.Tensor:
            optimizer.zero_grad()
            value = loss()
            value.backward()
            return value

        for _ in range(5):
            optimizer.step(closure)
        with torch.no_grad():
            found.append(float(loss()))
    return found


def entropy(labels: np.ndarray) -> float:
    _, counts = np.unique(labels, return_counts=True)
    p = counts / counts.sum()
    return float(-(p * np.log(p)).sum())


def population_variance(targets: np.ndarray) -> float:
    flat = np.asarray(targets, dtype=np.float64).reshape(len(targets), -1)
    return float(np.mean(np.mean((flat - flat.mean(axis=0)) ** 2, axis=0)))


def check_against_constant_predictions(problem: Problem) -> list[float]:
    chance = problem.chance_losses()
    assert isinstance(chance, list) and len(chance) == problem.num_tasks
    assert all(isinstance(v, float) and math.isfinite(v) and v > 0 for v in chance)
    optimised = constant_prediction_losses(problem)
    np.testing.assert_allclose(chance, optimised, rtol=1e-7)
    # no constant does better than chance (up to rounding): it is the minimum, not just a value
    assert all(c <= o * (1 + 1e-9) for c, o in zip(chance, optimised))
    return chance


# --- each built-in problem -------------------------------------------------------------------


@pytest.mark.parametrize("sigmas", [(1.0, 100.0), (2.0, 0.5, 30.0)])
def test_toy_is_the_mean_over_outputs_of_each_outputs_variance(sigmas):
    problem = ToyRegression(sigmas, seed=1, **SMALL)
    chance = check_against_constant_predictions(problem)
    expected = [population_variance(t.numpy()) for t in problem.train.targets]
    np.testing.assert_allclose(chance, expected, rtol=1e-12)
    # targets sit near +-sigma_i (a saturated tanh): chance is close to sigma_i ** 2
    np.testing.assert_allclose(chance, np.square(sigmas), rtol=0.2)
    # not the variance of all elements pooled: the constant may differ per output
    pooled = [float(np.var(t.numpy().astype(np.float64))) for t in problem.train.targets]
    assert all(c <= p for c, p in zip(chance, pooled))


@pytest.mark.parametrize("name", ["toy_t2", "toy_t10"])
def test_registered_toy_problems(name):
    problem = make_problem(name, seed=0, **SMALL)
    check_against_constant_predictions(problem)


def test_multidigits_is_label_entropies_and_sum_variance():
    problem = MultiDigits(seed=2, **SMALL)
    left, right, total = (t.numpy() for t in problem.train.targets)
    assert set(left.tolist()) == set(right.tolist()) == set(range(10))  # LBFGS reaches the optimum
    chance = check_against_constant_predictions(problem)
    np.testing.assert_allclose(chance[:2], [entropy(left), entropy(right)], rtol=1e-12)
    # the sum from the raw digit labels of its sources, not from the split's tensors
    from gradnorm_core.problems.multidigits import _load_digits

    labels = _load_digits()[1]
    raw_sum = labels[problem.train_sources[:, 0]] + labels[problem.train_sources[:, 1]]
    assert chance[2] == pytest.approx(float(np.var(raw_sum.astype(np.float64))), rel=1e-12)
    assert chance[0] == pytest.approx(math.log(10), rel=0.01) and chance[2] == pytest.approx(16.5, rel=0.15)


def test_multimnist_on_arrays_is_label_entropies():
    arrays = synthetic_mnist()
    problem = MultiMNIST.from_arrays(*arrays, num_train=400, num_val=100, num_test=150, seed=0)
    chance = check_against_constant_predictions(problem)
    train_labels = arrays[1].astype(np.int64)
    expected = [entropy(train_labels[problem.train_sources[:, k]]) for k in (0, 1)]
    np.testing.assert_allclose(chance, expected, rtol=1e-12)


def test_multimnist_real_if_present():
    directory = default_cache_dir()
    try:
        data = load_mnist(directory)
    except FileNotFoundError:
        pytest.skip(f"MNIST not found in {directory}; run gradnorm-tune data mnist")
    problem = MultiMNIST(num_train=500, num_val=100, num_test=100, seed=0)
    chance = check_against_constant_predictions(problem)
    labels = data["train_labels"].astype(np.int64)
    expected = [entropy(labels[problem.train_sources[:, k]]) for k in (0, 1)]
    np.testing.assert_allclose(chance, expected, rtol=1e-12)


def check_qm9(problem: QM9, targets: np.ndarray) -> list[float]:
    chance = check_against_constant_predictions(problem)
    # raw targets, not standardised: the loss sees them as stored (float32)
    raw = targets[problem.train_index].astype(np.float32)
    np.testing.assert_allclose(chance, [population_variance(raw[:, k]) for k in range(raw.shape[1])],
                               rtol=1e-10)
    np.testing.assert_allclose(chance, targets[problem.train_index].var(axis=0), rtol=1e-4)
    return chance


def test_qm9_on_arrays_is_the_raw_target_variances():
    descriptors, targets = synthetic_qm9()
    problem = QM9.from_arrays(descriptors, targets, QM9_NAMES, num_train=300, num_val=150,
                              num_test=100, seed=0, targets="raw")
    chance = check_qm9(problem, targets)
    assert chance[2] / chance[0] > 1e9  # scales from 0.01 to 1000: the raw variances differ as much


def test_qm9_on_standardized_targets_is_about_one():
    """z-scores on the train split's statistics: each chance loss is the variance of the stored
    float32 z-scores, 1 up to rounding."""
    descriptors, targets = synthetic_qm9()
    problem = QM9.from_arrays(descriptors, targets, QM9_NAMES, num_train=300, num_val=150, num_test=100, seed=0)
    train = targets[problem.train_index]
    z = ((train - train.mean(0)) / train.std(0)).astype(np.float32)
    np.testing.assert_allclose(problem.chance_losses(), [population_variance(z[:, k]) for k in range(z.shape[1])],
                               rtol=1e-10)
    np.testing.assert_allclose(problem.chance_losses(), 1.0, rtol=1e-5)


@needs_qm9pack
def test_qm9_real_data(tmp_path, monkeypatch):
    monkeypatch.setenv("GRADNORM_TUNE_DATA", str(tmp_path))
    targets, names, descriptors = load_qm9(limit=2000)
    problem = QM9.from_arrays(descriptors, targets, names, num_train=1000, num_val=500, num_test=500, targets="raw")
    chance = check_qm9(problem, targets)
    assert chance[names.index("r2")] / chance[names.index("homo")] > 1e6


def test_helpers_on_hand_made_targets():
    # a class that never occurs contributes nothing; labels 0, 0, 1: entropy of (2/3, 1/3)
    labels = torch.tensor([0, 0, 1, 0, 1, 0])
    assert chance_cross_entropy(labels) == pytest.approx(-(2 / 3 * math.log(2 / 3) + 1 / 3 * math.log(1 / 3)))
    assert chance_cross_entropy(torch.tensor([3, 3, 3])) == 0.0
    # (N, 2): per-column variances 1 and 100 -> mean 50.5 (pooled would be far larger)
    targets = torch.tensor([[1.0, 110.0], [-1.0, 90.0], [1.0, 110.0], [-1.0, 90.0]])
    assert chance_mse(targets) == pytest.approx(50.5)
    assert chance_mse(torch.tensor([5.0, 7.0])) == pytest.approx(1.0)
    assert float(F.mse_loss(targets.mean(0).expand(4, 2), targets)) == pytest.approx(50.5)


# --- a user's problem -------------------------------------------------------------------------


class Bare(Problem):
    """A minimal user problem that does not define chance_losses."""

    name = "bare"
    task_names = ("a", "b")

    def load_data(self):
        x = torch.randn(8, 3, generator=torch.Generator().manual_seed(0))
        split = Split(x, (x[:, 0], x[:, 1]))
        return split, split, split

    def build_model(self, seed: int = 0) -> MultiHeadNet:
        return MultiHeadNet(nn.Sequential(nn.Linear(3, 4)), [nn.Linear(4, 1), nn.Linear(4, 1)])

    def task_losses(self, outputs, targets):
        return torch.stack([F.mse_loss(o.reshape(t.shape), t) for o, t in zip(outputs, targets)])

    def metrics(self):
        return gradnorm_core.Metrics([])


def test_a_problem_without_chance_losses_says_so_in_one_line():
    with pytest.raises(NotImplementedError, match="problem 'bare' does not define chance_losses"):
        Bare().chance_losses()
    with pytest.raises(ValueError, match=r"^initial_losses: 'chance' needs problem 'bare' does not define") as error:
        resolve_initial_losses("chance", Bare())
    assert "\n" not in str(error.value)
    assert resolve_initial_losses("first_step", Bare()) is None  # needs nothing from the problem


class Theoretical(Bare):
    def chance_losses(self) -> list[float]:
        return [1.0, 2.5]


class Degenerate(Bare):
    def chance_losses(self) -> list[float]:
        return [1.0, 0.0]


class Short(Bare):
    def chance_losses(self) -> list[float]:
        return [1.0]


def test_a_user_override_is_used_and_checked():
    assert resolve_initial_losses("chance", Theoretical()) == [1.0, 2.5]
    with pytest.raises(ValueError, match=r"^initial_losses: 'chance' gives task 'b' a chance-level loss of 0\.0"):
        resolve_initial_losses("chance", Degenerate())
    with pytest.raises(ValueError, match=r"returned 1 values for 2 tasks"):
        resolve_initial_losses("chance", Short())


# --- the initial_losses rules -----------------------------------------------------------------


def test_rules_are_exported_in_one_place():
    assert INITIAL_LOSS_RULES == ("first_step", "chance")
    assert "INITIAL_LOSS_RULES" in gradnorm_core.__all__
    assert "resolve_initial_losses" in gradnorm_core.__all__


def test_gradnorm_takes_first_step_as_its_default_and_refuses_an_unresolved_chance():
    layer = nn.Linear(3, 4)
    assert GradNorm(layer.parameters(), 2, initial_losses="first_step").initial_losses is None
    with pytest.raises(ValueError, match=r"initial_losses 'chance' needs the problem.*chance_losses\(\)"):
        GradNorm(layer.parameters(), 2, initial_losses="chance")
    with pytest.raises(ValueError, match="initial_losses must be 'first_step', 'chance' or 2 numbers, got 'x'"):
        GradNorm(layer.parameters(), 2, initial_losses="x")


def test_resolve_accepts_lists_tuples_and_1d_arrays():
    problem = Theoretical()
    assert resolve_initial_losses([1, 2.5], problem) == [1.0, 2.5]
    assert resolve_initial_losses((np.float32(1.5), 2), problem) == [1.5, 2.0]
    assert resolve_initial_losses(np.array([3.0, 4.0]), problem) == [3.0, 4.0]
    assert resolve_initial_losses(torch.tensor([3.0, 4.0]), problem) == [3.0, 4.0]
    assert resolve_initial_losses(None, problem) is None


TRIAL = {"problem": {"name": "multidigits", "options": {"num_train": 192, "num_val": 64, "num_test": 64}},
         "training": {"epochs": 1, "batch_size": 64, "lr": 2e-3, "seed": 4, "device": "cpu"}}


def trial(initial_losses=None, balancer=None):
    balancer = dict(balancer or {"method": "gradnorm", "alpha": 1.5})
    if initial_losses is not None:
        balancer["initial_losses"] = initial_losses
    return TrialConfig.from_dict(dict(TRIAL, balancer=balancer))


def run_epoch(config: TrialConfig):
    problem, training = config.start()
    return problem, training, training.run_epoch()


def test_chance_trial_uses_the_problems_chance_losses():
    problem, model, balancer = trial("chance").build()
    chance = problem.chance_losses()
    assert isinstance(balancer, GradNorm)
    torch.testing.assert_close(balancer.initial_losses, torch.tensor(chance, dtype=torch.float64))
    assert chance[0] == pytest.approx(math.log(10), rel=0.02) and 10 < chance[2] < 25

    problem, training, record = run_epoch(trial("chance"))
    # still the chance losses after training steps, not replaced by the first step's losses
    torch.testing.assert_close(training.balancer.initial_losses, torch.tensor(chance, dtype=torch.float64))
    # the same run as giving those numbers explicitly
    _, _, explicit = run_epoch(trial(chance))
    assert record.weights == explicit.weights and record.score == explicit.score
    # and not the same run as the default, which divides by the first step's losses
    _, default_training, default = run_epoch(trial())
    assert record.weights != default.weights
    assert not torch.allclose(default_training.balancer.initial_losses, training.balancer.initial_losses)


def test_chance_trial_first_step_ratios_use_chance():
    """One GradNorm step by hand: the loss ratios L_i(0 step) / chance_i set the weight update."""
    problem, model, balancer = trial("chance").build()
    chance = torch.tensor(problem.chance_losses(), dtype=torch.float64)
    x, targets = problem.train.batch(slice(0, 64))
    losses = problem.task_losses(model(x, branch=balancer.branch), targets)
    balancer.backward(losses)
    # replay the update with initial = chance on a default GradNorm built the same way
    _, model_b, replay = trial().build()
    replay.initial_losses = chance.clone()
    losses_b = problem.task_losses(model_b(x, branch=replay.branch), targets)
    replay.backward(losses_b)
    torch.testing.assert_close(balancer.weights, replay.weights)
    # with the first step's losses as L(0) every ratio is 1, which gives other weights
    _, model_c, first = trial("first_step").build()
    first.backward(problem.task_losses(model_c(x, branch=first.branch), targets))
    torch.testing.assert_close(first.initial_losses, losses.detach().double())
    assert not torch.allclose(first.weights, balancer.weights)


def test_first_step_is_the_default():
    _, _, balancer = trial("first_step").build()
    assert balancer.initial_losses is None
    _, first_training, first = run_epoch(trial("first_step"))
    _, default_training, default = run_epoch(trial())
    assert first.weights == default.weights and first.score == default.score
    torch.testing.assert_close(first_training.balancer.initial_losses, default_training.balancer.initial_losses)


@pytest.mark.parametrize("value", [
    "chanse", "First_step", "", 3.0, True, ["a", "b", "c"], [1.0, 2.0], [1.0, 2.0, 3.0, 4.0],
    [1.0, float("nan"), 2.0], [1.0, True, 2.0], {"left": 1.0}, [[1.0], [2.0], [3.0]],
])
def test_bad_values_are_one_line_trial_errors(value):
    with pytest.raises(TrialConfigError) as error:
        trial(value).build()
    message = str(error.value)
    # a value of the wrong type is refused by the trial config's check of GradNorm's options, a list
    # of the wrong length when the trial builds its problem: both name the option and what it takes
    assert message in (
        f"initial_losses: must be 'first_step', 'chance' or a list of 3 numbers, got {value!r}",
        f"balancer.initial_losses: option 'initial_losses' of method 'gradnorm' is {value!r}; give a list of "
        "finite numbers or a tensor or one of 'first_step', 'chance' or None")
    assert "\n" not in message


def test_an_explicit_list_still_works_and_gradnorm_checks_its_signs():
    _, _, balancer = trial([2.0, 2.0, 16.0]).build()
    torch.testing.assert_close(balancer.initial_losses, torch.tensor([2.0, 2.0, 16.0], dtype=torch.float64))
    with pytest.raises(TrialConfigError, match="initial loss of task 1 is 0.0") as error:
        trial([2.0, 0.0, 16.0]).build()
    assert "\n" not in str(error.value)


def test_other_methods_still_refuse_initial_losses():
    with pytest.raises(TrialConfigError, match="method 'equal' takes no option 'initial_losses'"):
        trial("chance", balancer={"method": "equal"}).build()


# --- python -m gradnorm_core -----------------------------------------------------------------


def test_cli_parses_rule_names():
    assert parse_method("gradnorm:alpha=1.5,initial_losses=chance") == (
        "gradnorm", {"alpha": 1.5, "initial_losses": "chance"})
    assert parse_method("gradnorm:optimizer=sgd") == ("gradnorm", {"optimizer": "sgd"})


def test_cli_resolves_chance(capsys, monkeypatch):
    small = MultiDigits(num_train=128, num_val=32, num_test=32)
    seen = []
    real = gradnorm_core.__main__.make_balancer

    def spy(name, num_tasks, **options):
        seen.append(options.get("initial_losses"))
        return real(name, num_tasks, **options)

    monkeypatch.setattr(gradnorm_core.__main__, "make_problem", lambda name, **options: small)
    monkeypatch.setattr(gradnorm_core.__main__, "make_balancer", spy)
    code = main(["--problem", "multidigits", "--epochs", "1", "--device", "cpu",
                 "gradnorm:alpha=1.5,initial_losses=chance", "gradnorm:alpha=1.5,initial_losses=first_step"])
    out = capsys.readouterr().out
    assert code == 0
    assert seen == [small.chance_losses(), None]
    assert "gradnorm(alpha=1.5, initial_losses=chance)" in out


def test_cli_bad_rule_is_one_line_and_exit_code_2(capsys):
    assert main(["--problem", "toy_t2", "--epochs", "1", "gradnorm:alpha=1,initial_losses=chance2"]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "initial_losses: must be 'first_step', 'chance' or a list of 2 numbers, got 'chance2'" in captured.err
    assert captured.err.count("\n") == 1
