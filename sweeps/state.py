"""A sweep's directory and what ``sweep.json`` in it holds: the spec, the tracking URI, the MLflow
run ids and which searches are done. ``gradnorm-tune resume`` reads it back."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

STATE_FILE = "sweep.json"
TRIALS_DIR = "trials"  # the sweep's one Tune experiment, all searches together


class SweepInterrupted(KeyboardInterrupt):
    """The sweep was stopped before its end; ``gradnorm-tune resume`` finishes it."""


class SweepError(RuntimeError):
    """The sweep cannot start or go on; the message is one line saying why and what to do."""


@dataclass
class SweepState:
    """What ``sweep.json`` holds.

    ``searches`` maps each search name to ``{"parent_run_id", "status"}`` (``pending``,
    ``running``, ``done``), plus ``weights`` for the recommended static search and
    ``grid_size``/``sampled`` for a static grid. ``wall_seconds`` is the wall-clock of the
    sweep's Tune experiment, summed over the runs of a resumed sweep.
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

    @property
    def trials_dir(self) -> Path:
        return self.directory / TRIALS_DIR

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
