"""The comparison of a sweep, built at its end or rebuilt by ``gradnorm-tune report``, and what
happens when that fails on something that is not the user's input (a bug, a figure that cannot be
drawn): the traceback is appended to the sweep's ``logs/comparison.log``, the comparison run of a
sweep at its end is ended ``FAILED`` with the error (never left ``RUNNING``), and
:class:`~sweeps.state.FinishFailed` says so in one line that names the log (exit status 70). The
trials' record is whole: ``gradnorm-tune report DIR`` rebuilds the comparison from it later, and
then ends the failed comparison run as the trials' verdict says.
"""

from __future__ import annotations

import time
import traceback
from typing import TYPE_CHECKING

from trainables import end_comparison_run, error_line, storage

from .spec import SweepSpec
from .state import FinishFailed, SweepState
from .verdict import OUTCOMES

if TYPE_CHECKING:
    from mlflow.tracking import MlflowClient

__all__ = ["COMPARISON_LOG", "build"]

COMPARISON_LOG = "comparison.log"  # in the sweep's logs folder
#: the statuses of a comparison run whose trials all ended but whose comparison did not: FAILED, or
#: RUNNING where the tracking store was away too when it failed (or the driver was killed in it)
UNENDED = ("FAILED", "RUNNING")


def build(state: SweepState, spec: SweepSpec, client: MlflowClient, *, ending: bool) -> None:
    """:func:`sweeps.comparison.build_comparison`, for a sweep at its end (``ending``) or for
    ``report``. An exception in it raises :class:`FinishFailed` (see the module docstring); at a
    sweep's end the comparison run is then FAILED. A ``report`` that succeeds ends a comparison run
    that an earlier failure left FAILED (or RUNNING, :data:`UNENDED`) as the trials' verdict
    (``state.outcome``) says."""
    from .comparison import build_comparison

    try:
        build_comparison(state, spec, client)
    except Exception as error:  # noqa: BLE001 - an internal error: kept, said in one line
        log = keep_traceback(state, error)
        if ending:
            try:
                end_comparison_run(client, state.comparison_run_id, state.outcome or "complete", state.counts,
                                   error=f"the comparison failed: {error_line(error)} (log: {log})")
            except Exception:  # noqa: BLE001 - the tracking store is away too: `report` ends it later
                pass
        raise FinishFailed(f"the comparison failed on an internal error ({error_line(error)}); the trials' record "
                           f"is whole; its traceback is in {log}; rebuild it with: {state.report_command}") from None
    if (not ending and state.outcome in OUTCOMES.values()
            and client.get_run(state.comparison_run_id).info.status in UNENDED):
        end_comparison_run(client, state.comparison_run_id, state.outcome, state.counts)


def keep_traceback(state: SweepState, error: BaseException) -> str:
    """Append ``error``'s traceback to the sweep's ``logs/comparison.log``; where it is. When the
    sweep's storage cannot be written, a temporary file here."""
    text = f"{time.strftime('%Y-%m-%d %H:%M:%S')} the comparison failed:\n" + "".join(traceback.format_exception(error))
    log = storage.join(str(state.logs_dir), COMPARISON_LOG)
    try:
        storage.write_text(log, (storage.read_text(log) or "") + text)
        return log
    except Exception:  # noqa: BLE001 - the storage is away: the traceback is not lost
        import tempfile

        with tempfile.NamedTemporaryFile("w", prefix="gradnorm-tune-comparison-", suffix=".log",
                                         delete=False) as file:
            file.write(text)
        return file.name
