"""The contract every balancer keeps, tested on each one the registry holds (a new balancer gets
these tests by registering with ``@register("name")``): its weights' shape, dtype and device; a
``state_dict`` that round-trips and resumes exactly; bad losses refused in one line with nothing
changed; no gradient reaching its weights. Each method's own math is tested against an
independent reference in its own file (test_gradnorm.py, test_static.py, ...)."""

from __future__ import annotations

import copy
import inspect
import io
import typing
from collections.abc import Sequence

import pytest
import torch
from torch import nn

from gradnorm_core import BALANCERS, METHODS, Balancer, make_balancer
from gradnorm_core.problems import MultiHeadNet
from balancer_fixtures import fit_and_resume

T = 3
SCALES = (1.0, 10.0, 0.1)  # losses of different sizes, so that balancing has something to do
# a value for each kind of required option (one without a default), by its annotation
EXAMPLES = {float: 1.0, int: 1, Sequence[float]: [0.5, 1.0, 2.0]}
DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


def required_options(method: str) -> dict:
    """Values for the options ``method`` cannot do without, from their annotations."""
    cls = BALANCERS[method]
    parameters = inspect.signature(cls.__init__).parameters
    hints = typing.get_type_hints(cls.__init__)
    options = {}
    for key in METHODS[method]:
        if parameters[key].default is inspect.Parameter.empty:
            if hints.get(key) not in EXAMPLES:
                pytest.fail(f"give EXAMPLES a value of option {key!r} of {method!r} ({hints.get(key)})")
            options[key] = copy.deepcopy(EXAMPLES[hints[key]])
    return options


def make_net(dtype: torch.dtype = torch.float64, device: str = "cpu", seed: int = 0) -> MultiHeadNet:
    torch.manual_seed(seed)
    trunk = nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 6))
    return MultiHeadNet(trunk, [nn.Linear(6, 1) for _ in range(T)]).to(dtype=dtype, device=device)


def build(method: str, model: nn.Module) -> Balancer:
    return make_balancer(method, T, model=model, **required_options(method))


def batches(count: int, dtype: torch.dtype = torch.float64, device: str = "cpu", seed: int = 1):
    generator = torch.Generator().manual_seed(seed)
    for _ in range(count):
        x = torch.randn(16, 4, generator=generator, dtype=dtype)
        y = torch.randn(16, T, generator=generator, dtype=dtype)
        yield x.to(device), y.to(device)


def task_losses(model: MultiHeadNet, balancer: Balancer, batch) -> torch.Tensor:
    x, y = batch
    outputs = model(x, branch=balancer.branch if balancer.uses_branch else None)
    scales = torch.tensor(SCALES, dtype=x.dtype, device=x.device)
    return scales * torch.stack([((out.squeeze(1) - y[:, i]) ** 2).mean() for i, out in enumerate(outputs)])


def step(model: MultiHeadNet, balancer: Balancer, batch, index: int) -> list[torch.Tensor]:
    """One training step (plain SGD); every second step ends an epoch. Returns the gradients."""
    model.zero_grad(set_to_none=True)
    balancer.backward(task_losses(model, balancer, batch))
    grads = [p.grad.clone() for p in model.parameters()]
    with torch.no_grad():
        for p in model.parameters():
            p -= 0.01 * p.grad
        if getattr(balancer, "wants_losses_after_step", False):  # as the training loop gives them
            balancer.after_step(task_losses(model, balancer, batch))
    if index % 2 == 1:
        balancer.end_epoch()
    return grads


def same(a, b) -> bool:
    """Equal, tensors bit for bit (dtype and device included), at every depth."""
    if isinstance(a, torch.Tensor) or isinstance(b, torch.Tensor):
        return (isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor) and a.dtype == b.dtype
                and a.device == b.device and a.shape == b.shape and torch.equal(a, b))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    return type(a) is type(b) and a == b


methods = pytest.mark.parametrize("method", list(BALANCERS))


def test_the_registry_is_what_methods_lists():
    assert list(METHODS) == list(BALANCERS) and len(BALANCERS) >= 8
    for method, cls in BALANCERS.items():
        assert issubclass(cls, Balancer) and isinstance(METHODS[method], tuple)


@methods
@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_weights_have_one_entry_per_task_in_the_losses_dtype_and_device(method, dtype, device):
    model = make_net(dtype, device)
    balancer = build(method, model)
    assert isinstance(balancer.uses_branch, bool)
    assert balancer.num_tasks == T and balancer.step_count == 0
    before = balancer.weights
    assert before.shape == (T,) and before.dtype.is_floating_point and bool(torch.isfinite(before).all())
    for index, batch in enumerate(batches(3, dtype, device)):
        step(model, balancer, batch, index)
        weights = balancer.weights
        assert weights.shape == (T,) and weights.dtype == dtype and weights.device.type == device
        assert bool(torch.isfinite(weights).all()) and bool((weights >= 0).all())
    assert balancer.step_count == 3
    with torch.no_grad():  # evaluation: one input per head
        assert len(balancer.branch(torch.zeros(2, 6, dtype=dtype, device=device))) == T


