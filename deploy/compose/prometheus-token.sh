#!/usr/bin/env bash
# Keeps a fresh Airflow API token in a file for Prometheus: /costaware/metrics, like every route
# of the costaware plugin, requires Airflow's login, and Prometheus can only send a bearer token
# read from a file (deploy/prometheus/prometheus.yml, credentials_file).
#
# Logs in with Airflow's own login route (POST /auth/token, the simple auth manager) as the first
# user of AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS with AIRFLOW_ADMIN_PASSWORD, writes the token
# to TOKEN_FILE atomically (Prometheus re-reads the file on every scrape), and repeats every
# REFRESH_SECONDS, well inside Airflow's [api_auth] jwt_expiration_time (86400 s by
# default). A failed login keeps the previous token and is retried after 30 s.
# REFRESH_SECONDS=0 logs in once and exits with the login's status.
#
# Run by docker-compose.yaml's prometheus-token service; tests/deploy/test_compose.py runs it
# against Airflow's real login route.
set -euo pipefail

url="${AIRFLOW_URL:?AIRFLOW_URL is not set (the API server, e.g. http://airflow-apiserver:8080)}"
file="${TOKEN_FILE:?TOKEN_FILE is not set (where Prometheus reads the token)}"
refresh="${REFRESH_SECONDS:-3600}"
users="${AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS:?AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS is not set (deploy/common.env)}"
user="${users%%,*}"
user="${user%%:*}"
user="${user// /}"
if [ -z "${AIRFLOW_ADMIN_PASSWORD:-}" ]; then
  echo "prometheus-token: AIRFLOW_ADMIN_PASSWORD is empty: set it in .env (see .env.example)" >&2
  exit 1
fi

login() {
  local body answer status
  # The password goes in a JSON body built by Python: no quoting of it in the shell.
  body="$(USER_NAME="$user" python3 -c 'import json, os; print(json.dumps(
    {"username": os.environ["USER_NAME"], "password": os.environ["AIRFLOW_ADMIN_PASSWORD"]}))')"
  answer="$(mktemp)"
  status="$(curl --silent --show-error --max-time 30 --output "$answer" --write-out '%{http_code}' \
    --header 'Content-Type: application/json' --data-binary @- "${url%/}/auth/token" \
    <<<"$body")" || { rm -f "$answer"; echo "prometheus-token: ${url} is unreachable" >&2; return 1; }
  if [ "$status" != 201 ]; then
    echo "prometheus-token: login as ${user} at ${url%/}/auth/token answered ${status}:" \
      "$(head -c 300 "$answer")" >&2
    rm -f "$answer"
    return 1
  fi
  # Write beside the target, then rename: Prometheus never reads a half-written token.
  if ! python3 - "$answer" "$file" <<'PY'
import json, os, sys
answer, target = sys.argv[1], sys.argv[2]
with open(answer) as f:
    token = json.load(f)["access_token"]
tmp = f"{target}.tmp"
with open(tmp, "w") as f:
    f.write(token)
os.chmod(tmp, 0o644)
os.replace(tmp, target)
PY
  then
    rm -f "$answer"
    echo "prometheus-token: the login's answer holds no access_token" >&2
    return 1
  fi
  rm -f "$answer"
  echo "prometheus-token: token for ${user} written to ${file}"
}

if [ "$refresh" = 0 ]; then
  login
  exit
fi
while true; do
  if login; then sleep "$refresh"; else sleep 30; fi
done
