"""What of Ray's own output a sweep keeps off the user's terminal.

When a node's raylet dies, Ray's agent on that node publishes the last 20 lines of its
``raylet.out`` (mostly ``[state-dump]`` tables) to every driver, and a driver prints each report
it gets, whatever ``log_to_driver`` says (Ray 2.60: ``ray._private.worker.listen_error_messages``
through ``print_to_stdstream``). A sweep that survives the node (its trials are retried elsewhere)
prints one line instead: :func:`quiet_raylet_reports`, for a quiet sweep (not ``--verbose``).

Ray has no setting for it; the report is recognised by its own words ("Raylet is terminated"),
and anything else Ray prints passes unchanged. On another Ray without that function nothing is
changed.
"""

from __future__ import annotations

import sys
from typing import Any

__all__ = ["quiet_raylet_reports"]

RAYLET_DIED = "Raylet is terminated"
SAID = ("  Ray: a node's raylet stopped; its trials are retried on other nodes from their checkpoints "
        "(its log: raylet.out in that node's Ray session folder; --verbose shows Ray's report)")


def quiet_raylet_reports() -> None:
    """Ray's reports of a dead raylet, printed as one line (see the module docstring); once per
    process, idempotent."""
    worker = sys.modules.get("ray._private.worker")
    original = getattr(worker, "print_to_stdstream", None)
    if original is None or getattr(original, "quiet_raylet_reports", False):
        return

    def print_to_stdstream(data: dict[str, Any], ignore_prefix: bool) -> None:
        lines = data.get("lines") or ()
        if data.get("pid") == "raylet" and any(RAYLET_DIED in str(line) for line in lines):
            print(SAID, flush=True)
            return
        original(data, ignore_prefix)

    print_to_stdstream.quiet_raylet_reports = True  # type: ignore[attr-defined]
    worker.print_to_stdstream = print_to_stdstream
