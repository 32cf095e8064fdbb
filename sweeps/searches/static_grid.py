"""``static_grid``: the classic search, one trial per point of a grid of static task weights."""

from __future__ import annotations

import copy
import itertools
import math
import random
from collections.abc import Sequence
from typing import TYPE_CHECKING, Annotated, Any, ClassVar, Literal

from pydantic import Field, field_validator

from ..validation import describe, Fix, problem
from .base import GRID, SearchType
from .options import number_list, weights_label

if TYPE_CHECKING:
    from trainables import TrialConfig

__all__ = ["StaticGridSearch", "static_grid_points"]

_SHAPE_FIX = "give one list of weight levels per task or a single list for all tasks"
_LEVEL_FIX = "weight levels are numbers >= 0, e.g. [0.5, 1, 2]"


class StaticGridSearch(SearchType):
    """Static weights on a grid: ``levels`` is one list of weight levels shared by all tasks, or
    one list per task; the grid is their product. ``max_trials`` caps the trials: past it, that
    many points are sampled at random (see :func:`static_grid_points`)."""

    method: ClassVar[str] = "static"

    type: Literal["static_grid"] = "static_grid"
    levels: Annotated[list[float] | list[list[float]], Fix(_SHAPE_FIX, missing=f"{_SHAPE_FIX}, e.g. [1, 2, 4]")]
    max_trials: Annotated[
        int | None,
        Fix("give the most grid points to run, a whole number >= 1 (or leave it out for the full grid)"),
    ] = Field(None, ge=1)

    @field_validator("levels", mode="plain")
    @classmethod
    def _levels(cls, value: Any) -> list[float] | list[list[float]]:
        if not isinstance(value, list) or not value:
            raise problem(f"expected a non-empty list, got {describe(value)}", _SHAPE_FIX)
        once = "list each level once"
        if not any(isinstance(item, list) for item in value):
            shared = number_list(value, _LEVEL_FIX, distinct=once)
            levels: list[Any] = shared
            per_task = [shared]
        else:
            for i, item in enumerate(value):
                if not isinstance(item, list):
                    raise problem(
                        f"expected a list of levels, got {describe(item)}",
                        "make every entry a list (a task with one fixed weight: [1])",
                        (i,),
                    )
            levels = per_task = [number_list(item, _LEVEL_FIX, distinct=once, at=(i,)) for i, item in enumerate(value)]
        if all(0.0 in task_levels for task_levels in per_task):
            raise problem(
                "every task's levels include 0, so the grid would contain the all-zero weights (which train nothing)",
                "drop 0 from the levels of at least one task",
            )
        return levels

    @property
    def per_task(self) -> bool:
        """Whether ``levels`` gives one list per task (rather than one list for all)."""
        return isinstance(self.levels[0], list)

    @property
    def options(self) -> dict[str, Any]:
        options = {"levels": copy.deepcopy(self.levels), "max_trials": self.max_trials}
        options |= {"lr": list(self.lr)} if isinstance(self.lr, list) else {}
        return options | ({"scheduler": self.scheduler.model_dump()} if self.scheduler else {})

    def space(self) -> str:
        return GRID

    def grid_lr_fix(self) -> str:
        return ("give lr as a list of rates (each grid point is trained at each), or use a static_optuna search: "
                "Optuna draws the weights and a range lr together")

    def check(self, num_tasks: int, task_names: Sequence[str], problem_name: str) -> None:
        if self.per_task and len(self.levels) != num_tasks:
            raise problem(
                f"expected {num_tasks} lists (one per task of problem {problem_name!r}), got {len(self.levels)}",
                _SHAPE_FIX,
                ("levels",),
            )

    def levels_per_task(self, num_tasks: int) -> list[list[float]]:
        """One list of weight levels per task."""
        if self.per_task:
            if len(self.levels) != num_tasks:
                raise ValueError(f"search {self.name!r} has {len(self.levels)} level lists but num_tasks={num_tasks}")
            return [list(task_levels) for task_levels in self.levels]  # type: ignore[arg-type]
        return [list(self.levels) for _ in range(num_tasks)]  # type: ignore[arg-type]

    def grid_size(self, num_tasks: int) -> int:
        """The number of points of the full grid (the product of the level counts)."""
        return math.prod(len(task_levels) for task_levels in self.levels_per_task(num_tasks))

    def own_count(self, num_tasks: int) -> int:
        size = self.grid_size(num_tasks)
        return size if self.max_trials is None else min(size, self.max_trials)

    def own_points(self, num_tasks: int, seed: int) -> list[dict[str, Any]]:
        points, _, _ = static_grid_points(self, num_tasks, seed)
        return [{"weights": point} for point in points]

    def own_label(self, config: TrialConfig) -> str:
        return weights_label(config)

    def parent_params(self, num_tasks: int, seed: int) -> dict[str, Any]:
        _, size, sampled = static_grid_points(self, num_tasks, seed)
        levels = [len(task_levels) for task_levels in self.levels_per_task(num_tasks)]
        return {**self.options, "grid_size": size, "grid_sampled": sampled, "grid_levels": levels}


def static_grid_points(
    search: StaticGridSearch, num_tasks: int, seed: int
) -> tuple[list[list[float]], int, bool]:
    """The weight vectors a static_grid search runs: ``(points, full grid size, sampled?)``.

    Without ``max_trials``, or with ``max_trials >= size``, all points in
    ``itertools.product`` order. Otherwise ``max_trials`` distinct points drawn without
    replacement by ``random.Random(seed)``, listed in the grid's product order. The full grid is
    never built when sampling, so large grids are fine.
    """
    levels = search.levels_per_task(num_tasks)
    size = math.prod(len(task_levels) for task_levels in levels)
    cap = search.max_trials
    if cap is None or cap >= size:
        return [list(point) for point in itertools.product(*levels)], size, False
    indices = sorted(random.Random(seed).sample(range(size), cap))
    return [_grid_point(levels, index) for index in indices], size, True


def _grid_point(levels: list[list[float]], index: int) -> list[float]:
    """The ``index``-th point of ``itertools.product(*levels)`` (last task varies fastest)."""
    point = []
    for task_levels in reversed(levels):
        index, digit = divmod(index, len(task_levels))
        point.append(task_levels[digit])
    return point[::-1]
