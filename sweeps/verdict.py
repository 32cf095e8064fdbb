"""The sweep's answer, in one place: the exit status, the summary line, and the comparison run's
outcome tag, all from how each trial ended (:class:`trainables.Outcome`).

| status | meaning |
|---:|---|
| 0 | every trial ended as planned: finished, or stopped early by a scheduler |
| 2 | bad input, found before anything started (spec, flags, servers, cluster) |
| 3 | some trials failed or diverged; every search still has a result |
| 4 | at least one search has no result at all: all its trials failed or diverged |
| 70 | a finishing step (the comparison, its plots) failed on an internal error: the trials' record is whole, the traceback is in the sweep's ``logs/comparison.log``, ``gradnorm-tune report`` rebuilds it |
| 75 | the sweep stopped unfinished for a passing reason (the tracking server stayed away): resume it |
| 130 | interrupted by SIGINT (Ctrl-C): resume it |
| 143 | interrupted by SIGTERM (e.g. from a job scheduler): resume it |
"""

from __future__ import annotations

import signal
from collections import Counter
from dataclasses import dataclass, field
from enum import IntEnum

from trainables import Outcome

__all__ = ["OUTCOMES", "ExitStatus", "Verdict"]


class ExitStatus(IntEnum):
    """What ``gradnorm-tune`` exits with (see the module docstring)."""

    OK = 0
    BAD_INPUT = 2
    TRIALS_FAILED = 3
    NO_RESULT = 4
    INTERNAL = 70  # (sysexits' EX_SOFTWARE)
    UNFINISHED = 75
    SIGINT = 128 + signal.SIGINT
    SIGTERM = 128 + signal.SIGTERM

    @classmethod
    def interrupted_by(cls, signum: int | None) -> ExitStatus:
        return cls.SIGTERM if signum == signal.SIGTERM else cls.SIGINT


#: the comparison run's outcome tag of a sweep that ran to its end, by its exit status
OUTCOMES = {ExitStatus.OK: "complete", ExitStatus.TRIALS_FAILED: "trials_failed", ExitStatus.NO_RESULT: "no_result"}


@dataclass
class Verdict:
    """How the trials of each search ended (``outcomes[search][outcome] = count``), for searches
    that were meant to run trials (a search skipped for lack of a source is not one)."""

    outcomes: dict[str, Counter] = field(default_factory=dict)

    def add(self, search: str, outcome: Outcome) -> None:
        self.outcomes.setdefault(search, Counter())[outcome] += 1

    def expect(self, search: str) -> None:
        """A search that ran, or should have (it has no result when none of its trials did)."""
        self.outcomes.setdefault(search, Counter())

    @property
    def counts(self) -> dict[str, int]:
        """Trials of each outcome, over all searches (every outcome listed, zeros included)."""
        total = Counter()
        for counts in self.outcomes.values():
            total.update(counts)
        return {outcome.value: total[outcome] for outcome in Outcome}

    @property
    def without_result(self) -> list[str]:
        """Searches none of whose trials finished or stopped early."""
        return [name for name, counts in self.outcomes.items()
                if not any(counts[outcome] for outcome in Outcome if outcome.selectable)]

    @property
    def status(self) -> ExitStatus:
        if self.without_result:
            return ExitStatus.NO_RESULT
        counts = self.counts
        return ExitStatus.TRIALS_FAILED if counts["failed"] or counts["diverged"] else ExitStatus.OK

    @property
    def outcome(self) -> str:
        """The comparison run's outcome tag: ``complete``, ``trials_failed`` or ``no_result``."""
        return OUTCOMES[self.status]

    def line(self) -> str:
        """The one summary line printed at the sweep's end."""
        counts = self.counts
        total = sum(counts.values())
        planned = counts["finished"] + counts["stopped"]
        stopped = f" ({counts['stopped']} stopped early)" if counts["stopped"] else ""
        if self.status == ExitStatus.OK:
            return f"sweep complete: {planned} of {total} trials ended as planned{stopped} (exit 0)"
        bad = ", ".join(f"{counts[name]} {name}" for name in ("failed", "diverged") if counts[name])
        missing = (f"; no result for {', '.join(self.without_result)}" if self.without_result else "")
        return (f"sweep ended with failures: {bad} of {total} trials{missing} "
                f"(exit {int(self.status)}; each failed trial's log is named above)")
