"""Where the MLflow record goes: the tracking URI, reaching its store, and one-line errors about it.

:mod:`trainables.tracking` writes and reads the record itself; both are exported from
:mod:`trainables`.
"""

from __future__ import annotations

import os
import socket
import urllib.parse
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # MLflow is imported where a client is made: the URI, settings and errors need none
    from mlflow.tracking import MlflowClient


class TrackingError(RuntimeError):
    """The tracking store cannot be used; the message is one line saying why and what to do."""


def default_tracking_uri() -> str:
    """``$MLFLOW_TRACKING_URI``, else a SQLite file ``mlflow.db`` in the working directory."""
    return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{Path.cwd() / 'mlflow.db'}"


def redact(uri: str) -> str:
    """The URI with any password in it masked, for messages: credentials belong in
    MLFLOW_TRACKING_USERNAME / MLFLOW_TRACKING_PASSWORD, but a URI may still carry one."""
    parts = urllib.parse.urlsplit(uri)
    if parts.password is None:
        return uri
    netloc = f"{parts.username}:***@{parts.hostname}" + (f":{parts.port}" if parts.port else "")
    return urllib.parse.urlunsplit(parts._replace(netloc=netloc))


def is_local_store(uri: str) -> bool:
    """A store on this machine's disk (SQLite file or folder), not a tracking server."""
    return uri.startswith(("sqlite:", "file:")) or "://" not in uri


def tracking_client(uri: str) -> MlflowClient:
    """A client of the store at ``uri`` (no request is made: see :func:`check_tracking_server`).

    How long a request waits and how often it is retried are MLflow's settings
    (``MLFLOW_HTTP_REQUEST_TIMEOUT``, ``MLFLOW_HTTP_REQUEST_MAX_RETRIES``, ...), which
    ``gradnorm-tune`` sets once at start-up (see :data:`CLIENT_SETTINGS`); nothing here changes them.
    """
    from mlflow.tracking import MlflowClient

    return MlflowClient(uri)


#: MLflow's HTTP settings ``gradnorm-tune`` starts with, unless the environment gives its own: a
#: request tries 2 more times over about 3 s (MLflow's default backs off for minutes), and waits
#: at most 10 s for an answer. The trial logger keeps updates and retries on its own.
CLIENT_SETTINGS = {
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "10",
}


def first_line(error: BaseException) -> str:
    """The first line of an error's message (at most 200 characters), or its type's name."""
    text = str(error).strip()
    return text.splitlines()[0][:200] if text else type(error).__name__


def _refused(error: BaseException) -> bool:
    """Whether the server answered and refused our credentials (HTTP 401 or 403), by the error's
    type and status code (never by searching its message)."""
    from mlflow.exceptions import MlflowException

    return isinstance(error, MlflowException) and error.get_http_status_code() in (401, 403)


def reach_tracking_server(uri: str, timeout: float = 5.0) -> None:
    """For a tracking server (``http(s)://``), that its host answers on its port, in at most
    ``timeout`` seconds: one TCP connection, no request and no MLflow import (a sweep checks it
    before Ray starts; :func:`check_tracking_server` then makes the first request). A local store
    (SQLite, a folder) or another scheme is left to :func:`check_tracking_server`."""
    parts = urllib.parse.urlsplit(uri)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
        where = f"{parts.hostname}:{port}"
        socket.create_connection((parts.hostname, port), timeout=timeout).close()
    except (OSError, ValueError) as error:
        if isinstance(error, ConnectionRefusedError):
            reason = f"nothing listens on {where}"
        elif isinstance(error, TimeoutError):
            reason = f"no answer from {where} in {timeout:g} s"
        elif isinstance(error, socket.gaierror):
            reason = f"unknown host {parts.hostname!r}"
        else:
            reason = getattr(error, "strerror", None) or first_line(error)
        raise TrackingError(f"tracking server {redact(uri)} is unreachable ({reason}); start it or pass "
                            "--tracking-uri") from None


def check_tracking_server(uri: str) -> MlflowClient:
    """A client of the store at ``uri``, after one request to it: fails fast, before any compute,
    with a one-line :class:`TrackingError` when the store cannot be reached or refuses us."""
    client = tracking_client(uri)
    try:
        client.search_experiments(max_results=1)
    except Exception as error:  # noqa: BLE001 - any failure here means: unusable
        reason = first_line(error)
        if _refused(error):
            raise TrackingError(
                f"tracking server {redact(uri)} refused the request ({reason}); set MLFLOW_TRACKING_USERNAME "
                "and MLFLOW_TRACKING_PASSWORD to an account of that server"
            ) from None
        raise TrackingError(
            f"tracking server {redact(uri)} is unreachable ({reason}); start it or pass --tracking-uri"
        ) from None
    return client
