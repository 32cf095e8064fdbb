"""Where the MLflow record goes: the tracking URI, reaching its store, and one-line errors about it.

:mod:`trainables.tracking` writes and reads the record itself; both are exported from
:mod:`trainables`.
"""

from __future__ import annotations

import contextlib
import os
import urllib.parse
from collections.abc import Iterator
from pathlib import Path

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


@contextlib.contextmanager
def temporary_environment(**values: str) -> Iterator[None]:
    """These environment variables inside the block, their old values (or absence) after it."""
    saved = {key: os.environ.get(key) for key in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def fail_fast(timeout_seconds: float = 10.0):
    """MLflow requests in this block try once: the client's own retries back off for minutes."""
    return temporary_environment(MLFLOW_HTTP_REQUEST_MAX_RETRIES="0",
                                 MLFLOW_HTTP_REQUEST_TIMEOUT=str(int(timeout_seconds)))


def first_line(error: BaseException) -> str:
    """The first line of an error's message (at most 200 characters), or its type's name."""
    text = str(error).strip()
    return text.splitlines()[0][:200] if text else type(error).__name__


def check_tracking_server(uri: str) -> MlflowClient:
    """A client of the store at ``uri``, after one request to it: fails fast, before any compute,
    with a one-line :class:`TrackingError` when the store cannot be reached or refuses us."""
    client = MlflowClient(uri)
    try:
        with fail_fast():
            client.search_experiments(max_results=1)
    except Exception as error:  # noqa: BLE001 - any failure here means: unusable
        reason = first_line(error)
        if any(code in reason for code in ("401", "403", "UNAUTHENTICATED", "PERMISSION_DENIED")):
            raise TrackingError(
                f"tracking server {redact(uri)} refused the request ({reason}); set MLFLOW_TRACKING_USERNAME "
                "and MLFLOW_TRACKING_PASSWORD to an account of that server"
            ) from None
        raise TrackingError(
            f"tracking server {redact(uri)} is unreachable ({reason}); start it or pass --tracking-uri"
        ) from None
    return client
