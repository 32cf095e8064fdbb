#!/usr/bin/env python3
"""Entrypoint of the MLflow server image.

MLflow's basic-auth app reads its settings (admin account, user database, default permission)
from an ini file. The secrets come from the environment (docker/.env) at container start, so this
writes that file then, with mode 0600, creates the non-admin account the sweeps log with, and
execs `mlflow server` with the container's arguments.

Usage: entrypoint.py [--write-config-only | MLFLOW_SERVER_ARGS...]
"""

from __future__ import annotations

import configparser
import os
import sys
from pathlib import Path
from urllib.parse import quote

PERMISSIONS = ("READ", "EDIT", "MANAGE", "NO_PERMISSIONS")
MIN_PASSWORD = 12  # MLflow refuses shorter passwords, with a traceback; say it in one line instead


class ConfigError(Exception):
    pass


def required(env: dict[str, str], name: str) -> str:
    value = env.get(name, "")
    if not value:
        raise ConfigError(f"{name} is not set; set it in docker/.env (see docker/env.example)")
    if any(c in value for c in "\r\n"):
        raise ConfigError(f"{name} contains a line break; use a single-line value")
    return value


def password(env: dict[str, str], name: str) -> str:
    value = required(env, name)
    if len(value) < MIN_PASSWORD:
        raise ConfigError(f"{name} is shorter than {MIN_PASSWORD} characters; generate one with "
                          "`openssl rand -hex 24`")
    return value


def postgres_uri(env: dict[str, str], database: str) -> str:
    # Percent-encoded, so a password with '@', ':' or '/' cannot break the URI. The driver is named:
    # for a bare postgresql:// SQLAlchemy 2.1 picks psycopg 3, and the image has psycopg2.
    user = quote(env.get("POSTGRES_USER", "mlflow"), safe="")
    secret = quote(required(env, "POSTGRES_PASSWORD"), safe="")
    host = env.get("POSTGRES_HOST", "postgres")
    port = env.get("POSTGRES_PORT", "5432")
    return f"postgresql+psycopg2://{user}:{secret}@{host}:{port}/{quote(database, safe='')}"


def settings(env: dict[str, str]) -> dict[str, str]:
    """The [mlflow] section of the auth ini. MLFLOW_BACKEND_STORE_URI and
    MLFLOW_AUTH_DATABASE_URI, when set, replace the PostgreSQL databases (tests use SQLite)."""
    permission = env.get("MLFLOW_DEFAULT_PERMISSION", "READ")
    if permission not in PERMISSIONS:
        raise ConfigError(f"MLFLOW_DEFAULT_PERMISSION={permission!r} is not one of {', '.join(PERMISSIONS)}")
    return {
        "default_permission": permission,
        "database_uri": env.get("MLFLOW_AUTH_DATABASE_URI")
        or postgres_uri(env, env.get("MLFLOW_AUTH_DB", "mlflow_auth")),
        "admin_username": env.get("MLFLOW_ADMIN_USERNAME") or "admin",
        "admin_password": password(env, "MLFLOW_ADMIN_PASSWORD"),
        "authorization_function": "mlflow.server.auth:authenticate_request_basic_auth",
        # each password check is a PBKDF2 hash (about 0.8 s on 2 cores, measured); a sweep sends
        # requests every epoch, so a checked password is trusted for a minute
        "auth_cache_ttl_seconds": env.get("MLFLOW_AUTH_CACHE_TTL_SECONDS", "60"),
    }


def write_config(path: Path, section: dict[str, str]) -> None:
    parser = configparser.ConfigParser()
    # MLflow reads the file with interpolation on, where a lone '%' is an error.
    parser["mlflow"] = {key: value.replace("%", "%%") for key, value in section.items()}
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        parser.write(handle)
    os.chmod(path, 0o600)  # in case the file existed with wider permissions


def ensure_sweep_user(database_uri: str, username: str, secret: str) -> None:
    """Creates the non-admin account, or resets its password to the one in the env file."""
    # Imported late: the auth package reads MLFLOW_AUTH_CONFIG_PATH when it is imported.
    from mlflow.server.auth.sqlalchemy_store import SqlAlchemyStore

    store = SqlAlchemyStore()
    store.init_db(database_uri)
    if not store.has_user(username, use_primary=True):
        store.create_user(username, secret, is_admin=False)
    elif not store.authenticate_user(username, secret, use_primary=True):
        store.update_user(username, password=secret)


def main(argv: list[str], env: dict[str, str]) -> int:
    try:
        section = settings(env)
        # mlflow reads it itself; the basic-auth app signs its CSRF tokens with it
        required(env, "MLFLOW_FLASK_SERVER_SECRET_KEY")
        backend = env.get("MLFLOW_BACKEND_STORE_URI") or postgres_uri(env, env.get("POSTGRES_DB", "mlflow"))
        sweep_user = env.get("MLFLOW_SWEEP_USERNAME") or "sweep"
        sweep_secret = password(env, "MLFLOW_SWEEP_PASSWORD") if env.get("MLFLOW_SWEEP_PASSWORD") else None
        if sweep_user == section["admin_username"]:
            raise ConfigError("MLFLOW_SWEEP_USERNAME must differ from MLFLOW_ADMIN_USERNAME")
    except ConfigError as error:
        print(f"mlflow entrypoint: {error}", file=sys.stderr)
        return 2
    path = Path(env.get("MLFLOW_AUTH_CONFIG_PATH", "/tmp/mlflow-auth/basic_auth.ini"))
    write_config(path, section)
    if argv == ["--write-config-only"]:
        print(path)
        return 0
    os.environ["MLFLOW_AUTH_CONFIG_PATH"] = str(path)
    # As an environment variable, not an argument: the password stays out of the process list.
    os.environ["MLFLOW_BACKEND_STORE_URI"] = backend
    if sweep_secret is not None:
        ensure_sweep_user(section["database_uri"], sweep_user, sweep_secret)
    os.execvp("mlflow", ["mlflow", "server", *argv])
    return 1  # not reached


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:], dict(os.environ)))
