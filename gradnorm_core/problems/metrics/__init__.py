"""Metrics accumulated batch by batch over a whole split, never holding the split's outputs.

A :class:`Metric` reads one task (``index`` into the outputs and targets of a batch) and keeps
running sums in float64 on the batches' device; ``compute()`` turns them into numbers named
``"<task>/<metric>"``. :class:`Metrics` runs several, e.g. one per task; a problem's
``metrics()`` returns a fresh one, and ``Problem.evaluate`` feeds it every batch of a split.

Every accumulator used for a problem's score gives ``"<task>/normalized_error"``: scale-free,
0 when perfect (the error rate for classification, MSE / variance of the targets for
regression); ``Problem.score`` averages it over tasks.

Each Metric class declares its names' directions (``directions``: True when higher is better),
its task's ``primary`` metric (e.g. for Delta m%) and the ``kind`` of task; :data:`DIRECTIONS`
gathers every declared name, so :func:`higher_is_better` answers from a name alone.

Modules: :mod:`.base` (the interface, the container, the names), :mod:`.classification`,
:mod:`.regression`.
"""

from .base import DIRECTIONS, TASK_KINDS, Metric, Metrics, TaskKind, higher_is_better
from .classification import BinaryErrorRate, ErrorRate
from .regression import MeanAbsoluteError, NormalizedMSE, regression_metrics

__all__ = [
    "DIRECTIONS",
    "TASK_KINDS",
    "BinaryErrorRate",
    "ErrorRate",
    "MeanAbsoluteError",
    "Metric",
    "Metrics",
    "NormalizedMSE",
    "TaskKind",
    "higher_is_better",
    "regression_metrics",
]
