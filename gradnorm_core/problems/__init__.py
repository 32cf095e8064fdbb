"""Multitask problems, and a registry to build them by name."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

from .base import MultiHeadNet, Problem, Split
from .metrics import (
    TASK_KINDS, BinaryErrorRate, ErrorRate, MeanAbsoluteError, Metric, Metrics, NormalizedMSE, higher_is_better,
)
from .multidigits import MultiDigits
from .multimnist import MultiMNIST
from .qm9 import QM9
from .registry import ENTRY_POINT_GROUP, ProblemNameError, build_problem, resolve_problem, user_problem_tasks
from .shapes import TargetShapeError, check_target_shapes
from .toy import ToyRegression

__all__ = [
    "ENTRY_POINT_GROUP",
    "PROBLEMS",
    "TASK_KINDS",
    "BinaryErrorRate",
    "ErrorRate",
    "MeanAbsoluteError",
    "Metric",
    "Metrics",
    "NormalizedMSE",
    "MultiDigits",
    "MultiHeadNet",
    "MultiMNIST",
    "Problem",
    "ProblemNameError",
    "QM9",
    "Split",
    "TargetShapeError",
    "ToyRegression",
    "check_target_shapes",
    "higher_is_better",
    "make_problem",
    "problem_tasks",
    "resolve_problem",
]


# The built-in problems: name -> factory (its signature gives the accepted options and their
# defaults). Constructing one only checks its options; data is loaded on first use.
PROBLEMS: dict[str, Callable[..., Problem]] = {
    "toy": ToyRegression,  # needs sigmas=[...]
    "toy_t2": ToyRegression.paper_t2,
    "toy_t10": ToyRegression.paper_t10,
    "multidigits": MultiDigits,
    "multimnist": MultiMNIST,  # needs the MNIST files: gradnorm-tune data mnist
    "qm9": QM9,  # needs qm9pack: pip install 'gradnorm-tune[qm9]'
}


def _check_options(name: str, options: dict[str, Any]) -> inspect.Signature:
    """The signature of the factory registered as ``name``, once ``options`` are known to fit it.

    Unknown names, unknown options and missing required options raise a one-line ValueError.
    Checked against the signature rather than by catching TypeError from the call, so that a
    TypeError raised inside the problem is never misreported as a bad option name.
    """
    if name not in PROBLEMS:
        raise ValueError(f"unknown problem {name!r}; choose one of: {', '.join(PROBLEMS)}")
    signature = inspect.signature(PROBLEMS[name])
    parameters = signature.parameters
    accepted = ", ".join(parameters)
    for key in options:
        if key not in parameters:
            raise ValueError(
                f"unknown option {key!r} for problem {name!r}; accepted options: {accepted}"
            )
    for key, parameter in parameters.items():
        if parameter.default is inspect.Parameter.empty and key not in options:
            raise ValueError(f"problem {name!r} needs option {key!r}; accepted options: {accepted}")
    return signature


def make_problem(name: str, **options: Any) -> Problem:
    """Build the problem registered as ``name`` with keyword ``options``.

    Unknown names, unknown options and missing required options raise a one-line ValueError;
    so do bad option values (raised by the problem's own checks).

    ``name`` may also be ``module:attribute`` or an installed package's entry point (see
    :mod:`.registry`): a user's factory is called with the options, and what it raises is raised.
    """
    if name not in PROBLEMS:  # module:attribute, or an entry point of gradnorm_tune.problems
        return build_problem(name, resolve_problem(name), options)
    _check_options(name, options)
    return PROBLEMS[name](**options)


def problem_tasks(name: str, **options: Any) -> tuple[str, ...]:
    """The task names of ``make_problem(name, **options)``: the problem is constructed (which
    only checks its options) and no data is built, generated or loaded.

    The options are checked as ``make_problem`` checks them, with the same one-line ValueErrors:
    unknown name, unknown option, missing required option, and bad values (the problem's own
    checks, shared with its constructor). What only the data can tell (e.g. missing data files,
    or QM9 split sizes larger than the molecules available) is not checked.

    A user's problem (``module:attribute`` or an entry point) is built, cheaply by contract, for
    its ``task_names``; anything its construction raises becomes a one-line ValueError.
    """
    if name not in PROBLEMS:
        return user_problem_tasks(name, options)
    return tuple(make_problem(name, **options).task_names)
