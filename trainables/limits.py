"""How long the names a user gives may be: MLflow's limits and the file system's, applied to the
longest name the record and the sweep directory derive from each. The one place that knows what
is derived from a sweep, search or experiment name, a problem option or a task name.

MLflow's limits are those of the installed mlflow (``mlflow/utils/validation.py``;
``tests/test_tracking.py`` compares them). Nothing here imports MLflow: a spec is checked
before MLflow (or Ray) starts.
"""

from __future__ import annotations

import re

__all__ = ["KEY_PATTERN", "MAX_EXPERIMENT_NAME", "MAX_FILE_NAME", "MAX_KEY", "longest", "name_problem"]

#: MLflow's MAX_ENTITY_KEY_LENGTH: a metric, param or tag key (a run's name is a column of that
#: size in MLflow's SQL stores, too)
MAX_KEY = 250
#: MLflow's MAX_EXPERIMENT_NAME_LENGTH
MAX_EXPERIMENT_NAME = 500
#: The bytes of one file or directory name (ext4, XFS, APFS, NTFS)
MAX_FILE_NAME = 255
#: The characters of a metric or param key (MLflow's validate_param_and_metric_name, not on Windows)
KEY_PATTERN = re.compile(r"^[/\w.\- :]*$")

#: The longest metric a comparison run logs per search after "<search>/" (today
#: "stopped_compute_seconds"; ``tests/test_tracking.py`` checks the comparison's metrics fit)
SEARCH_METRIC = 32
#: The longest Ray Tune trial id ("a1b2c_00001" and, in a large sweep, more digits)
TRIAL_ID = 24
#: The longest metric of a task after "<split>/<task>/" ("normalized_error"; a problem's own
#: metric names may be longer: this keeps room for them)
TASK_METRIC = 32

# kind of name -> the names derived from it: (template, its limit, what it is); "{}" is the name
_DERIVED: dict[str, tuple[tuple[str, int, str], ...]] = {
    "sweep": (
        ("{}-YYYYmmdd-HHMMSS", MAX_FILE_NAME, "the sweep directory's name"),
        ("{} comparison", MAX_KEY, "the comparison run's name"),
        ("gradnorm-tune_{}", MAX_FILE_NAME, "the default experiment's artifact folder"),
    ),
    "search": (
        ("{}/" + "m" * SEARCH_METRIC, MAX_KEY, "the comparison run's metric keys <search>/<metric>"),
        ("{} " + "t" * TRIAL_ID, MAX_KEY, "its trial runs' names <search> <configuration>"),
        ("recommended_weights_{}.json", MAX_FILE_NAME, "its artifact files' names"),
    ),
    "experiment": (
        ("{}", MAX_EXPERIMENT_NAME, "MLflow's experiment name"),
        ("{}", MAX_FILE_NAME, "its artifact folder in a local store"),
    ),
    "problem option": (("problem.options.{}", MAX_KEY, "its trial params' key problem.options.<option>"),),
    "task": (("test/{}/" + "m" * TASK_METRIC, MAX_KEY, "its metric keys <split>/<task>/<metric>"),),
}
#: kinds of name that become part of MLflow metric or param keys: only KEY_PATTERN's characters
_IN_KEYS = ("search", "problem option", "task")


def _size(text: str) -> int:
    return len(text.encode("utf-8"))


def longest(kind: str) -> int:
    """The longest name of that kind (in UTF-8 bytes) whose derived names all fit."""
    return min(limit - _size(template.replace("{}", "")) for template, limit, _ in _DERIVED[kind])


def name_problem(kind: str, name: str) -> tuple[str, str] | None:
    """``(what, fix)`` when a ``kind`` name (``"sweep"``, ``"search"``, ``"experiment"``,
    ``"problem option"``, ``"task"``) is too long for a name derived from it or has characters
    MLflow refuses in keys; None when it fits."""
    if kind in _IN_KEYS and not KEY_PATTERN.match(name):
        return (f"{kind} name {name!r} has characters MLflow refuses in metric and param keys",
                "use letters, digits, '_', '-', '.', ' ', ':' and '/'")
    for template, limit, what in _DERIVED[kind]:
        size = _size(template.replace("{}", name))
        if size > limit:
            shown = name if len(name) <= 40 else name[:37] + "..."
            return (f"{kind} name {shown!r} is {_size(name)} characters long: {what} would be {size}, "
                    f"above {limit}", f"shorten it to at most {longest(kind)} characters")
    return None
