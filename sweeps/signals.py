"""SIGINT and SIGTERM during a sweep: the first stops it cleanly, the second at once.

What the first signal does depends on where the sweep is (:attr:`StopSignals.phase`):

- ``"setup"`` (from the command's start to Tune's run: the checks, Ray's start, the MLflow runs):
  it is recorded, and the sweep stops at its next check point (:meth:`StopSignals.check`), where
  nothing is half-written: before the sweep's directory exists (nothing to resume), or with its
  runs ended KILLED (``resume`` finishes it).
- ``"tune"`` (Tune's run): it asks Ray Tune to end its run the way Tune ends one on Ctrl-C
  (through the SIGUSR1 handler Tune installs while it runs; a signal that comes before Tune has
  installed it is handed over at Tune's first step, :meth:`StopSignals.forward`): no new trials,
  the running ones stopped, the experiment's state saved one last time, so that ``resume``
  continues every unfinished trial from its last checkpoint. The sweep then marks those trials'
  runs KILLED and the comparison interrupted.
- after Tune's run (the trials' record settled, then ``"finishing"``: the comparison): it raises
  :class:`~sweeps.state.SweepInterrupted` at once; ``resume`` writes what is missing and builds the
  comparison again.

The sweep then exits 130 (SIGINT) or 143 (SIGTERM). A second signal raises
:class:`~sweeps.state.SweepInterrupted` (a :class:`KeyboardInterrupt`) at once, wherever the
sweep is: what it leaves unfinished (runs still RUNNING, a trial Tune had not saved yet) is what
``resume`` repairs.

Tune installs its own SIGINT handler while it runs unless ``TUNE_DISABLE_SIGINT_HANDLER=1``;
``gradnorm-tune`` sets that once at start-up so that this handler sees both signals (a library
caller who keeps Tune's gets the same clean stop from Tune, reported as SIGINT). ``ray.init``
sets a SIGTERM handler of its own (``sys.exit``): :meth:`StopSignals.install` takes it back.
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
    """A context manager; ``received`` is the first signal's number, or ``None``;
    ``resume_command`` finishes the sweep once its directory exists (``None`` before)."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self) -> None:
        self.received: int | None = None
        self.resume_command: str | None = None
        self.phase = "setup"
        self._forwarded = False
        self._previous: dict[int, object] = {}

    def _then(self) -> str:
        if self.resume_command is None:
            return "the sweep had not started: nothing was written"
        return f"finish it with: {self.resume_command}"

    def check(self) -> None:
        """Raise :class:`SweepInterrupted` if a signal was received (a check point of the set-up)."""
        if self.received is not None:
            name = signal.Signals(self.received).name
            raise SweepInterrupted(f"{name} received before the trials ran; {self._then()}", self.received)

    @contextlib.contextmanager
    def tune_running(self) -> Iterator[None]:
        """Around ``Tuner.fit()``: a first signal then asks Tune to stop, rather than raising."""
        self.check()  # a signal came while the experiment was being set up
        self.phase = "tune"
        try:
            yield
        finally:
            self.phase = "after"

    @contextlib.contextmanager
    def finishing(self) -> Iterator[None]:
        """Around the comparison: a first signal raises at once (``resume`` builds it again)."""
        self.phase = "finishing"
        try:
            yield
        finally:
            self.phase = "after"

    def forward(self) -> None:
        """Hand a signal received during Tune's start to Tune's handler, once Tune has installed it
        (called at each step of Tune's loop)."""
        if self.received is None or self._forwarded or self.phase != "tune":
            return
        tune = signal.getsignal(signal.SIGUSR1) if hasattr(signal, "SIGUSR1") else None
        if callable(tune):
            self._forwarded = True
            tune(signal.SIGUSR1, None)

    def install(self) -> None:
        """This handler for both signals (again, after ``ray.init`` set its own for SIGTERM)."""
        if threading.current_thread() is threading.main_thread():
            for signum in self.SIGNALS:
                previous = signal.signal(signum, self._handle)
                self._previous.setdefault(signum, previous)

    def __enter__(self) -> StopSignals:
        self.install()
        return self

    def __exit__(self, *exc_info) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        self._previous.clear()

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.received is not None:  # the second: at once
            raise SweepInterrupted(f"stopped at once; {self._then()}", signum, at_once=True)
        self.received = signum
        name = signal.Signals(signum).name
        again = "send it again to stop at once"
        if self.phase == "tune":
            print(f"gradnorm-tune: {name} received: stopping the sweep cleanly (trials keep their last "
                  f"checkpoint); {again}", flush=True)
            self.forward()
        elif self.phase == "setup":
            print(f"gradnorm-tune: {name} received: stopping the sweep before its trials start; {again}", flush=True)
        else:  # after Tune's run: at once (resume writes what is missing and builds the comparison)
            where = "the comparison was built" if self.phase == "finishing" else "the trials' record was settled"
            raise SweepInterrupted(f"{name} received while {where}; {self._then()}", signum)
