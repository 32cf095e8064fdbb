"""The balancers by name, and the one place their options are checked.

Each balancer module registers its class under the name trial configs and specs use::

    @register("famo")
    class FAMO(Balancer):
        def __init__(self, num_tasks: int, lr: float = 0.025, weight_decay: float = 0.001, ...): ...

A method's options are its constructor's parameters, ``num_tasks`` and the parameters
:meth:`Balancer.build` fills from the model (``MODEL_ARGUMENTS``, GradNorm's W) aside; a
parameter without a default is a required option. Values are checked against the parameters'
annotations by pydantic, strictly: a bool is no number, a string no list, NaN and infinities are
refused (the constructors then check ranges and the method's own rules). :data:`METHODS` (name
-> accepted options) is read from the registry; nothing keeps a list of methods by hand.
"""

from __future__ import annotations

import inspect
import types
import typing
from collections.abc import Callable, Iterator, Mapping, Sequence
from functools import cache
from typing import Any, TypeVar

from pydantic import ConfigDict, TypeAdapter, ValidationError

from .base import Balancer
from .shared_layer import resolve_shared_layer

__all__ = ["BALANCERS", "METHODS", "BalancerOptionError", "balancer_class", "check_balancer_options",
           "make_balancer", "register"]

#: method name -> its Balancer class, in the order the classes registered
BALANCERS: dict[str, type[Balancer]] = {}

B = TypeVar("B", bound=type[Balancer])

_STRICT = ConfigDict(strict=True, allow_inf_nan=False, arbitrary_types_allowed=True)


class BalancerOptionError(ValueError):
    """An unknown method, or an option a method does not take, lacks or cannot use; one line,
    ``"<what>; <fix>"``. ``option`` is the option at fault (None: the method itself)."""

    def __init__(self, what: str, fix: str = "", option: str | None = None) -> None:
        self.what, self.fix, self.option = what, fix, option
        super().__init__(f"{what}; {fix}" if fix else what)  # (unpickled: the whole line as ``what``)


def register(name: str) -> Callable[[B], B]:
    """Class decorator: make the Balancer subclass buildable as ``make_balancer(name, ...)``."""
    if not isinstance(name, str) or not name.isidentifier():
        raise ValueError(f"balancer name {name!r} is not a plain name; use letters, digits and '_'")

    def decorate(cls: B) -> B:
        if not (inspect.isclass(cls) and issubclass(cls, Balancer)):
            raise TypeError(f"register({name!r}) decorates a Balancer subclass, got {cls!r}")
        taken = BALANCERS.get(name)
        same = taken is not None and (taken.__module__, taken.__qualname__) == (cls.__module__, cls.__qualname__)
        if taken is not None and not same:  # (the same class again: its module was reloaded)
            raise ValueError(f"balancer name {name!r} is taken by {taken.__qualname__}; "
                             f"register {cls.__qualname__} under another name")
        BALANCERS[name] = cls
        return cls

    return decorate


def balancer_class(method: str) -> type[Balancer]:
    """The class registered as ``method``; an unknown name raises :class:`BalancerOptionError`."""
    cls = BALANCERS.get(method) if isinstance(method, str) else None
    if cls is None:
        raise BalancerOptionError(f"unknown method {method!r}", f"choose one of: {', '.join(BALANCERS)}")
    return cls


@cache
def _parameters(cls: type[Balancer]) -> dict[str, tuple[inspect.Parameter, Any, TypeAdapter]]:
    """The options of ``cls``: name -> (its constructor parameter, annotation, strict validator)."""
    hints = typing.get_type_hints(cls.__init__)
    skip = {"self", "num_tasks", *cls.MODEL_ARGUMENTS}
    options = {}
    for key, parameter in inspect.signature(cls.__init__).parameters.items():
        if key in skip or parameter.kind in (parameter.VAR_POSITIONAL, parameter.VAR_KEYWORD):
            continue
        annotation = hints.get(key, Any)
        options[key] = (parameter, annotation, TypeAdapter(annotation, config=_STRICT))
    return options


class _Methods(Mapping[str, tuple[str, ...]]):
    """Method name -> the options it accepts, read from the registry at each use."""

    def __getitem__(self, method: str) -> tuple[str, ...]:
        return tuple(_parameters(BALANCERS[method]))

    def __iter__(self) -> Iterator[str]:
        return iter(BALANCERS)

    def __len__(self) -> int:
        return len(BALANCERS)

    def __repr__(self) -> str:
        return repr(dict(self))


#: method name -> the options it accepts (besides num_tasks and the model), from the registry
METHODS: Mapping[str, tuple[str, ...]] = _Methods()


_NAMES = {float: "a finite number", int: "an integer", bool: "true or false", str: "a string"}


def _expected(annotation: Any) -> str:
    """How an annotation reads in an error: ``float | None`` -> ``a finite number or None``."""
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if annotation is type(None):
        return "None"
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_expected(arg) for arg in args)
    if origin is typing.Literal:
        return "one of " + ", ".join(repr(arg) for arg in args)
    if origin in (list, tuple, Sequence) and args:
        return f"a list of {_expected(args[0]).split(' ', 1)[1]}s"
    return _NAMES.get(annotation, f"a {str(getattr(annotation, '__name__', annotation)).lower()}")


def check_balancer_options(method: str, options: Mapping[str, Any]) -> dict[str, Any]:
    """``options`` of ``method``, checked: every key an option of the method, every required
    option given, every value of its parameter's annotated type (strict; finite numbers). Returns
    the validated values (an int given for a float becomes a float). Raises
    :class:`BalancerOptionError`."""
    cls = balancer_class(method)
    accepted = _parameters(cls)
    listed = ", ".join(accepted) or "none"
    for key in options:
        if key not in accepted:
            raise BalancerOptionError(f"method {method!r} takes no option {key!r}", f"accepted options: {listed}", key)
    for key, (parameter, annotation, _) in accepted.items():
        if parameter.default is inspect.Parameter.empty and key not in options:
            raise BalancerOptionError(f"method {method!r} needs option {key!r}", f"give {_expected(annotation)}", key)
    checked = {}
    for key, value in options.items():
        _, annotation, adapter = accepted[key]
        try:
            checked[key] = adapter.validate_python(value)
        except ValidationError:
            hint = _expected(annotation)
            shown = repr(value) if len(repr(value)) <= 60 else repr(value)[:57] + "..."
            raise BalancerOptionError(f"option {key!r} of method {method!r} is {shown}", f"give {hint}", key) from None
    return checked


def make_balancer(
    method: str,
    num_tasks: int,
    model: Any = None,
    shared_layer: str | None = None,
    **options: Any,
) -> Balancer:
    """Build the balancer registered as ``method`` for ``num_tasks`` tasks.

    Options are checked by :func:`check_balancer_options`, then the class's
    :meth:`~Balancer.build` builds it. A balancer that needs the model (``MODEL_ARGUMENTS``:
    GradNorm's W is ``model.get_submodule(shared_layer)``, or with ``shared_layer`` None the
    model's ``last_shared_layer``) refuses ``model=None``; for the others a ``shared_layer``
    given with a ``model`` is still checked to exist. Bad names or options raise a one-line
    ValueError naming them.
    """
    cls = balancer_class(method)
    checked = check_balancer_options(method, options)
    if cls.MODEL_ARGUMENTS and model is None:
        raise ValueError(f"method {method!r} needs the model to balance (model=...)")
    if not cls.MODEL_ARGUMENTS and model is not None and shared_layer is not None:
        resolve_shared_layer(model, shared_layer)
    return cls.build(num_tasks, model, shared_layer, **checked)
