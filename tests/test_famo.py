"""FAMO's own math: step by step against an independent re-implementation of the public code's
update (a logits tensor, ``torch.optim.Adam(weight_decay)``, autograd through the softmax, the
losses re-evaluated on the same batch after the step), the next-batch variant against a
hand-written numpy Adam, the floor at ``min_losses``, and the training loop's after-step hook."""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from gradnorm_core import FAMO, fit, make_balancer
from gradnorm_core.balancers.base import NonFiniteLossError
from gradnorm_core.problems import ToyRegression
from sweeps.searches import SEARCH_TYPES, FamoSearch, make_search
from sweeps.spec import SpecError
from balancer_fixtures import fit_and_resume


def tiny_problem(dtype=torch.float32, seed=0):
    """A linear model with 3 outputs, and ``losses(model)``: task i's loss is scale_i times the
    MSE of output i (scales 1, 10, 0.1), on one fixed batch."""
    generator = torch.Generator().manual_seed(seed)
    model = nn.Linear(4, 3).to(dtype)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=generator, dtype=dtype))
    x = torch.randn(8, 4, generator=generator, dtype=dtype)
    y = torch.randn(8, 3, generator=generator, dtype=dtype)
    scale = torch.tensor([1.0, 10.0, 0.1], dtype=dtype)
    return model, lambda m: scale * ((m(x) - y) ** 2).mean(dim=0)


class PublicFamo:
    """The public code's FAMO, written out: logits ``w`` with Adam(lr, weight_decay); the loss
    sum(log D * z / c) with c = sum(z / D) held constant and D = L - L* + eps; after the network's
    step, ``update(new_losses)`` with delta = log D(before) - log D(after) through autograd of the
    softmax (its vector-Jacobian product)."""

    def __init__(self, num_tasks, lr, gamma, min_losses, eps=1e-8):
        self.w = torch.zeros(num_tasks, dtype=torch.float64, requires_grad=True)
        self.w_opt = torch.optim.Adam([self.w], lr=lr, weight_decay=gamma)
        self.min_losses = torch.tensor(min_losses, dtype=torch.float64)
        self.eps = eps

    def weighted_loss(self, losses):
        self.prev_loss = losses.detach().double()
        z = F.softmax(self.w.detach(), -1)
        D = losses.double() - self.min_losses + self.eps
        c = (z / D).sum().detach()
        return (D.log() * z / c).sum()

    def update(self, curr_loss):
        gap = lambda losses: (losses.double() - self.min_losses + self.eps).log()  # noqa: E731
        delta = gap(self.prev_loss) - gap(curr_loss)
        with torch.enable_grad():
            d = torch.autograd.grad(F.softmax(self.w, -1), self.w, grad_outputs=delta.detach())[0]
        self.w_opt.zero_grad()
        self.w.grad = d
        self.w_opt.step()


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("options", [{}, dict(lr=0.1, weight_decay=0.3, min_losses=[0.01, -0.5, 0.0])])
def test_same_batch_update_matches_the_public_code_step_by_step(dtype, options):
    """Two copies of one tiny model, each with its own SGD, one trained by the reference and one by
    FAMO: at every step the network gradients, the applied weights and the logits agree."""
    model, losses = tiny_problem(dtype)
    twin = copy.deepcopy(model)
    reference = PublicFamo(3, options.get("lr", 0.025), options.get("weight_decay", 0.001),
                           options.get("min_losses", [0.0] * 3))
    balancer = FAMO(3, **options)
    assert balancer.wants_losses_after_step and balancer.update == "same_batch"
    ours, theirs = torch.optim.SGD(model.parameters(), lr=0.05), torch.optim.SGD(twin.parameters(), lr=0.05)
    tol = dict(rtol=1e-12, atol=1e-14) if dtype == torch.float64 else dict(rtol=2e-5, atol=1e-6)
    for step in range(8):
        theirs.zero_grad()
        values = losses(twin)
        weighted = reference.weighted_loss(values)
        (applied,) = torch.autograd.grad(weighted, [values], retain_graph=True)  # dLoss/dL_i: the weights
        weighted.backward()
        ours.zero_grad()
        balancer.backward(losses(model))
        for p, q in zip(model.parameters(), twin.parameters()):
            assert p.grad.dtype == dtype
            torch.testing.assert_close(p.grad, q.grad, **tol)
        torch.testing.assert_close(balancer.weights.double(), applied.double(), **tol)
        theirs.step()
        ours.step()
        with torch.no_grad():
            reference.update(losses(twin))
            balancer.after_step(losses(model))
        torch.testing.assert_close(balancer.logits.double(), reference.w.detach(), **tol)
        torch.testing.assert_close(balancer.softmax_weights.double(), F.softmax(reference.w.detach(), -1), **tol)
        assert balancer.step_count == step + 1
    assert (balancer.logits.abs() > 1e-3).all()  # the logits really moved
    assert balancer.floored_gaps == [0, 0, 0]


