"""Multitask problems, and a registry to build them by name."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

from .base import MultiHeadNet, Problem, Split
from .multidigits import MultiDigits
from .multimnist import MultiMNIST
from .qm9 import QM9
from .toy import ToyRegression

__all__ = [
    "PROBLEMS",
    "MultiDigits",
    "MultiHeadNet",
    "MultiMNIST",
    "Problem",
    "QM9",
    "Split",
    "ToyRegression",
    "make_problem",
]

PROBLEMS: dict[str, Callable[..., Problem]] = {
    "toy": ToyRegression,  # needs sigmas=[...]
    "toy_t2": ToyRegression.paper_t2,
    "toy_t10": ToyRegression.paper_t10,
    "multidigits": MultiDigits,
    "multimnist": MultiMNIST,  # needs the MNIST files: gradnorm-tune data mnist
    "qm9": QM9,  # needs qm9pack: pip install 'gradnorm-tune[qm9]'
}


def make_problem(name: str, **options: Any) -> Problem:
    """Build the problem registered as ``name`` with keyword ``options``.

    Unknown names, unknown options and missing required options raise a one-line ValueError;
    so do bad option values (raised by the problem's own checks).
    """
    if name not in PROBLEMS:
        raise ValueError(f"unknown problem {name!r}; choose one of: {', '.join(PROBLEMS)}")
    factory = PROBLEMS[name]
    parameters = inspect.signature(factory).parameters
    accepted = ", ".join(parameters)
    # Checked against the signature rather than by catching TypeError from the call, so that a
    # TypeError raised inside the problem is never misreported as a bad option name.
    for key in options:
        if key not in parameters:
            raise ValueError(
                f"unknown option {key!r} for problem {name!r}; accepted options: {accepted}"
            )
    for key, parameter in parameters.items():
        if parameter.default is inspect.Parameter.empty and key not in options:
            raise ValueError(f"problem {name!r} needs option {key!r}; accepted options: {accepted}")
    return factory(**options)
