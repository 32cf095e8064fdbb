"""Optuna samplers as a sweep keeps them: pickled with Tune's experiment state and the sweep's
searcher checkpoint (:meth:`sweeps.searcher.SweepSearcher.save`), so that a resumed sweep goes on
with the same study."""

from __future__ import annotations

import threading
from typing import Any

from optuna.samplers import NSGAIISampler

__all__ = ["PicklableNSGAIISampler"]


class PicklableNSGAIISampler(NSGAIISampler):
    """Optuna's :class:`~optuna.samplers.NSGAIISampler`, picklable: Optuna 5's holds a
    ``threading.Lock`` around its generation cache, which cannot be pickled; the lock is left out
    of the pickle and made anew on load (it guards only calls within one process). Everything
    else (the generation cache, the seeded random state) is pickled as it is."""

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state.pop("_thread_lock", None)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._thread_lock = threading.Lock()