def test_first_step_weights_are_normalised_inverse_gaps():
    balancer = FAMO(3, min_losses=[0.5, 0.0, -1.0], eps=0.0)
    losses = torch.tensor([1.0, 4.0, 1.0], dtype=torch.float64, requires_grad=True)
    balancer.backward(losses)
    inverse = torch.tensor([1 / 0.5, 1 / 4.0, 1 / 2.0], dtype=torch.float64)
    torch.testing.assert_close(losses.grad, inverse / inverse.sum(), rtol=1e-15, atol=0)
    torch.testing.assert_close(balancer.weights, losses.grad, rtol=0, atol=0)
    assert float(balancer.weights.sum()) == pytest.approx(1.0, abs=1e-15)


def test_one_same_batch_step_by_hand():
    """T = 2, lr 0.1, no decay: D = (2, 1) before, (1, 1) after. delta = (ln 2, 0); z = (1/2, 1/2);
    g = z * (delta - z.delta) = (ln 2 / 4, -ln 2 / 4); Adam's first step is -lr g / (|g| + 1e-8):
    xi = (-0.1, 0.1) * |g| / (|g| + 1e-8)."""
    balancer = FAMO(2, lr=0.1, weight_decay=0.0, eps=0.0)
    losses = torch.tensor([2.0, 1.0], dtype=torch.float64, requires_grad=True)
    balancer.backward(losses)
    torch.testing.assert_close(losses.grad, torch.tensor([1 / 3, 2 / 3], dtype=torch.float64))
    balancer.after_step(torch.tensor([1.0, 1.0], dtype=torch.float64))
    g = math.log(2) / 4
    step = 0.1 * g / (g + 1e-8)
    torch.testing.assert_close(balancer.logits, torch.tensor([-step, step], dtype=torch.float64), rtol=1e-14, atol=0)


def test_next_batch_logits_match_hand_written_numpy_adam():
    """update='next_batch': the logits learn from consecutive backward calls' losses. Softmax
    Jacobian as diag(z) - z z^T; Adam with L2 decay in numpy."""
    lr, gamma, eps = 0.05, 0.01, 1e-8
    floor = np.array([0.1, 0.0, 0.2])
    sequence = [[2.0, 0.5, 1.0], [1.5, 0.7, 3.0], [1.0, 0.1, 2.0], [0.8, 0.05, 0.5], [0.6, 0.2, 0.25], [0.5, 0.2, 0.3]]
    balancer = FAMO(3, lr=lr, weight_decay=gamma, min_losses=floor.tolist(), update="next_batch")
    assert not balancer.wants_losses_after_step
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
        balancer.after_step(losses.detach() * 0.5)  # ignored by the next-batch variant
        np.testing.assert_allclose(balancer.logits.numpy(), xi, rtol=1e-10, atol=1e-13)
        np.testing.assert_allclose(losses.grad.numpy(), expected, rtol=1e-10, atol=1e-13)
    assert balancer.state_dict()["optimizer"]["steps"] == len(sequence) - 1


def test_a_loss_at_or_below_its_floor_is_floored_at_eps_and_counted():
    """A cross-entropy of exactly 0 (min_losses 0) and a loss below its floor: the gap is eps, the
    public code's value at the floor, and each is counted; training goes on."""
    eps = 1e-8
    balancer = FAMO(3, lr=0.1, min_losses=[0.0, 0.5, 0.0], eps=eps)
    losses = torch.tensor([0.0, 0.25, 2.0], dtype=torch.float64, requires_grad=True)
    balancer.backward(losses)
    inverse = torch.tensor([1 / eps, 1 / eps, 1 / (2.0 + eps)], dtype=torch.float64)
    torch.testing.assert_close(losses.grad, inverse / inverse.sum(), rtol=1e-12, atol=0)
    assert balancer.floored_gaps == [1, 1, 0]
    balancer.after_step(torch.tensor([0.0, 0.75, 1.0], dtype=torch.float64))
    assert balancer.floored_gaps == [2, 1, 0]
    # delta = log eps - log eps = 0 for task 0, log eps - log(0.25 + eps) for task 1, log 2 for task 2
    delta = np.log([eps, eps, 2.0 + eps]) - np.log([eps, 0.25 + eps, 1.0 + eps])
    g = (delta - delta.mean()) / 3 + 0.0
    np.testing.assert_allclose(np.sign(balancer.logits.numpy()), -np.sign(g))  # Adam's first step: -lr sign(g)
    assert torch.isfinite(balancer.logits).all()
    assert balancer.state_dict()["floored_gaps"].tolist() == [2, 1, 0]


