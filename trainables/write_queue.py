"""The driver's queue of MLflow writes: written in order on a thread of their own, kept and
retried while the tracking server is away.

:class:`~trainables.mlflow_logger.MlflowTrialLogger` says what each update writes; this queue
says when. Updates wait in order; a writer thread writes them as they come, so Tune's loop never
waits on the tracking store. When a write fails, it and every later update stay queued and are
retried every ``retry_seconds`` (one line is printed when the server goes away and one when it
is back). :meth:`WriteQueue.flush` writes what is queued from the calling thread, retrying until
``patience_seconds`` after its first call (the experiment's end): the end and the reconcile
after it share that wait. A write must be idempotent: one whose answer was lost is written again.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from typing import Any, Generic, TypeVar

from .tracking_store import first_line

Update = TypeVar("Update")


class WriteQueue(Generic[Update]):
    """Updates for ``write``, written in order by a thread of their own and by :meth:`flush`."""

    def __init__(self, write: Callable[[Update], Any], retry_seconds: float, patience_seconds: float,
                 name: str = "mlflow-trial-logger") -> None:
        self.write = write
        self.retry_seconds = retry_seconds
        self.patience_seconds = patience_seconds
        self.name = name
        self.waiting: list[Update] = []
        self.outages = 0
        self.last_error = ""
        self._retry_at = 0.0
        self._outage_since: float | None = None
        self._end_deadline: float | None = None  # set by the first flush: all waiting shares it
        self._lock = threading.Lock()  # one writer at a time: the thread, or a flush
        self._wake = threading.Event()
        self._closed = False
        self._thread: threading.Thread | None = None

    def __len__(self) -> int:
        return len(self.waiting)

    def put(self, update: Update) -> None:
        """Queue ``update`` and wake the writer thread (started on first use; none after :meth:`close`)."""
        self.waiting.append(update)
        if self._closed:
            return
        if self._thread is None or not self._thread.is_alive():
            self._thread = threading.Thread(target=self._write_loop, name=self.name, daemon=True)
            self._thread.start()
        self._wake.set()

    def extend(self, updates: Iterable[Update]) -> None:
        """Queue ``updates`` for the next :meth:`flush`, without waking the thread."""
        self.waiting.extend(updates)

    def flush(self) -> None:
        """Write the queued updates, retrying until ``patience_seconds`` after the first flush."""
        if self._end_deadline is None:
            self._end_deadline = time.monotonic() + self.patience_seconds
        deadline = self._end_deadline
        while True:
            with self._lock:
                self._retry_at = 0.0
                self._write_waiting()
            if not self.waiting or time.monotonic() >= deadline:
                return
            time.sleep(min(self.retry_seconds, max(0.0, deadline - time.monotonic())))

    def close(self) -> None:
        """Stop the writer thread (what is still queued stays queued)."""
        self._closed = True
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=30)

    def _write_loop(self) -> None:
        """The writer thread: writes what is queued, in order; after a failure, waits
        ``retry_seconds`` (or the next update) and tries again; ends at :meth:`close`."""
        while not self._closed:
            self._wake.wait(timeout=self.retry_seconds)
            self._wake.clear()
            with self._lock:
                self._write_waiting()

    def _write_waiting(self) -> None:
        if time.monotonic() < self._retry_at:
            return
        while self.waiting:
            try:
                self.write(self.waiting[0])
            except Exception as error:  # noqa: BLE001 - kept and retried, whatever the cause
                self._retry_at = time.monotonic() + self.retry_seconds
                self.last_error = first_line(error)
                if self._outage_since is None:
                    self._outage_since = time.time()
                    self.outages += 1
                    print(f"  [mlflow] tracking server unreachable ({self.last_error}); "
                          f"keeping updates and retrying every {self.retry_seconds:g} s", flush=True)
                return
            self.waiting.pop(0)
        if self._outage_since is not None:
            print(f"  [mlflow] tracking server back after {time.time() - self._outage_since:.0f} s; "
                  "buffered updates written", flush=True)
            self._outage_since = None
