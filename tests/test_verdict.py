"""How a trial's outcome is read (trainables.outcome) and what the sweep answers from the
outcomes of its trials (sweeps.verdict): the exit status, the summary line, the comparison's tag."""

from __future__ import annotations

import math
import signal

import pytest

from sweeps.verdict import ExitStatus, Verdict
from trainables import Outcome, is_marker, outcome_of
from trainables.outcome import marker

EPOCHS = 6


@pytest.mark.parametrize("last, errored, ended, expected", [
    ({"epoch": 6}, False, True, Outcome.FINISHED),
    ({"epoch": 2}, False, True, Outcome.STOPPED),  # ended before its last epoch: its scheduler stopped it
    ({"epoch": 2}, False, False, Outcome.KILLED),  # cut off by an interruption: resume continues it
    ({}, False, False, Outcome.KILLED),  # never reported
    ({"epoch": 3}, True, True, Outcome.FAILED),  # Tune gave up on it
    (None, True, True, Outcome.FAILED),
    (marker(Outcome.DIVERGED, {"epoch": 3, "best_score": 0.5}, "nan", "Diverged", None), False, True,
     Outcome.DIVERGED),
    (marker(Outcome.FAILED, None, "ValueError: x", "ValueError", "/logs/t.log"), False, True, Outcome.FAILED),
])
def test_outcome_of(last, errored, ended, expected):
    assert outcome_of(EPOCHS, last, errored=errored, ended=ended) == expected


def test_a_marker_carries_the_last_epoch_and_no_score():
    found = marker(Outcome.FAILED, {"epoch": 3, "best_score": 0.25, "score": 0.3}, "E: m", "E", "/l")
    assert is_marker(found) and not is_marker({"epoch": 3, "score": 0.3}) and not is_marker(None)
    assert found["epoch"] == 3 and found["best_score"] == 0.25 and "score" not in found
    assert found["log"] == "/l" and found["error"] == "E: m" and found["outcome"] == "failed"
    assert math.isinf(marker(Outcome.FAILED, None, "E", "E", None)["best_score"])


def test_outcomes_map_to_run_statuses_and_only_finished_and_stopped_count():
    assert {o.value: o.run_status for o in Outcome} == {
        "finished": "FINISHED", "stopped": "FINISHED", "failed": "FAILED", "diverged": "FAILED", "killed": "KILLED"}
    assert [o.value for o in Outcome if o.selectable] == ["finished", "stopped"]


def verdict(**searches: list[Outcome]) -> Verdict:
    found = Verdict()
    for name, outcomes in searches.items():
        found.expect(name)
        for outcome in outcomes:
            found.add(name, outcome)
    return found


def test_the_exit_status_and_line_say_what_happened():
    ok = verdict(gn=[Outcome.FINISHED, Outcome.STOPPED], equal=[Outcome.FINISHED])
    assert ok.status == ExitStatus.OK == 0 and ok.outcome == "complete"
    assert ok.line() == "sweep complete: 3 of 3 trials ended as planned (1 stopped early) (exit 0)"
    some = verdict(gn=[Outcome.FINISHED, Outcome.DIVERGED], equal=[Outcome.FAILED, Outcome.FINISHED])
    assert some.status == ExitStatus.TRIALS_FAILED == 3 and some.outcome == "trials_failed"
    assert some.line().startswith("sweep ended with failures: 1 failed, 1 diverged of 4 trials (exit 3")
    # diverged trials alone (no failed one) are failures too: exit 3, the line says diverged only
    diverged = verdict(gn=[Outcome.FINISHED, Outcome.DIVERGED], equal=[Outcome.FINISHED])
    assert diverged.status == ExitStatus.TRIALS_FAILED and diverged.outcome == "trials_failed"
    assert diverged.line().startswith("sweep ended with failures: 1 diverged of 3 trials (exit 3;")
    killed = verdict(gn=[Outcome.FINISHED, Outcome.KILLED])  # (an interruption says so itself)
    assert killed.status == ExitStatus.OK
    none = verdict(gn=[Outcome.FINISHED], equal=[Outcome.FAILED, Outcome.DIVERGED], dwa=[])
    assert none.status == ExitStatus.NO_RESULT == 4 and none.without_result == ["equal", "dwa"]
    assert "; no result for equal, dwa (exit 4" in none.line()
    assert none.counts == {"finished": 1, "stopped": 0, "failed": 1, "diverged": 1, "killed": 0}


def test_signals_map_to_128_plus_their_number():
    assert ExitStatus.interrupted_by(signal.SIGINT) == 130 and ExitStatus.interrupted_by(signal.SIGTERM) == 143
    assert ExitStatus.interrupted_by(None) == 130 and ExitStatus.UNFINISHED == 75 and ExitStatus.BAD_INPUT == 2
    assert ExitStatus.INTERNAL == 70
