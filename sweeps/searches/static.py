"""``static``: one trial with fixed task weights (also the sweep's recommended static trial)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Annotated, Any, ClassVar, Literal

from pydantic import Field, model_validator

from ..validation import Fix, problem
from .base import SearchType
from .options import NonNegative, weights_label

if TYPE_CHECKING:
    from trainables import TrialConfig

__all__ = ["StaticSearch"]


def _weights_fix(context: Mapping[str, Any]) -> str:
    if "num_tasks" not in context:
        return "give one weight >= 0 per task, at least one > 0"
    return (
        f"give {context['num_tasks']} weights >= 0 (one per task of problem {context['problem']!r}), "
        "at least one > 0"
    )


class StaticSearch(SearchType):
    """One trial with ``weights``: one number >= 0 per task, at least one > 0."""

    method: ClassVar[str] = "static"

    type: Literal["static"] = "static"
    weights: Annotated[list[NonNegative], Fix(_weights_fix)] = Field(min_length=1)

    @model_validator(mode="after")
    def _trains_something(self) -> StaticSearch:
        if not any(weight > 0 for weight in self.weights):
            raise problem("all weights are 0, which trains nothing", "make at least one weight > 0", ("weights",))
        return self

    def check(self, num_tasks: int, task_names: Sequence[str], problem_name: str) -> None:
        if len(self.weights) != num_tasks:
            raise problem(
                f"expected {num_tasks} weights (one per task of problem {problem_name!r}), got {len(self.weights)}",
                _weights_fix({"num_tasks": num_tasks, "problem": problem_name}),
                ("weights",),
            )

    def balancer_options(self) -> dict[str, Any]:
        return {"weights": list(self.weights)}

    def own_points(self, num_tasks: int, seed: int) -> list[dict[str, Any]]:
        return [{"weights": list(self.weights)}]

    def own_label(self, config: TrialConfig) -> str:
        return weights_label(config)