def test_same_batch_misuse_raises_one_line_and_changes_nothing():
    balancer = FAMO(2)
    with pytest.raises(ValueError, match="needs a backward") as info:
        balancer.after_step(torch.tensor([1.0, 2.0]))
    assert "\n" not in str(info.value)
    balancer.backward(torch.tensor([1.0, 2.0], requires_grad=True))
    state = balancer.state_dict()
    second = torch.tensor([1.0, 2.0], requires_grad=True)
    with pytest.raises(ValueError, match="without after_step.*update='next_batch'") as info:
        balancer.backward(second)
    assert "\n" not in str(info.value) and second.grad is None and balancer.step_count == 1
    for bad, error, match in ((torch.tensor([1.0]), ValueError, r"shape \(2,\)"),
                              (torch.tensor([1.0, math.nan]), NonFiniteLossError, r"after_step: losses\[1\] is nan")):
        with pytest.raises(error, match=match):
            balancer.after_step(bad)
    assert torch.equal(balancer.state_dict()["logits"], state["logits"])
    assert balancer.state_dict()["optimizer"]["steps"] == 0
    balancer.after_step(torch.tensor([0.5, 2.0]))
    assert balancer.state_dict()["optimizer"]["steps"] == 1 and balancer.state_dict()["previous_losses"] is None


def test_a_gap_too_small_for_a_finite_weight_raises_and_changes_nothing():
    balancer = FAMO(2, eps=0.0, update="next_batch")
    balancer.backward(torch.tensor([1.0, 2.0], dtype=torch.float64, requires_grad=True))
    state = balancer.state_dict()
    for value, match in ((1e-320, "its FAMO weight is not finite"), (0.0, "with eps 0, its gap has no log")):
        losses = torch.tensor([value, 1.0], dtype=torch.float64, requires_grad=True)
        with pytest.raises(ValueError, match=rf"losses\[0\] is {value} at step 1: .*{match}"):
            balancer.backward(losses)
        assert losses.grad is None and balancer.step_count == 1
        after = balancer.state_dict()
        assert after["optimizer"]["steps"] == state["optimizer"]["steps"] == 0
        assert torch.equal(after["previous_losses"], state["previous_losses"])


def test_a_failing_next_batch_backward_restores_the_logits_optimizer():
    """next_batch steps Adam before the network's backward; a backward that then fails (here a
    freed graph) leaves Adam's state and the logits as they were."""
    balancer = FAMO(2, lr=0.1, update="next_batch")
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


def test_state_between_backward_and_after_step_resumes_exactly():
    """A checkpoint taken between a backward and its after_step holds the losses still waiting."""
    model, losses = tiny_problem(torch.float64)
    original = FAMO(3, lr=0.1, weight_decay=0.01)
    original.backward(losses(model))
    copy_ = FAMO(3, lr=0.1, weight_decay=0.01)
    copy_.load_state_dict(original.state_dict())
    for balancer in (original, copy_):
        balancer.after_step(losses(model).detach() * 0.9)
    assert torch.equal(original.state_dict()["logits"], copy_.state_dict()["logits"])
    assert torch.equal(original.state_dict()["optimizer"]["exp_avg"], copy_.state_dict()["optimizer"]["exp_avg"])


def test_load_state_dict_refuses_other_options_and_changes_nothing():
    original = FAMO(3, lr=0.1)
    original.backward(torch.tensor([1.0, 2.0, 3.0], requires_grad=True))
    original.after_step(torch.tensor([0.9, 1.0, 3.0]))
    state = original.state_dict()
    others = (FAMO(3, lr=0.2), FAMO(3, lr=0.1, weight_decay=0.0), FAMO(3, lr=0.1, min_losses=[0, 0, 0.01]),
              FAMO(3, lr=0.1, update="next_batch"))
    for other in others:
        with pytest.raises(ValueError, match="build it with the same options") as info:
            other.load_state_dict(state)
        assert "\n" not in str(info.value)
        assert other.step_count == 0 and torch.equal(other.logits, torch.zeros(3))


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(num_tasks=2, weight_decay=-0.1), "weight_decay"),
        (dict(num_tasks=2, eps=-1e-8), "eps"),
        (dict(num_tasks=2, min_losses=[0.0]), "min_losses"),
        (dict(num_tasks=2, min_losses=0.0), "min_losses"),
        (dict(num_tasks=2, min_losses=[0.0, float("nan")]), r"min_losses\[1\]"),
        (dict(num_tasks=2, min_losses=[0.0, "low"]), r"min_losses\[1\]"),
        (dict(num_tasks=2, update="after"), "update must be one of 'same_batch', 'next_batch'"),
    ],
)
def test_bad_constructor_arguments(kwargs, match):
    with pytest.raises((ValueError, TypeError), match=match) as info:
        FAMO(**kwargs)
    assert "\n" not in str(info.value)


