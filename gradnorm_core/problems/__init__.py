"""Multitask problems, and a registry to build them by name."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass
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
    "problem_tasks",
]


@dataclass(frozen=True)
class _Entry:
    """One registered problem: ``build`` makes it from keyword options (its signature gives the
    accepted options and their defaults); ``tasks`` takes every one of those options, runs the
    same option checks as ``build`` and returns the task names without building any data."""

    build: Callable[..., Problem]
    tasks: Callable[..., tuple[str, ...]]


_REGISTRY: dict[str, _Entry] = {
    "toy": _Entry(ToyRegression, ToyRegression.tasks),  # needs sigmas=[...]
    "toy_t2": _Entry(ToyRegression.paper_t2, ToyRegression.paper_t2_tasks),
    "toy_t10": _Entry(ToyRegression.paper_t10, ToyRegression.paper_t10_tasks),
    "multidigits": _Entry(MultiDigits, MultiDigits.tasks),
    # needs the MNIST files: gradnorm-tune data mnist
    "multimnist": _Entry(MultiMNIST, MultiMNIST.tasks),
    # needs qm9pack: pip install 'gradnorm-tune[qm9]'
    "qm9": _Entry(QM9, QM9.tasks),
}

PROBLEMS: dict[str, Callable[..., Problem]] = {
    name: entry.build for name, entry in _REGISTRY.items()
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
    """
    _check_options(name, options)
    return PROBLEMS[name](**options)


def problem_tasks(name: str, **options: Any) -> tuple[str, ...]:
    """The task names of ``make_problem(name, **options)``, without building, generating or
    loading any data.

    The options are checked as ``make_problem`` checks them, with the same one-line ValueErrors:
    unknown name, unknown option, missing required option, and bad values (the problem's own
    checks, shared with its constructor). What only the data can tell (e.g. missing data files,
    or QM9 split sizes larger than the molecules available) is not checked.
    """
    signature = _check_options(name, options)
    entry = _REGISTRY.get(name)
    if entry is None or entry.build != PROBLEMS[name]:
        raise ValueError(
            f"problem {name!r} was registered in PROBLEMS without its task names; "
            "register it in gradnorm_core.problems._REGISTRY"
        )
    bound = signature.bind(**options)
    bound.apply_defaults()
    return tuple(entry.tasks(**bound.arguments))
