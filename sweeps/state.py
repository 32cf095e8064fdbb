"""A sweep's directory and what ``sweep.json`` in it holds: the spec, the tracking URI, the MLflow
run ids and which searches are done. ``gradnorm-tune resume`` reads it back.

The directory is a local path (a :class:`~pathlib.Path`; an NFS mount is one) or a storage URI
(``s3://...``, ``gs://...``; a ``str``), read and written through :mod:`trainables.storage`. It
holds ``sweep.json``, the Tune experiment ``trials/`` (every trial's checkpoints) and ``logs/``.
"""

from __future__ import annotations

import json
import os
import shlex
import types
import typing
from dataclasses import MISSING, dataclass, field, fields
from pathlib import Path
from typing import Any

from trainables import storage

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


class FinishFailed(RuntimeError):
    """A finishing step (the comparison, its plots) failed on an internal error, not on the user's
    input: the trials' record is whole and ``gradnorm-tune report`` rebuilds it. One line, naming
    the log that keeps the traceback."""


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
    #: set when the sweep runs as a Ray job (``gradnorm-tune submit``): ``{"runtime_env": ...}``,
    #: the job's runtime_env as submitted (``submit --resume`` ships it again)
    job: dict[str, Any] | None = None

    def __post_init__(self) -> None:
        self.directory = location(self.directory)

    @property
    def trials_dir(self) -> Path | str:
        return self._child(TRIALS_DIR)

    @property
    def logs_dir(self) -> Path | str:
        return self._child(LOGS_DIR)

    def _child(self, name: str) -> Path | str:
        if isinstance(self.directory, Path):
            return self.directory / name
        return storage.join(self.directory, name)

    def spec_data(self, in_job: bool = False) -> dict[str, Any]:
        """The spec as the sweep read it; for a sweep run as a Ray job, with the runtime_env its job
        was submitted with put back (its local paths are the submitting machine's), unless this
        process is such a job (whose runtime_env Ray applies)."""
        if in_job or not self.job or not self.job.get("runtime_env"):
            return self.spec
        return {**self.spec, "runtime_env": self.job["runtime_env"]}

    @property
    def resume_command(self) -> str:
        """The command that finishes this sweep after an interruption, quoted for the shell (a URI's
        ``?...&...`` included)."""
        if self.job is not None:
            return f"gradnorm-tune submit --resume {shlex.quote(str(self.directory))} --address http://HEAD:8265"
        return f"gradnorm-tune resume {shlex.quote(str(self.directory))}"

    @property
    def report_command(self) -> str:
        """The command that rebuilds this sweep's comparison, quoted for the shell."""
        return f"gradnorm-tune report {shlex.quote(str(self.directory))}"

    def save(self) -> None:
        data = {key: value for key, value in self.__dict__.items() if key != "directory"}
        text = json.dumps(data, indent=2)
        if isinstance(self.directory, Path):
            # written whole, then renamed: a crash never leaves half a state file
            temporary = self.directory / (STATE_FILE + ".tmp")
            temporary.write_text(text)
            temporary.replace(self.directory / STATE_FILE)
        else:
            storage.write_text(self._child(STATE_FILE), text)  # one object, written whole

    @classmethod
    def load(cls, directory: str | Path) -> SweepState:
        where = location(directory)
        try:
            text = (where / STATE_FILE).read_text() if isinstance(where, Path) else storage.read_text(
                storage.join(where, STATE_FILE))
        except FileNotFoundError:
            text = None
        except OSError as error:
            raise SweepError(f"cannot read {directory} ({one_line(error)}); check the storage URI, its endpoint "
                             "(AWS_ENDPOINT_URL) and credentials") from None
        if text is None:
            raise SweepError(f"{directory} is not a sweep directory (no {STATE_FILE}); "
                             "pass the directory a sweep printed at its start")
        return cls(directory=where, **_fields(text, storage.join(str(where), STATE_FILE)))


def _fields(text: str, source: str) -> dict[str, Any]:
    """What a ``sweep.json`` holds, checked: a JSON object with every field a sweep writes, of its
    type; anything else is a one-line SweepError."""
    fix = "pass the directory a sweep printed at its start; a damaged state cannot be resumed or reported"
    try:
        data = json.loads(text)
    except ValueError as error:
        raise SweepError(f"{source} is not JSON ({one_line(error)}); {fix}") from None
    if not isinstance(data, dict):
        raise SweepError(f"{source} holds a {type(data).__name__}, not a sweep's state; {fix}")
    kinds = [f.name for f in fields(SweepState) if f.name != "directory"]
    required = [f.name for f in fields(SweepState) if f.name != "directory" and f.default is MISSING
                and f.default_factory is MISSING]
    missing = [name for name in required if name not in data]
    if missing:
        raise SweepError(f"{source} is not a sweep's state (missing: {', '.join(missing)}); {fix}")
    unknown = sorted(set(data) - set(kinds))
    if unknown:
        raise SweepError(f"{source} has unknown fields ({', '.join(unknown)}): written by another version of "
                         f"gradnorm-tune?; use that version, or {fix}")
    hints = typing.get_type_hints(SweepState)
    for name, value in data.items():
        if not _holds(hints[name], value):
            raise SweepError(f"{source}: {name} is {type(value).__name__}, not a sweep's {name}; {fix}")
    return data


def _holds(hint: Any, value: Any) -> bool:
    """Whether a JSON value fits a :class:`SweepState` field's annotation (its outer type; ``None``
    where the field is optional; a whole number where it is a float; never a bool for a number)."""
    if hint is Any:
        return True
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        return any(_holds(arg, value) for arg in typing.get_args(hint))
    if hint is type(None):
        return value is None
    kind = typing.get_origin(hint) or hint
    if isinstance(value, bool):
        return kind is bool
    return isinstance(value, (int, float) if kind is float else kind)


def location(directory: str | os.PathLike) -> Path | str:
    """A sweep directory as :class:`SweepState` keeps it: a local path (``file://`` included) as
    an absolute :class:`~pathlib.Path`, a storage URI as a string with its S3 endpoint in it
    (:func:`trainables.storage.resolve`)."""
    text = os.fspath(directory)
    if text.startswith("file://"):
        text = text.removeprefix("file://")
    if not storage.is_uri(text):
        return Path(text).expanduser().resolve()
    try:
        return storage.resolve(text)
    except storage.StorageError as error:
        raise SweepError(str(error)) from None


def one_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__
