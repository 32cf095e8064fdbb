"""The balancer registry: a class registers its name, its options are its constructor's parameters,
checked strictly against their annotations in one place, and METHODS is read from the registry."""

from __future__ import annotations

import pytest
import torch

from gradnorm_core import BALANCERS, METHODS, Balancer, BalancerOptionError, EqualWeights, make_balancer, register
from gradnorm_core.problems import MultiHeadNet


@pytest.fixture
def halves():
    """A balancer registered for one test: weights ``scale`` each, no learned state."""

    @register("halves_for_a_test")
    class Halves(Balancer):
        def __init__(self, num_tasks: int, scale: float = 0.5, names: list[str] | None = None) -> None:
            super().__init__(num_tasks)
            self.scale = scale

        @property
        def weights(self) -> torch.Tensor:
            return torch.full((self.num_tasks,), self.scale)

        def backward(self, losses: torch.Tensor) -> None:
            self.check_losses(losses)
            (self.scale * losses).sum().backward()
            self.step_count += 1

    yield Halves
    del BALANCERS["halves_for_a_test"]


def test_a_registered_class_is_built_by_name_with_options_from_its_signature(halves):
    assert METHODS["halves_for_a_test"] == ("scale", "names") and "halves_for_a_test" in METHODS
    balancer = make_balancer("halves_for_a_test", 2, scale=0.25)
    assert isinstance(balancer, halves) and balancer.scale == 0.25 and balancer.num_tasks == 2
    assert make_balancer("halves_for_a_test", 2, scale=1).scale == 1.0  # an int for a float: a float
    assert isinstance(make_balancer("halves_for_a_test", 2).scale, float)


@pytest.mark.parametrize("options,message", [
    ({"scale": True}, "option 'scale' of method 'halves_for_a_test' is True; give a finite number"),
    ({"scale": float("nan")}, "option 'scale' of method 'halves_for_a_test' is nan; give a finite number"),
    ({"scale": float("inf")}, "option 'scale' of method 'halves_for_a_test' is inf; give a finite number"),
    ({"scale": "0.5"}, "option 'scale' of method 'halves_for_a_test' is '0.5'; give a finite number"),
    ({"names": ["a", 3]}, "option 'names' of method 'halves_for_a_test' is ['a', 3]; give a list of strings or None"),
    ({"size": 3}, "method 'halves_for_a_test' takes no option 'size'; accepted options: scale, names"),
])
def test_options_are_checked_strictly_in_one_line_naming_the_option(halves, options, message):
    with pytest.raises(BalancerOptionError) as error:
        make_balancer("halves_for_a_test", 2, **options)
    assert str(error.value) == message
    assert error.value.option == next(iter(options))


def test_a_name_is_registered_once_and_only_for_a_balancer(halves):
    with pytest.raises(ValueError, match="balancer name 'halves_for_a_test' is taken by .*Halves; register Other"):
        register("halves_for_a_test")(type("Other", (EqualWeights,), {}))
    with pytest.raises(TypeError, match="decorates a Balancer subclass"):
        register("plain")(dict)
    with pytest.raises(ValueError, match="not a plain name"):
        register("two words")


def test_unknown_methods_required_options_and_the_model():
    with pytest.raises(BalancerOptionError, match="^unknown method 'gradnrom'; choose one of: gradnorm, static, equal"):
        make_balancer("gradnrom", 3)
    with pytest.raises(BalancerOptionError, match="^method 'static' needs option 'weights'; give a list of finite"):
        make_balancer("static", 3)
    with pytest.raises(ValueError, match="^weights must hold 3 numbers, one per task"):
        make_balancer("static", 3, weights=[1.0, 2.0])
    with pytest.raises(ValueError, match=r"^method 'gradnorm' needs the model to balance \(model=...\)"):
        make_balancer("gradnorm", 3, alpha=1.0)
    assert METHODS["gradnorm"] == ("alpha", "lr", "optimizer", "initial_losses", "min_weight")  # not its W
    assert METHODS["famo"] == ("lr", "weight_decay", "min_losses", "eps", "update")


def test_only_a_balancer_that_declares_the_fast_path_gets_branch_from_the_training_loop():
    model = MultiHeadNet(torch.nn.Sequential(torch.nn.Linear(2, 4)), [torch.nn.Linear(4, 1) for _ in range(2)])
    fast = make_balancer("gradnorm", 2, model=model, alpha=1.0)
    assert fast.uses_branch  # a Linear W in a MultiHeadNet's trunk: declared, not probed
    assert not make_balancer("gradnorm", 2, model=model, alpha=1.0, shared_layer="heads.0").uses_branch
    # IMTL reads the trunk's output through branch= by its nature; no other method asks for it
    assert make_balancer("imtl", 2).uses_branch
    assert not any(make_balancer(m, 2, **({"weights": [1.0, 1.0]} if m == "static" else {})).uses_branch
                   for m in METHODS if not BALANCERS[m].MODEL_ARGUMENTS and m != "imtl")
