"""The search types of a sweep spec: one module per type, and the registry of them.

Adding a search type takes its module (a :class:`SearchType` subclass) and one entry in
:data:`SEARCH_TYPES`; nothing else names a type. No module here imports Ray, MLflow or Optuna
at import time (a searcher is built inside :meth:`SearchType.searcher`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Any, Union

from pydantic import Field, ValidationError
from pydantic_core import PydanticCustomError

from ..validation import NAME_FIX, NAME_PATTERN, describe, did_you_mean, problem, relocate, spec_error
from .base import SearchType
from .options import tasks_context
from .dwa import DwaSearch
from .equal import EqualSearch
from .famo import FamoSearch
from .gradnorm import AlphaRange, GradNormSearch
from .imtl import ImtlSearch
from .imtl_l import ImtlLSearch
from .pbt import PbtSearch
from .scale_invariant import ScaleInvariantSearch
from .single_task import SingleTaskSearch
from .static import StaticSearch
from .static_grid import StaticGridSearch, static_grid_points
from .static_optuna import StaticOptunaSearch, WeightRange, normalised_weights
from .static_pareto import StaticParetoSearch
from .uncertainty import UncertaintySearch
from .mgda import MgdaSearch
from .pcgrad import PcgradSearch
from .cagrad import CagradSearch
from .nash_mtl import NashMtlSearch
from .imtl_g import ImtlGSearch
from .aligned_mtl import AlignedMtlSearch
from .upgrad import UpgradSearch
from .dualproj import DualprojSearch
from .rlw import RlwSearch

__all__ = [
    "SEARCH_TYPES",
    "AlignedMtlSearch",
    "AlphaRange",
    "CagradSearch",
    "DualprojSearch",
    "DwaSearch",
    "EqualSearch",
    "FamoSearch",
    "GradNormSearch",
    "ImtlLSearch",
    "ImtlGSearch",
    "ImtlSearch",
    "MgdaSearch",
    "NashMtlSearch",
    "PbtSearch",
    "PcgradSearch",
    "RENAMED_TYPES",
    "RlwSearch",
    "ScaleInvariantSearch",
    "Search",
    "SearchType",
    "SingleTaskSearch",
    "StaticGridSearch",
    "StaticOptunaSearch",
    "StaticParetoSearch",
    "StaticSearch",
    "UncertaintySearch",
    "UpgradSearch",
    "WeightRange",
    "build_search",
    "label_for_method",
    "make_search",
    "normalised_weights",
    "static_grid_points",
    "tasks_context",
]

#: search type (the ``type`` of a search in a spec) -> its class
SEARCH_TYPES: dict[str, type[SearchType]] = {
    cls.type_name(): cls
    for cls in (GradNormSearch, StaticGridSearch, StaticOptunaSearch, EqualSearch, UncertaintySearch, DwaSearch,
                StaticSearch, ScaleInvariantSearch, ImtlLSearch, ImtlSearch, FamoSearch, MgdaSearch, PcgradSearch,
                CagradSearch, NashMtlSearch, ImtlGSearch, AlignedMtlSearch, UpgradSearch, DualprojSearch, RlwSearch,
                SingleTaskSearch, StaticParetoSearch, PbtSearch)
}

#: former search types -> the one that replaced them and how to rewrite a search of it
RENAMED_TYPES: dict[str, tuple[str, str]] = {
    "equal_lr": ("equal", "write type: equal (its lr: {low, high} and num_trials stay as they are): equal weights "
                          "with the network's learning rate searched"),
}

#: Any search, told apart by its ``type``.
Search = Annotated[Union[tuple(SEARCH_TYPES.values())], Field(discriminator="type")]  # noqa: UP007


def build_search(name: Any, data: Any, context: dict[str, Any] | None = None) -> SearchType:
    """The search ``name: data`` of a spec's ``searches`` mapping. With a context (see
    :func:`~sweeps.searches.base.tasks_context`), the checks that need the problem's tasks run
    too. Errors are :func:`~sweeps.validation.problem` s located from the ``searches`` mapping."""
    at = (name,)
    if not isinstance(name, str) or not NAME_PATTERN.match(name):
        raise problem(f"invalid search name {name!r}", NAME_FIX, at)
    from trainables import name_problem

    if (found := name_problem("search", name)) is not None:  # it names MLflow runs, metrics, files
        raise problem(*found, at)
    if isinstance(data, str):  # shorthand: "equal: equal"
        data = {"type": data}
    if not isinstance(data, dict):
        raise problem(f"expected a mapping, got {describe(data)}", SearchType.SHAPE_FIX, at)
    kind = data.get("type")
    choices = ", ".join(SEARCH_TYPES)
    if kind is None:
        raise problem("missing required field", f"give one of: {choices}", (*at, "type"))
    if isinstance(kind, str) and kind in RENAMED_TYPES:
        raise problem(f"search type {kind!r} is now {RENAMED_TYPES[kind][0]!r}", RENAMED_TYPES[kind][1], (*at, "type"))
    if not isinstance(kind, str) or kind not in SEARCH_TYPES:
        raise problem(
            f"unknown search type {kind!r}", f"{did_you_mean(kind, SEARCH_TYPES)}choose one of: {choices}", (*at, "type")
        )
    cls = SEARCH_TYPES[kind]
    if "name" in data:  # the name is the key; a name inside is no option
        raise relocate(cls.unknown_key("name"), at)
    try:
        search = cls.model_validate({**data, "name": name}, context=context)
        if context is not None:
            search.check(context["num_tasks"], context["task_names"], context["problem"])
    except (ValidationError, PydanticCustomError) as exc:
        raise relocate(exc, at) from None
    return search


def make_search(
    name: str,
    data: Any,
    *,
    task_names: Sequence[str] | None = None,
    problem_name: str | None = None,
    source: str = "<spec>",
) -> SearchType:
    """The search ``name: data`` (as in a spec's ``searches`` mapping), validated; with the
    problem's ``task_names`` (and ``problem_name``) the checks that need the tasks run too.
    Raises :class:`~sweeps.validation.SpecError` ``"<source>: searches.<name>...: what; fix"``."""
    context = None if task_names is None else tasks_context(task_names, problem_name or "?")
    try:
        return build_search(name, data, context)
    except PydanticCustomError as exc:
        raise spec_error(exc, source, ("searches",)) from None


def label_for_method(method: str, config: Any) -> str:
    """The label of one run (its :class:`trainables.TrialConfig`) of a balancer ``method`` outside
    any search (``gradnorm-tune train``), as the first search type whose trials use that method
    labels its trials."""
    for cls in SEARCH_TYPES.values():
        if cls.method == method:
            return cls.model_construct(name="train").label(config)
    return "-"
