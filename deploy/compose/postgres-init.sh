#!/usr/bin/env bash
# One PostgreSQL server, one database and one owner role each for Airflow's metadata, MLflow's
# backend store and costaware's ledger (names from deploy/common.env; passwords from .env).
# A role may connect only to its own database: a task holding the ledger's credentials cannot
# read Airflow's metadata (where connection secrets live) or MLflow's store.
#
# Run by the postgres image once, on an empty data volume (/docker-entrypoint-initdb.d).
# Idempotent, so it can also be run by hand against an existing server (psql's PG* variables).
set -euo pipefail

create_database() {
  local db="$1" password_var="$2"
  local password="${!password_var:?${password_var} is not set: put it in .env (see .env.example)}"
  # psql variables (:'pw', :"db") quote values, so a password needs no escaping here.
  psql -v ON_ERROR_STOP=1 -v db="$db" -v pw="$password" \
    --username "${POSTGRES_USER:-postgres}" --dbname postgres --no-psqlrc --quiet <<'SQL'
SELECT format('CREATE ROLE %I LOGIN', :'db')
  WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = :'db') \gexec
ALTER ROLE :"db" WITH LOGIN PASSWORD :'pw';
SELECT format('CREATE DATABASE %I OWNER %I', :'db', :'db')
  WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = :'db') \gexec
REVOKE ALL ON DATABASE :"db" FROM PUBLIC;
GRANT ALL ON DATABASE :"db" TO :"db";
SQL
  echo "postgres-init: database ${db} (owner ${db}) ready"
}

create_database "${COSTAWARE_AIRFLOW_DB:?COSTAWARE_AIRFLOW_DB is not set (deploy/common.env)}" \
  AIRFLOW_DB_PASSWORD
create_database "${COSTAWARE_MLFLOW_DB:?COSTAWARE_MLFLOW_DB is not set (deploy/common.env)}" \
  MLFLOW_DB_PASSWORD
create_database "${COSTAWARE_LEDGER_DB:?COSTAWARE_LEDGER_DB is not set (deploy/common.env)}" \
  LEDGER_DB_PASSWORD
