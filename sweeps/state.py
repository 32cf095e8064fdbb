"""A sweep's directory and what ``sweep.json`` in it holds: the spec, the tracking URI, the MLflow
run ids and which searches are done. ``gradnorm-tune resume`` reads it back."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

STATE_FILE = "sweep.json"
TRIALS_DIR = "trials"  # the sweep's one Tune experiment, all searches together
LOGS_DIR = "logs"  # each failed trial's log: <trial id>.log


class SweepInterrupted(KeyboardInterrupt):
    """The sweep was stopped before its end (``signum``: by which signal, if one; ``at_once``:
    by a second signal, with no clean-up); ``gradnorm-tune resume`` finishes it."""

    def __init__(self, message: str, signum: int | None = None, at_once: bool = False) -> None:
        super().__init__(message)
        self.signum = signum
        self.at_once = at_once


class SweepError(RuntimeError):
    """The sweep cannot start or go on; the message is one line saying why and what to do."""


class SweepUnfinished(SweepError):
    """The sweep stopped for a passing reason (its tracking server stayed away); its trials are
    checkpointed and ``gradnorm-tune resume`` finishes it. One line, like :class:`SweepError`."""


@dataclass
class SweepState:
    """What ``sweep.json`` holds.

    ``searches`` maps each search name to ``{"parent_run_id", "status"}`` (``pending``,
    ``running``, ``done``, ``skipped``), plus ``result`` (whether a done search has one),
    ``weights`` for the recommended static search and ``grid_size``/``sampled`` for a static
    grid. ``wall_seconds`` is the wall-clock of the sweep's Tune experiment, summed over the runs
    of a resumed sweep. ``outcome`` is the sweep's verdict once it ended (see
    :mod:`sweeps.verdict`: ``complete``, ``trials_failed``, ``no_result``, ``interrupted``) and
    ``counts`` its trials by outcome.
    """

    directory: Path
    spec: dict[str, Any]
    spec_source: str
    tracking_uri: str
    sweep_id: str
    experiment_id: str
    comparison_run_id: str
    searches: dict[str, dict[str, Any]] = field(default_factory=dict)
    wall_seconds: float = 0.0
    outcome: str | None = None
    counts: dict[str, int] = field(default_factory=dict)

    @property
    def trials_dir(self) -> Path:
        return self.directory / TRIALS_DIR

    @property
    def logs_dir(self) -> Path:
        return self.directory / LOGS_DIR

    def save(self) -> None:
        # written whole, then renamed: a crash never leaves half a state file
        data = {key: value for key, value in self.__dict__.items() if key != "directory"}
        temporary = self.directory / (STATE_FILE + ".tmp")
        temporary.write_text(json.dumps(data, indent=2))
        temporary.replace(self.directory / STATE_FILE)

    @classmethod
    def load(cls, directory: str | Path) -> SweepState:
        path = Path(directory) / STATE_FILE
        if not path.is_file():
            raise SweepError(f"{directory} is not a sweep directory (no {STATE_FILE}); "
                             "pass the directory a sweep printed at its start")
        return cls(directory=Path(directory), **json.loads(path.read_text()))