def checkpointed(method: str, dtype: torch.dtype = torch.float64) -> tuple[list, MultiHeadNet, Balancer, dict]:
    """A balancer trained 3 steps (mid-epoch), and its and its model's state, saved and loaded
    as a checkpoint stores them."""
    data = list(batches(8, dtype))
    model = make_net(dtype)
    balancer = build(method, model)
    for index in range(3):
        step(model, balancer, data[index], index)
    buffer = io.BytesIO()
    torch.save({"balancer": balancer.state_dict(), "model": model.state_dict()}, buffer)
    buffer.seek(0)
    return data, model, balancer, torch.load(buffer, weights_only=False)


def restored(method: str, saved: dict, dtype: torch.dtype = torch.float64) -> tuple[MultiHeadNet, Balancer]:
    model = make_net(dtype, seed=7)  # other initial weights: everything comes from the state
    model.load_state_dict(saved["model"])
    balancer = build(method, model)
    balancer.load_state_dict(copy.deepcopy(saved["balancer"]))
    return model, balancer


# where a balancer breaks the contract today, the reason (strict: the test fails once it is fixed)
ROUND_TRIP_GAPS: dict[str, str] = {}


@pytest.mark.parametrize("method", [
    pytest.param(m, marks=pytest.mark.xfail(reason=ROUND_TRIP_GAPS[m], strict=True)) if m in ROUND_TRIP_GAPS else m
    for m in BALANCERS])
def test_state_dict_round_trips(method):
    _, _, balancer, saved = checkpointed(method)
    _, twin = restored(method, saved)
    assert same(twin.state_dict(), saved["balancer"])


@methods
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_a_restored_balancer_resumes_bit_for_bit(method, dtype):
    data, model, balancer, saved = checkpointed(method, dtype)
    twin_model, twin = restored(method, saved, dtype)
    # the same weights (in the dtype of the losses it has seen: none yet, so perhaps float32)
    assert twin.step_count == 3 and torch.equal(twin.weights, balancer.weights.to(twin.weights.dtype))
    for index in range(3, 8):
        grads = step(model, balancer, data[index], index)
        twin_grads = step(twin_model, twin, data[index], index)
        assert torch.equal(twin.weights, balancer.weights), index
        assert all(torch.equal(a, b) for a, b in zip(twin_grads, grads)), index
    assert same(twin.state_dict(), balancer.state_dict())


def bad_losses(kind: str, losses: torch.Tensor):
    if kind == "too many":
        return torch.cat([losses, losses[:1]])
    if kind == "column":
        return losses.reshape(T, 1)
    if kind == "scalar":
        return losses.sum()
    if kind == "nan":
        return losses * torch.tensor([1.0, float("nan"), 1.0], dtype=losses.dtype)
    if kind == "inf":
        return losses * torch.tensor([1.0, 1.0, float("inf")], dtype=losses.dtype)
    if kind == "no grad":
        return losses.detach()
    return list(losses)  # "a list"


@methods
@pytest.mark.parametrize("kind", ["too many", "column", "scalar", "nan", "inf", "no grad", "a list"])
def test_bad_losses_raise_one_line_and_change_nothing(method, kind):
    data = list(batches(3))
    model = make_net()
    balancer = build(method, model)
    for index in range(2):
        step(model, balancer, data[index], index)
    before = copy.deepcopy(balancer.state_dict())
    weights = balancer.weights
    model.zero_grad(set_to_none=True)
    losses = bad_losses(kind, task_losses(model, balancer, data[2]))
    with pytest.raises((TypeError, ValueError)) as error:
        balancer.backward(losses)
    message = str(error.value)
    assert "\n" not in message and "losses" in message
    if kind in ("nan", "inf"):  # names the task and the step
        assert message.startswith(f"losses[{'1' if kind == 'nan' else '2'}] is {kind} at step 2"), message
    assert same(balancer.state_dict(), before) and torch.equal(balancer.weights, weights)
    assert all(p.grad is None for p in model.parameters())  # no gradient reached the network
    step(model, balancer, data[2], 2)  # and it goes on as if nothing happened
    assert balancer.step_count == 3


@methods
def test_no_gradient_reaches_the_weights(method):
    data = list(batches(3))
    model = make_net()
    balancer = build(method, model)
    for index, batch in enumerate(data):
        read = balancer.weights
        kept = read.clone()
        assert not read.requires_grad and read.grad_fn is None
        step(model, balancer, batch, index)
        assert torch.equal(read, kept)  # what was read before the step is not the live tensor
        after = balancer.weights
        assert not after.requires_grad and after.grad_fn is None and after.grad is None
        with torch.no_grad():  # stepping the network again does not move the weights
            for p in model.parameters():
                p.add_(1.0)
            task_losses(model, balancer, batch)
        assert torch.equal(balancer.weights, after)
        unchanged = after.clone()
        after.add_(1.0)  # a copy: changing it changes nothing
        assert torch.equal(balancer.weights, unchanged)


@methods
def test_a_training_run_through_fit_is_finite_and_resumes_exactly_from_its_state(method):
    """The same contract through the training loop: 3 epochs of ``fit``, stopped after the first
    and resumed from ``Training.state_dict``, give the uninterrupted records."""
    records = fit_and_resume(method, **{key: value for key, value in required_options(method).items()})
    assert all(len(record["weights"]) == 3 for record in records)
