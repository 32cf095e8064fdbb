"""SIGINT and SIGTERM during a sweep: the first stops it cleanly, the second at once.

The first signal asks Ray Tune to end its run the way Tune ends one on Ctrl-C (through the
SIGUSR1 handler Tune installs while it runs): no new trials, the running ones stopped, the
experiment's state saved one last time, so that ``resume`` continues every unfinished trial from
its last checkpoint. The sweep then marks those trials' runs KILLED and the comparison
interrupted, and exits 130 (SIGINT) or 143 (SIGTERM). Outside Tune's run (while the sweep starts,
or builds its report) the first signal raises :class:`~sweeps.state.SweepInterrupted` where the
sweep is.

A second signal raises :class:`~sweeps.state.SweepInterrupted` (a :class:`KeyboardInterrupt`) at once, wherever the sweep is: what it leaves
unfinished (runs still RUNNING, a trial Tune had not saved yet) is what ``resume`` repairs.

Tune installs its own SIGINT handler while it runs unless ``TUNE_DISABLE_SIGINT_HANDLER=1``;
``gradnorm-tune`` sets that once at start-up so that this handler sees both signals (a library
caller who keeps Tune's gets the same clean stop from Tune, reported as SIGINT).
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator
from types import FrameType

from .state import SweepInterrupted

__all__ = ["StopSignals"]


class StopSignals:
    """A context manager; ``received`` is the first signal's number, or ``None``."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self) -> None:
        self.received: int | None = None
        self._previous: dict[int, object] = {}
        self._in_tune = False

    @contextlib.contextmanager
    def tune_running(self) -> Iterator[None]:
        """Around ``Tuner.fit()``: a first signal then asks Tune to stop, rather than raising."""
        if self.received is not None:  # a signal came while the experiment was being set up
            raise SweepInterrupted("interrupted before the trials ran; finish it with: gradnorm-tune resume "
                                   "<sweep directory>", self.received)
        self._in_tune = True
        try:
            yield
        finally:
            self._in_tune = False

    def __enter__(self) -> StopSignals:
        if threading.current_thread() is threading.main_thread():
            for signum in self.SIGNALS:
                self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(self, *exc_info) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        self._previous.clear()

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.received is not None:  # the second: at once
            raise SweepInterrupted("stopped at once; finish it with: gradnorm-tune resume <sweep directory>", signum,
                                   at_once=True)
        self.received = signum
        name = signal.Signals(signum).name
        tune = signal.getsignal(signal.SIGUSR1) if hasattr(signal, "SIGUSR1") else None
        if self._in_tune and callable(tune):  # Tune's run is on: it ends after its current step
            print(f"gradnorm-tune: {name} received: stopping the sweep cleanly (trials keep their last "
                  "checkpoint); send it again to stop at once", flush=True)
            tune(signal.SIGUSR1, frame)
        else:
            raise SweepInterrupted(f"{name} received before the trials ran; run the sweep again, or finish it with: "
                                   "gradnorm-tune resume <sweep directory>", signum)
