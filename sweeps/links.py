"""Where a sweep opens in the MLflow UI: the links its last lines, ``report`` and ``train`` print.

MLflow 3.17 and later (3.18 here) open every experiment in its GenAI view (traces, latency, token
usage), whatever the experiment's ``mlflow.experimentKind`` tag says; the runs table, with the comparison run and
its searches nested under it, shows only in its "Model training" view. The links below ask for
that view (``?workflowType=machine_learning``; checked in headless Chromium by
``tests/test_dashboard.py``): the experiment's runs; the comparison run's Overview, whose
description is the sweep's answer; and its ``cost_table.md``, opened in the artifacts' preview
(``.../artifacts/cost_table.md``). A local store (SQLite, a folder) has no UI of its own: the first
line says how to start one, on the address the links use.
"""

from __future__ import annotations

import shlex
import urllib.parse

from trainables import is_local_store

__all__ = ["ANSWER", "COST_TABLE", "LOCAL_UI", "VIEW", "print_ui_hint", "run_link", "runs_link", "ui_base",
           "ui_lines"]

#: the query that opens MLflow 3's UI on its model-training view
VIEW = "workflowType=machine_learning"
#: where ``mlflow ui`` serves a local store in the printed command
LOCAL_UI = ("127.0.0.1", 5000)
#: what a sweep's links name: its comparison run (its Overview: the answer), and its cost table
ANSWER = "this sweep's answer (the comparison run)"
COST_TABLE = "cost_table.md"


def ui_base(tracking_uri: str) -> str:
    """The UI's address for ``tracking_uri``: a tracking server's own (without credentials), or
    where ``mlflow ui`` serves a local store."""
    if is_local_store(tracking_uri):
        host, port = LOCAL_UI
        return f"http://{host}:{port}"
    parts = urllib.parse.urlsplit(tracking_uri)
    netloc = parts.hostname or ""
    if ":" in netloc:  # an IPv6 address
        netloc = f"[{netloc}]"
    if parts.port:
        netloc += f":{parts.port}"
    return urllib.parse.urlunsplit((parts.scheme, netloc, parts.path.rstrip("/"), "", ""))


def runs_link(tracking_uri: str, experiment_id: str) -> str:
    """The experiment's runs table (the comparison runs, their searches nested under them)."""
    return f"{ui_base(tracking_uri)}/#/experiments/{experiment_id}/runs?{VIEW}"


def run_link(tracking_uri: str, experiment_id: str, run_id: str, tab: str = "artifacts") -> str:
    """One run's page, at ``tab`` (``artifacts``: a comparison run's cost table and plots;
    ``artifacts/<file>``: that file's preview; ``""``: its overview)."""
    page = f"/{tab}" if tab else ""
    return f"{ui_base(tracking_uri)}/#/experiments/{experiment_id}/runs/{run_id}{page}?{VIEW}"


def ui_lines(tracking_uri: str, experiment_id: str | None = None, run_id: str | None = None,
             what: str = ANSWER, tab: str = "", artifact: str | None = COST_TABLE) -> list[str]:
    """The lines that say how to open the record in the MLflow UI: the experiment's runs, the
    run at ``tab`` (its overview by default) and its ``artifact`` (None: no such line)."""
    lines = []
    if is_local_store(tracking_uri):
        host, port = LOCAL_UI
        lines.append(f"browse it: mlflow ui --backend-store-uri {shlex.quote(tracking_uri)} --host {host} "
                     f"--port {port}  "
                     f"then open {ui_base(tracking_uri)}" + (", or:" if experiment_id else ""))
    elif experiment_id is None:
        lines.append(f"browse it: open {ui_base(tracking_uri)}")
    if experiment_id is not None:
        lines.append(f"  MLflow, the experiment's runs: {runs_link(tracking_uri, experiment_id)}")
        if run_id is not None:
            lines.append(f"  MLflow, {what}: {run_link(tracking_uri, experiment_id, run_id, tab)}")
            if artifact:
                lines.append(f"  MLflow, {artifact}: {run_link(tracking_uri, experiment_id, run_id, f'artifacts/{artifact}')}")
    return lines


def print_ui_hint(tracking_uri: str, experiment_id: str | None = None, run_id: str | None = None,
                  what: str = ANSWER, tab: str = "", artifact: str | None = COST_TABLE) -> None:
    """How to open the record in the MLflow UI (:func:`ui_lines`)."""
    print("\n".join(ui_lines(tracking_uri, experiment_id, run_id, what, tab, artifact)), flush=True)
