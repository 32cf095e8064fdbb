"""Sweeps: alpha searches next to static-weight grids and baselines, all in one Ray Tune
experiment under one MLflow comparison run, and the report of what each search cost and found.

Importing this package is cheap: each name below is imported from its module on first use
(so ``gradnorm-tune --help`` and the spec checks do not start Ray or MLflow).
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "SpecError": "spec",
    "SweepSpec": "spec",
    "load_spec": "spec",
    "parse_spec": "spec",
    "SEARCH_TYPES": "searches",
    "SweepState": "state",
    "SweepError": "state",
    "SweepInterrupted": "state",
    "run_sweep": "runner",
    "resume_sweep": "runner",
    "RECOMMENDED": "searcher",
    "SweepSearcher": "searcher",
    "build_comparison": "comparison",
    "search_summary": "report",
    "sweep_summaries": "report",
    "SearchSummary": "report",
    "TrialSummary": "report",
    "report": None,  # the package itself: summaries, selection, fronts, table, figures
    "CheckError": "dry_run",
    "CheckReport": "check_report",
    "check_problem": "dry_run",
    "run_check": "check",
    "run_check_on_ray": "check",
    "write_project": "scaffold",
    "runs_link": "links",
    "run_link": "links",
    "ExitStatus": "verdict",
    "Verdict": "verdict",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        module = importlib.import_module(f".{_EXPORTS[name] or name}", __name__)
        return module if _EXPORTS[name] is None else getattr(module, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
