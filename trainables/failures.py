"""What a trial does with an exception: keep its traceback, and decide whether a retry could help.

A deterministic error in user code is not retried: an exception before the trial's first report
(a wrong shape, a missing key, a bad option: it would happen again at once), or the same
exception at the same point as the attempt before (same type, message, source line and epoch).
Anything else is raised, and Ray Tune retries the trial from its last checkpoint (``--max-failures``
times); a lost worker or node never reaches the trainable and is always retried.

Each failure is appended to the trial's log, ``<logs>/<trial id>.log`` (the sweep's ``logs``
folder, a path or URI every node can reach), with its full traceback, and its signature kept in
``<logs>/<trial id>.failure.json`` for the next attempt to compare with.
"""

from __future__ import annotations

import json
import re
import time
import traceback

from . import storage

__all__ = ["TrialFailures", "error_line", "signature", "user_error"]

_ADDRESS = re.compile(r"0x[0-9a-fA-F]+")
#: how torch re-raises, in the main process, an exception raised in a DataLoader worker
_LOADER = re.compile(r"Caught (\w+) in DataLoader worker process \d+\.\s*\nOriginal Traceback")


def user_error(error: BaseException) -> tuple[str, str]:
    """The exception as the user raised it: its type's name and its message. Through the
    wrappers that carry it to us: Ray's (a ``RayTaskError`` from a Ray worker, whose ``cause`` it
    is) and torch's (an exception raised in a DataLoader worker is raised again in the main
    process as ``Caught <Type> in DataLoader worker process <n>.`` followed by the worker's
    traceback, whose last line of that type is the user's)."""
    cause = getattr(error, "cause", None)
    if isinstance(cause, BaseException) and type(error).__module__.startswith("ray."):
        return user_error(cause)
    text = str(error).strip()
    match = _LOADER.match(text)
    if match:
        name = match.group(1)
        shape = re.compile(rf"(?:[\w.]+\.)?{re.escape(name)}(?::\s?(.*))?$")
        said = [shape.match(line) for line in text.splitlines()[2:] if not line.startswith(" ")]
        said = [found for found in said if found]
        if said:
            return name, (said[-1].group(1) or "").strip()
    return type(error).__name__, text


def error_line(error: BaseException) -> str:
    """``Type: first line of the message`` (at most 300 characters), or the type alone, of the
    exception as the user raised it (:func:`user_error`)."""
    name, text = user_error(error)
    message = text.splitlines()[0] if text else ""
    return f"{name}: {message}"[:300] if message else name


def signature(error: BaseException, epoch: int) -> dict:
    """What makes two failures the same: the exception's type and message (memory addresses
    left out), the innermost source line it came from, and the epoch it happened in."""
    frames = traceback.extract_tb(error.__traceback__)
    where = f"{frames[-1].filename}:{frames[-1].lineno}" if frames else ""
    message = _ADDRESS.sub("0x?", (user_error(error)[1].splitlines() or [""])[0])
    return {"type": f"{type(error).__module__}.{type(error).__qualname__}", "message": message, "where": where,
            "epoch": int(epoch)}


class TrialFailures:
    """The failure record of one trial, in ``logs`` (a path or URI; see the module docstring)."""

    def __init__(self, logs: str, trial_id: str) -> None:
        self.log = storage.join(logs, f"{trial_id}.log")
        self._signature = storage.join(logs, f"{trial_id}.failure.json")

    def record(self, error: BaseException, epoch: int, reported: bool) -> bool:
        """Append the failure to the trial's log and return whether it is deterministic (see the
        module docstring); ``reported``: whether the trial reported an epoch before, in any attempt."""
        current = signature(error, epoch)
        previous_text = storage.read_text(self._signature)
        previous = json.loads(previous_text) if previous_text else None
        deterministic = not reported or previous == current
        storage.write_text(self._signature, json.dumps(current))
        self.append(f"{time.strftime('%Y-%m-%d %H:%M:%S')} epoch {epoch + 1}: "
                    f"{'deterministic, not retried' if deterministic else 'retried from the last checkpoint'}\n"
                    + "".join(traceback.format_exception(error)))
        return deterministic

    def append(self, text: str) -> None:
        """Add ``text`` to the trial's log."""
        before = storage.read_text(self.log) or ""
        storage.write_text(self.log, before + text + ("" if text.endswith("\n") else "\n"))
