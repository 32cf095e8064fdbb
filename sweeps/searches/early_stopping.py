"""``scheduler``: the early stopping a search may ask for, as an option of any search type.

``scheduler: {type: asha, grace_period: 1, reduction_factor: 3, max_t: 8}`` runs the search's
trials under asynchronous successive halving (ASHA, Li et al. 2020): at each rung (epoch
``grace_period``, then ``grace_period * reduction_factor``, ``* reduction_factor**2``, ... below
``max_t``) a trial whose validation ``score`` of that epoch is worse than the best
``1 / reduction_factor`` of the trials of its search recorded there so far is stopped. Trials
of other searches are never compared with it (see :mod:`sweeps.scheduler`).

Defaults: ``grace_period`` 1; ``reduction_factor`` 3, not Tune's 4: the rungs of a sweep are
epochs, usually a few dozen at most, and 3 gives more rungs in that span (1, 3, 9, 27 against 1,
4, 16) while keeping a third rather than a quarter of a search's trials at each one, which suits
searches of a few to a few dozen trials (3 is also Hyperband's default eta); ``max_t`` the
sweep's ``training.epochs``. A trial stopped at ``max_t < training.epochs`` is stopped early too.
``grace_period <= max_t <= training.epochs`` is checked by the sweep spec, which knows the epochs.
"""

from __future__ import annotations

from typing import Annotated, Any, ClassVar, Literal

from pydantic import Field, model_validator

from ..validation import Fix, problem, SpecModel

__all__ = ["AshaScheduler", "SCHEDULER_FIX"]

SCHEDULER_FIX = ("write it as {type: asha, grace_period: 1, reduction_factor: 3, max_t: <epochs>} "
                 "(all but type optional)")
_GRACE_FIX = "give the epochs every trial runs before it can be stopped, a whole number >= 1 (default 1)"
_FACTOR_FIX = "give a number > 1: each rung keeps the best 1/reduction_factor of the trials (default 3)"
_MAX_T_FIX = "give the most epochs a trial runs, a whole number >= 1 (default: training.epochs)"


class AshaScheduler(SpecModel):
    """ASHA early stopping of one search's trials (see the module docstring)."""

    KEY_NOUN: ClassVar[str] = "scheduler option"
    SHAPE_FIX: ClassVar[str] = SCHEDULER_FIX

    type: Annotated[Literal["asha"], Fix(noun="scheduler type", missing="add 'type: asha' (the only scheduler)")]
    grace_period: Annotated[int, Fix(_GRACE_FIX)] = Field(1, ge=1)
    reduction_factor: Annotated[float, Fix(_FACTOR_FIX)] = Field(3.0, gt=1)
    max_t: Annotated[int | None, Fix(_MAX_T_FIX)] = Field(None, ge=1)

    @model_validator(mode="after")
    def _grace_within_max_t(self) -> AshaScheduler:
        if self.max_t is not None and self.grace_period > self.max_t:
            raise problem(
                f"is {self.grace_period}, above max_t ({self.max_t}): no trial would reach a rung",
                "make grace_period <= max_t",
                ("grace_period",),
            )
        return self

    def resolved(self, epochs: int) -> dict[str, Any]:
        """The ASHA settings for a sweep of ``epochs`` training epochs: ``grace_period``,
        ``reduction_factor`` and ``max_t`` (``epochs`` when not given)."""
        return {"grace_period": self.grace_period, "reduction_factor": self.reduction_factor,
                "max_t": self.max_t if self.max_t is not None else epochs}

    def describe(self, epochs: int) -> str:
        """``ASHA early stopping (grace 1, reduction 3, max_t 8 epochs)``."""
        settings = self.resolved(epochs)
        return (f"ASHA early stopping (grace {settings['grace_period']}, reduction {settings['reduction_factor']:g}, "
                f"max_t {settings['max_t']} epochs)")

    def problem_with(self, epochs: int) -> tuple[str, str, tuple[str, ...]] | None:
        """``(what, fix, field)`` when these settings do not fit ``epochs`` training epochs."""
        if self.max_t is not None and self.max_t > epochs:
            return (f"is {self.max_t}, above training.epochs ({epochs})",
                    f"make max_t <= {epochs}, or leave it out for {epochs}", ("max_t",))
        if self.max_t is None and self.grace_period > epochs:
            return (f"is {self.grace_period}, above training.epochs ({epochs}): no trial would reach a rung",
                    f"make grace_period <= {epochs}", ("grace_period",))
        return None
