"""FAMO against autograd on the literal weighted log-loss with torch.optim.Adam(weight_decay) on
separate logits (the public code's structure, fed consecutive steps' losses), and against a
hand-written numpy Adam with the softmax Jacobian as a matrix."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from gradnorm_core import FAMO, fit, make_balancer
from gradnorm_core.balancers.base import NonFiniteLossError
from gradnorm_core.problems import ToyRegression
from sweeps.searches import SEARCH_TYPES, FamoSearch, make_search
from sweeps.spec import SpecError
from balancer_fixtures import make_problem, sgd_step_model as _sgd_step


def sgd_step_model(model, lr: float = 0.05) -> None:
    _sgd_step(model, lr)


def test_initial_state():
    balancer = FAMO(4)
    assert balancer.num_tasks == 4 and balancer.step_count == 0
    assert torch.equal(balancer.weights, torch.full((4,), 0.25))
    assert torch.equal(balancer.softmax_weights, torch.full((4,), 0.25))
    assert torch.equal(balancer.logits, torch.zeros(4))
    assert (balancer.lr, balancer.weight_decay, balancer.min_losses, balancer.eps) == (0.025, 0.001, [0.0] * 4, 1e-8)


def test_first_step_weights_are_normalised_inverse_gaps():
    balancer = FAMO(3, min_losses=[0.5, 0.0, -1.0], eps=0.0)
    losses = torch.tensor([1.0, 4.0, 1.0], dtype=torch.float64, requires_grad=True)
    balancer.backward(losses)
    inverse = torch.tensor([1 / 0.5, 1 / 4.0, 1 / 2.0], dtype=torch.float64)
    torch.testing.assert_close(losses.grad, inverse / inverse.sum(), rtol=1e-15, atol=0)
    torch.testing.assert_close(balancer.weights, losses.grad, rtol=0, atol=0)
    assert float(balancer.weights.sum()) == pytest.approx(1.0, abs=1e-15)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("options", [{}, dict(lr=0.1, weight_decay=0.3, min_losses=[0.01, -0.5, 0.0])])
def test_trajectory_matches_autograd_and_torch_adam(dtype, options):
    """Reference per step t: Adam(weight_decay) step on w from the vjp of softmax(w) with
    delta = log D(L_{t-1}) - log D(L_t), then autograd of sum(log D * z / c), c = sum(z / D)."""
    lr, gamma = options.get("lr", 0.025), options.get("weight_decay", 0.001)
    floor = torch.tensor(options.get("min_losses", [0.0, 0.0, 0.0]), dtype=torch.float64)
    model, losses = make_problem(dtype=dtype)
    balancer = FAMO(3, **options)
    w = torch.zeros(3, dtype=torch.float64, requires_grad=True)
    w_opt = torch.optim.Adam([w], lr=lr, weight_decay=gamma)
    previous = None
    tol = dict(rtol=1e-12, atol=1e-14) if dtype == torch.float64 else dict(rtol=2e-5, atol=1e-6)
    for step in range(8):
        values = losses()
        now = values.detach().double()
        if previous is not None:
            delta = (previous - floor + 1e-8).log() - (now - floor + 1e-8).log()
            w.grad = torch.autograd.grad(F.softmax(w, -1), w, grad_outputs=delta)[0]
            w_opt.step()
        z = F.softmax(w.detach(), -1)
        gaps = values.double() - floor + 1e-8
        c = (z / gaps).sum().detach()
        reference_loss = (gaps.log() * z / c).sum()
        reference = torch.autograd.grad(reference_loss, list(model.parameters()))
        applied = torch.autograd.grad((gaps.log() * z / c).sum(), [gaps])[0]  # dL/dL_i: the weights
        previous = now

        model.zero_grad()
        balancer.backward(losses())
        for p, g in zip(model.parameters(), reference):
            assert p.grad.dtype == dtype
            torch.testing.assert_close(p.grad, g.to(dtype), **tol)
        torch.testing.assert_close(balancer.logits.double(), w.detach(), **tol)
        torch.testing.assert_close(balancer.softmax_weights.double(), z, **tol)
        torch.testing.assert_close(balancer.weights.double(), applied, **tol)
        assert balancer.weights.dtype == dtype and balancer.step_count == step + 1
        sgd_step_model(model)
    assert (balancer.logits.abs() > 1e-3).all()  # the logits really moved


def test_logits_match_hand_written_numpy_adam():
    """Given loss sequence; softmax Jacobian as diag(z) - z z^T; Adam with L2 decay in numpy."""
    lr, gamma, eps = 0.05, 0.01, 1e-8
    floor = np.array([0.1, 0.0, 0.2])
    sequence = [[2.0, 0.5, 1.0], [1.5, 0.7, 3.0], [1.0, 0.1, 2.0], [0.8, 0.05, 0.5], [0.6, 0.2, 0.25], [0.5, 0.2, 0.3]]
    balancer = FAMO(3, lr=lr, weight_decay=gamma, min_losses=floor.tolist())
    xi, m, v = np.zeros(3), np.zeros(3), np.zeros(3)
    adam_steps, previous = 0, None
    for values in sequence:
        current = np.array(values)
        if previous is not None:
            z = np.exp(xi) / np.exp(xi).sum()
            delta = np.log(previous - floor + eps) - np.log(current - floor + eps)
            g = (np.diag(z) - np.outer(z, z)) @ delta + gamma * xi
            adam_steps += 1
            m = 0.9 * m + 0.1 * g
            v = 0.999 * v + 0.001 * g * g
            m_hat, v_hat = m / (1 - 0.9**adam_steps), v / (1 - 0.999**adam_steps)
            xi = xi - lr * m_hat / (np.sqrt(v_hat) + 1e-8)
        z = np.exp(xi) / np.exp(xi).sum()
        expected = (z / (current - floor + eps)) / (z / (current - floor + eps)).sum()
        previous = current

        losses = torch.tensor(values, dtype=torch.float64, requires_grad=True)
        balancer.backward(losses)
        np.testing.assert_allclose(balancer.logits.numpy(), xi, rtol=1e-10, atol=1e-13)
        np.testing.assert_allclose(losses.grad.numpy(), expected, rtol=1e-10, atol=1e-13)
    assert balancer.state_dict()["optimizer"]["steps"] == len(sequence) - 1


def run_steps(balancer, model, losses, steps):
    """Run steps and return the trajectory: (model grads, logits, weights) after each."""
    trajectory = []
    for _ in range(steps):
        model.zero_grad()
        balancer.backward(losses())
        grads = [p.grad.clone() for p in model.parameters()]
        trajectory.append((grads, balancer.logits, balancer.weights))
        sgd_step_model(model)
    return trajectory


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_state_dict_round_trip_continues_identically(dtype):
    options = dict(lr=0.1, weight_decay=0.01, min_losses=[0.0, 0.01, 0.0])
    model, losses = make_problem(dtype=dtype)
    original = FAMO(3, **options)
    run_steps(original, model, losses, 3)
    state = original.state_dict()
    params = [p.detach().clone() for p in model.parameters()]

    expected = run_steps(original, model, losses, 4)  # the original goes on; ``state`` must not move

    with torch.no_grad():
        for p, saved in zip(model.parameters(), params):
            p.copy_(saved)
    copy = FAMO(3, **options)
    copy.load_state_dict(state)
    assert copy.step_count == 3
    got = run_steps(copy, model, losses, 4)
    for (grads_e, xi_e, w_e), (grads_g, xi_g, w_g) in zip(expected, got):
        assert torch.equal(xi_e, xi_g) and torch.equal(w_e, w_g)
        for a, b in zip(grads_e, grads_g):
            assert torch.equal(a, b)
    assert copy.step_count == original.step_count == 7


def test_load_state_dict_refuses_other_configuration_and_changes_nothing():
    model, losses = make_problem()
    original = FAMO(3, lr=0.1)
    run_steps(original, model, losses, 2)
    state = original.state_dict()
    for other in (FAMO(3, lr=0.2), FAMO(3, lr=0.1, weight_decay=0.0), FAMO(3, lr=0.1, min_losses=[0, 0, 0.01])):
        with pytest.raises(ValueError, match="build it with the same options") as info:
            other.load_state_dict(state)
        assert "\n" not in str(info.value)
        assert other.step_count == 0 and torch.equal(other.logits, torch.zeros(3))
    with pytest.raises(ValueError, match="num_tasks"):
        FAMO(2, lr=0.1).load_state_dict(state)
    broken = dict(state, previous_losses=torch.zeros(2, dtype=torch.float64))
    fresh = FAMO(3, lr=0.1)
    with pytest.raises(ValueError, match="shape"):
        fresh.load_state_dict(broken)
    assert fresh.step_count == 0


def _bad(index, value):
    def make(v):
        mask = torch.ones(3, dtype=v.dtype)
        mask[index] = 0.0
        return v * mask + (1 - mask) * value
    return make


@pytest.mark.parametrize(
    "make_losses, error, match",
    [
        (lambda v: v[:2], ValueError, r"shape \(3,\)"),
        (lambda v: v.detach(), ValueError, "require grad"),
        (lambda v: v * torch.tensor([1.0, float("nan"), 1.0]), NonFiniteLossError, r"losses\[1\]"),
        (lambda v: v * torch.tensor([1.0, 1.0, float("inf")]), NonFiniteLossError, r"losses\[2\]"),
        (_bad(1, 0.0), ValueError, r"losses\[1\] is 0.0 .*task 1's loss is not above its min_losses\[1\]"),
        (_bad(0, -0.5), ValueError, r"losses\[0\] is -0.5 .*min_losses\[0\]"),
        (_bad(2, 0.25), ValueError, r"losses\[2\] is 0.25 .*min_losses\[2\] = 0.25"),  # equal to the floor
    ],
)
@pytest.mark.parametrize("steps_before", [0, 2])
def test_bad_losses_raise_one_line_and_change_nothing(make_losses, error, match, steps_before):
    model, losses = make_problem()
    balancer = FAMO(3, lr=0.1, min_losses=[0.0, 0.0, 0.25])
    run_steps(balancer, model, losses, steps_before)
    state = balancer.state_dict()
    model.zero_grad(set_to_none=True)
    with pytest.raises(error, match=match) as info:
        balancer.backward(make_losses(losses() + 0.3))
    assert "\n" not in str(info.value)
    after = balancer.state_dict()
    for key in ("step_count", "logits", "previous_losses", "weights"):
        a, b = after[key], state[key]
        assert (a is None and b is None) or (torch.equal(a, b) if isinstance(a, torch.Tensor) else a == b)
    assert after["optimizer"]["steps"] == state["optimizer"]["steps"]
    for key in ("exp_avg", "exp_avg_sq"):
        a, b = after["optimizer"][key], state["optimizer"][key]
        assert (a is None and b is None) or torch.equal(a, b)
    assert all(p.grad is None for p in model.parameters())
    # and the next good step is the step an untouched balancer would take
    twin = FAMO(3, lr=0.1, min_losses=[0.0, 0.0, 0.25])
    twin.load_state_dict(state)
    balancer.backward(losses() + 0.3)
    twin.backward(losses() + 0.3)
    assert torch.equal(balancer.logits, twin.logits) and torch.equal(balancer.weights, twin.weights)


def test_a_gap_too_small_for_a_finite_weight_raises_and_changes_nothing():
    balancer = FAMO(2, eps=0.0)
    balancer.backward(torch.tensor([1.0, 2.0], dtype=torch.float64, requires_grad=True))
    state = balancer.state_dict()
    losses = torch.tensor([1e-320, 1.0], dtype=torch.float64, requires_grad=True)
    with pytest.raises(ValueError, match=r"losses\[0\] is 1e-320 at step 1: its FAMO weight is not finite"):
        balancer.backward(losses)
    assert losses.grad is None and balancer.step_count == 1
    after = balancer.state_dict()
    assert after["optimizer"]["steps"] == state["optimizer"]["steps"] == 0
    assert torch.equal(after["previous_losses"], state["previous_losses"])


def test_a_failing_backward_restores_the_optimizer():
    balancer = FAMO(2, lr=0.1)
    balancer.backward(torch.tensor([1.0, 2.0], requires_grad=True))
    state = balancer.state_dict()
    used = torch.tensor([1.0, 2.0], requires_grad=True) * 1.5
    used.sum().backward()  # frees the graph: backward through it again fails inside FAMO
    with pytest.raises(RuntimeError):
        balancer.backward(used)
    after = balancer.state_dict()
    assert after["optimizer"]["steps"] == state["optimizer"]["steps"] == 0
    assert after["optimizer"]["exp_avg"] is None and torch.equal(after["logits"], state["logits"])
    assert after["step_count"] == 1


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(num_tasks=0), "num_tasks"),
        (dict(num_tasks=2, lr=0.0), "lr"),
        (dict(num_tasks=2, lr=float("nan")), "lr"),
        (dict(num_tasks=2, lr="fast"), "lr"),
        (dict(num_tasks=2, weight_decay=-0.1), "weight_decay"),
        (dict(num_tasks=2, weight_decay=float("inf")), "weight_decay"),
        (dict(num_tasks=2, eps=-1e-8), "eps"),
        (dict(num_tasks=2, min_losses=[0.0]), "min_losses"),
        (dict(num_tasks=2, min_losses=0.0), "min_losses"),
        (dict(num_tasks=2, min_losses="00"), "min_losses"),
        (dict(num_tasks=2, min_losses=[0.0, float("nan")]), r"min_losses\[1\]"),
        (dict(num_tasks=2, min_losses=[0.0, "low"]), r"min_losses\[1\]"),
    ],
)
def test_bad_constructor_arguments(kwargs, match):
    with pytest.raises((ValueError, TypeError), match=match) as info:
        FAMO(**kwargs)
    assert "\n" not in str(info.value)


def test_make_balancer_builds_it_and_rejects_unknown_options():
    balancer = make_balancer("famo", 3, lr=0.05, weight_decay=0.0, min_losses=[0.0, 0.1, 0.0])
    assert isinstance(balancer, FAMO)
    assert (balancer.lr, balancer.weight_decay, balancer.min_losses) == (0.05, 0.0, [0.0, 0.1, 0.0])
    assert isinstance(make_balancer("famo", 3), FAMO)
    message = "method 'famo' takes no option 'optimizer'; accepted options: lr, weight_decay, min_losses"
    with pytest.raises(ValueError, match=message):
        make_balancer("famo", 3, optimizer="sgd")


def test_training_run_with_fit_gives_finite_records_and_resumes_exactly():
    problem = ToyRegression([1.0, 10.0, 50.0], num_train=256, num_val=64, num_test=64, seed=3)

    def start(state=None):
        model = problem.build_model(seed=1)
        balancer = make_balancer("famo", problem.num_tasks, model=model, lr=0.05)
        return fit(problem, balancer, model=model, state=state, epochs=3, batch_size=64, lr=1e-3, seed=1)

    uninterrupted = [r.as_dict() for r in start()]
    assert len(uninterrupted) == 3
    for record in uninterrupted:
        numbers = [record["score"], *record["train"].values(), *record["val"].values(), *record["weights"],
                   *record["mean_weights"]]
        assert all(math.isfinite(x) for x in numbers), record
        assert sum(record["weights"]) == pytest.approx(1.0, rel=1e-5)
    # the task with the largest loss got the smallest weight
    assert uninterrupted[-1]["weights"][2] < uninterrupted[-1]["weights"][0]
    first = start()
    head = [next(iter(first)).as_dict()]
    resumed = start(state=first.state_dict())
    for got, expected in zip(head + [r.as_dict() for r in resumed], uninterrupted):
        got.pop("elapsed_seconds"), expected.pop("elapsed_seconds")
        assert got == expected


def test_famo_search_type():
    def search(data):
        return make_search("f", data, task_names=["a", "b", "c"], problem_name="toy")

    famo = search({"type": "famo", "lr": 0.05, "weight_decay": 0})
    assert isinstance(famo, FamoSearch) and famo.method == "famo" and SEARCH_TYPES["famo"] is FamoSearch
    assert famo.balancer_options() == {"lr": 0.05, "weight_decay": 0.0}
    assert famo.trial_points(3, seed=0) == [{}] and famo.label({}) == "-" and famo.trial_count(3) == 1
    assert famo.parent_params(3, seed=0) == {"lr": 0.05, "weight_decay": 0.0}
    assert search("famo").balancer_options() == {} and search({"type": "famo"}).options == {}
    assert isinstance(make_balancer("famo", 3, **famo.balancer_options()), FAMO)
    with pytest.raises(SpecError, match=r"searches\.f\.lr: must be > 0"):
        search({"type": "famo", "lr": 0})
    with pytest.raises(SpecError, match=r"searches\.f\.weight_decay: must be >= 0"):
        search({"type": "famo", "weight_decay": -0.1})
    with pytest.raises(SpecError, match=r"searches\.f\.optimizer: unknown option 'optimizer'"):
        search({"type": "famo", "optimizer": "sgd"})