def test_make_balancer_builds_it_with_its_options():
    balancer = make_balancer("famo", 3, lr=0.05, weight_decay=0.0, min_losses=[0.0, 0.1, 0.0], update="next_batch")
    assert isinstance(balancer, FAMO)
    assert (balancer.lr, balancer.weight_decay, balancer.min_losses, balancer.update) == (0.05, 0.0, [0.0, 0.1, 0.0],
                                                                                         "next_batch")
    assert make_balancer("famo", 3).update == "same_batch"


class AfterStepSpy(FAMO):
    """FAMO that checks each after_step's losses against an independent re-evaluation of the
    batch the loop used (the batches rebuilt from the seed's permutation)."""

    def __init__(self, problem, model, batches, **options):
        super().__init__(problem.num_tasks, **options)
        self.problem, self.model, self.batches, self.calls = problem, model, batches, 0

    def after_step(self, losses):
        x, targets = self.batches[self.calls % len(self.batches)]
        with torch.no_grad():
            expected = self.problem.task_losses(self.model(x), targets)
        torch.testing.assert_close(losses, expected, rtol=0, atol=0)
        self.calls += 1
        super().after_step(losses)


def test_the_training_loop_hands_the_same_batch_after_the_step():
    problem = ToyRegression([1.0, 10.0], num_train=96, num_val=32, num_test=32, seed=3)
    model = problem.build_model(seed=1)
    order = torch.randperm(96, generator=torch.Generator().manual_seed(1))
    batches = [problem.train.batch(order[i : i + 32]) for i in range(0, 96, 32)]
    spy = AfterStepSpy(problem, model, batches, lr=0.05)
    records = list(fit(problem, spy, model=model, epochs=1, batch_size=32, lr=1e-3, seed=1, device="cpu"))
    assert spy.calls == 3 and spy.step_count == 3 and len(records) == 1
    assert not torch.equal(spy.logits, torch.zeros(2))


@pytest.mark.parametrize("update", ["same_batch", "next_batch"])
def test_a_run_through_fit_resumes_exactly_in_either_update_and_weights_the_largest_loss_least(update):
    records = fit_and_resume("famo", lr=0.05, update=update)
    assert all(sum(record["weights"]) == pytest.approx(1.0, rel=1e-5) for record in records)
    assert records[-1]["weights"][2] < records[-1]["weights"][0]


def test_famo_search_type():
    def search(data):
        return make_search("f", data, task_names=["a", "b", "c"], problem_name="toy")

    famo = search({"type": "famo", "weight_lr": 0.05, "weight_decay": 0, "update": "next_batch"})
    assert isinstance(famo, FamoSearch) and famo.method == "famo" and SEARCH_TYPES["famo"] is FamoSearch
    assert famo.balancer_options() == {"lr": 0.05, "weight_decay": 0.0, "update": "next_batch"}
    assert famo.trial_points(3, seed=0) == [{}] and famo.label({}) == "-" and famo.trial_count(3) == 1
    assert famo.parent_params(3, seed=0) == {"weight_lr": 0.05, "weight_decay": 0.0, "update": "next_batch"}
    assert search("famo").balancer_options() == {} and search({"type": "famo"}).options == {}
    built = make_balancer("famo", 3, **famo.balancer_options())
    assert isinstance(built, FAMO) and built.update == "next_batch" and not built.wants_losses_after_step
    assert make_balancer("famo", 3, **search({"type": "famo", "update": "same_batch"}).balancer_options()).update \
        == "same_batch"
    with pytest.raises(SpecError, match=r"searches\.f\.weight_lr: must be > 0"):
        search({"type": "famo", "weight_lr": 0})
    with pytest.raises(SpecError, match=r"searches\.f\.weight_decay: must be >= 0"):
        search({"type": "famo", "weight_decay": -0.1})
    with pytest.raises(SpecError, match=r"searches\.f\.optimizer: unknown option 'optimizer'"):
        search({"type": "famo", "optimizer": "sgd"})
    with pytest.raises(SpecError, match=r"^<spec>: searches\.f\.update: unknown FAMO update 'next'; give one of "
                                        r"'same_batch', 'next_batch'$"):
        search({"type": "famo", "update": "next"})
    # a number at lr was the logits' rate before lr became the network's: refused, pointing to weight_lr
    with pytest.raises(SpecError, match=r"searches\.f\.lr: is one number \(0\.05\).*weight_lr\)$"):
        search({"type": "famo", "lr": 0.05})
