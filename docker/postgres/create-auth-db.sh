#!/bin/sh
# MLflow's basic-auth app keeps its users and permissions in a database of its own, next to the
# tracking database. The postgres image runs this once, when it initialises an empty volume.
set -eu
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" \
    --set auth_db="$MLFLOW_AUTH_DB" <<'SQL'
CREATE DATABASE :"auth_db";
SQL
