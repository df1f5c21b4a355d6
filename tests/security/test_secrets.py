"""Secrets never leak: not into task logs, XComs, reports, the ledger or MLflow.

Distinct random secrets are planted where a deployment keeps them: the Slack webhook in an
Airflow connection's password (``AIRFLOW_CONN_COSTAWARE_SLACK``, the form Airflow masks),
the old ``costaware_slack_webhook`` Variable (``AIRFLOW_VAR_…``, which must no longer be
read), the ledger's database password in ``COSTAWARE_DB_URL`` (really used: PostgreSQL) and
a cloud key in the environment. The retrain DAG runs a few Elec2 weeks with ``dag.test()``
and ``finops_showback`` runs with a budget small enough to alert, posting to a local HTTP
server that stands in for Slack. Then everything the runs left behind is searched.

A canary (a batch file name) travels the same paths a leaked secret would; the search must
find it in every place, so a search that looks nowhere cannot pass.

Where the task logs are: ``dag.test()`` runs each task in this process and writes no task
log file (``$AIRFLOW_HOME/logs`` stays empty); the task log lines go to the process's
output, which is captured at the file-descriptor level, and every file under the Airflow
home is searched anyway.
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import json
import logging
import os
import sys
import tempfile
import threading
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pendulum
import pytest
import sqlalchemy as sa
import yaml

from costaware.app.replay import arrival_time, land_batch, land_labels, run_dag_once
from costaware.costs.budgets import SLACK_CONN_ID, BudgetStatus, alert, slack_webhook_url
from costaware.errors import CostawareError
from costaware.settings import Settings

from ..conftest import ROOT, make_settings
from ..dags.harness import WEEKS, Harness

pytestmark = pytest.mark.airflow  # runs the real retrain DAG with dag.test()


class SlackStandIn:
    """An incoming-webhook endpoint on 127.0.0.1 that records every POST."""

    def __init__(self) -> None:
        self.posts: list[tuple[str, bytes]] = []
        self.status = 200  # what it answers
        stand_in = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                stand_in.posts.append((self.path, body))
                self.send_response(stand_in.status)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def _secret(kind: str) -> str:
    return f"cw{kind}{uuid.uuid4().hex}"


def _finops_dag(settings: Settings) -> Any:
    spec = importlib.util.spec_from_file_location(
        "finops_showback_dag", settings.project_root / "dags" / "finops_showback.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.finops_showback()  # the @dag function builds the DAG


class Leftovers:
    """Everything the runs left behind, as text per place."""

    def __init__(self, settings: Settings, airflow_home: Path, output: str) -> None:
        self.settings = settings
        self.airflow_home = airflow_home
        self.places: dict[str, str] = {
            "process output and logs": output,
            "airflow files (task logs, metadata DB)": self._files(airflow_home),
            "costaware files (reports, JSON, HTML, parquet, MLflow store)": self._files(
                settings.home
            ),
            "airflow xcom": self._xcom(airflow_home / "airflow.db"),
            "ledger rows": self._ledger(settings.db_url),
            "mlflow runs and versions": self._mlflow(settings),
        }

    @staticmethod
    def _files(root: Path) -> str:
        parts = []
        for path in sorted(p for p in root.rglob("*") if p.is_file()):
            # Bytes decoded leniently: parquet metadata, SQLite pages and logs alike.
            parts.append(f"== {path}\n{path.read_bytes().decode('utf-8', 'replace')}")
        return "\n".join(parts)

    @staticmethod
    def _xcom(db: Path) -> str:
        engine = sa.create_engine(f"sqlite:///{db}")
        with engine.connect() as conn:
            rows = conn.execute(sa.text("SELECT dag_id, run_id, task_id, key, value FROM xcom"))
            out = "\n".join(str(tuple(r)) for r in rows)
        engine.dispose()
        return out

    @staticmethod
    def _ledger(url: str) -> str:
        engine = sa.create_engine(url)
        meta = sa.MetaData()
        meta.reflect(engine)
        with engine.connect() as conn:
            out = "\n".join(
                f"{t.name}: {tuple(r)}"
                for t in meta.sorted_tables
                for r in conn.execute(t.select())
            )
        engine.dispose()
        return out

    @staticmethod
    def _mlflow(settings: Settings) -> str:
        from mlflow import MlflowClient

        client = MlflowClient(settings.mlflow_uri, settings.mlflow_uri)
        parts = []
        for exp in client.search_experiments():
            parts.append(str((exp.name, exp.tags, exp.artifact_location)))
            for run in client.search_runs([exp.experiment_id]):
                parts.append(str((run.info, run.data.params, run.data.tags, run.data.metrics)))
        for model in client.search_registered_models():
            parts.append(str((model.name, model.tags, model.aliases, model.description)))
            for v in client.search_model_versions(f"name='{model.name}'"):
                parts.append(str((v.version, v.tags, v.source, v.run_id, v.description)))
        return "\n".join(parts)

    def where(self, needle: str) -> list[str]:
        return [place for place, text in self.places.items() if needle in text]


@contextlib.contextmanager
def _capture_everything(into: list[str]) -> Iterator[None]:
    """Everything the process writes while the DAGs run: file descriptors 1 and 2 (native
    code, subprocesses), ``sys.stdout``/``sys.stderr`` and every stdlib logger at INFO."""
    records: list[str] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(self.format(record))

    keep = Keep(logging.INFO)
    keep.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s"))
    root = logging.getLogger()
    text = io.StringIO()
    with tempfile.TemporaryFile() as fds:
        sys.stdout.flush()
        sys.stderr.flush()
        saved = [os.dup(1), os.dup(2)]
        os.dup2(fds.fileno(), 1)
        os.dup2(fds.fileno(), 2)
        root.addHandler(keep)
        try:
            with contextlib.redirect_stdout(text), contextlib.redirect_stderr(text):
                yield
        finally:
            root.removeHandler(keep)
            for fd, copy in zip((1, 2), saved, strict=True):
                os.dup2(copy, fd)
                os.close(copy)
            fds.seek(0)
            into += [fds.read().decode("utf-8", "replace"), text.getvalue(), *records]


def _run_dags(home: Path, db_url: str, canary: str, mp: pytest.MonkeyPatch) -> Settings:
    settings = make_settings(home, db_url)
    h = Harness(settings)
    # Weeks 0-3 as a replay runs them (labels wait, then a first model), and week 4 under the
    # canary's name, forced: drift, training, evaluation and promotion all handle it.
    for i in range(4):
        assert h.week(i) == "success"
    name, part = WEEKS[4]
    land_batch(settings, h.cfg, f"{name}_{canary}", part)
    land_labels(settings, h.cfg, *WEEKS[3])
    assert run_dag_once(h.dag, {"force": True}, arrival_time(h.cfg, part)) == "success"
    decision = h.ctx.ledger.decision_for_batch("elec2", f"{name}_{canary}")
    assert decision is not None and decision["outcome"] in ("promoted", "rejected")
    # finops_showback with a budget the retrains exceed, so the Slack alert really runs.
    models = home / "models"
    models.mkdir()
    raw = yaml.safe_load((ROOT / "include" / "models" / "elec2.yaml").read_text())
    raw["cost_policy"]["monthly_budget_usd"] = 0.001
    (models / "elec2.yaml").write_text(yaml.safe_dump(raw))
    mp.setenv("COSTAWARE_MODELS_DIR", str(models))
    day = pendulum.datetime(1996, 6, 20, tz="UTC")
    conf = {"source": "ledger", "lookback_days": 35}
    assert run_dag_once(_finops_dag(settings), conf, day) == "success"
    return settings


@pytest.fixture(scope="module")
def scenario(
    airflow_home: Path, pg_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, Any]]:
    from costaware.store.ledger import drop_all

    secrets = {
        "connection password": _secret("conn"),
        "variable": _secret("var"),
        "environment": _secret("env"),
        "database password": _secret("dbpw"),
    }
    canary = f"canary{uuid.uuid4().hex[:12]}"
    home = tmp_path_factory.mktemp("secrets")
    # PostgreSQL here trusts local connections: the password is accepted and really sent.
    db_url = pg_url.replace("://postgres@", f"://postgres:{secrets['database password']}@", 1)
    assert secrets["database password"] in db_url
    engine = sa.create_engine(db_url)
    drop_all(engine)
    engine.dispose()
    slack = SlackStandIn()
    hook_path = f"/services/T0CW/B0CW/{secrets['connection password']}"
    mp = pytest.MonkeyPatch()
    mp.setenv("COSTAWARE_HOME", str(home))
    mp.setenv("COSTAWARE_DB_URL", db_url)
    mp.delenv("COSTAWARE_MODELS_DIR", raising=False)
    mp.setenv("AWS_SECRET_ACCESS_KEY", secrets["environment"])
    mp.setenv(
        "AIRFLOW_CONN_COSTAWARE_SLACK",
        json.dumps({"conn_type": "slackwebhook", "password": slack.url + hook_path}),
    )
    # The Variable the DAG used to read: still set, it must be neither read nor posted to.
    mp.setenv(
        "AIRFLOW_VAR_COSTAWARE_SLACK_WEBHOOK",
        f"{slack.url}/services/T0CW/B0CW/{secrets['variable']}",
    )
    output: list[str] = []
    try:
        with _capture_everything(output):
            settings = _run_dags(home, db_url, canary, mp)
        yield {
            "secrets": secrets,
            "canary": canary,
            "settings": settings,
            "slack": slack,
            "hook_path": hook_path,
            "output": "\n".join(output),
        }
    finally:
        mp.undo()
        slack.stop()


def test_slack_alert_goes_through_the_connection(scenario: dict[str, Any]) -> None:
    posts = scenario["slack"].posts
    assert [path for path, _ in posts] == [scenario["hook_path"]]  # never the old Variable
    text = json.loads(posts[0][1])["text"]
    assert text.startswith("OVER BUDGET: budget elec2 1996-06:")
    for secret in scenario["secrets"].values():
        assert secret not in text


def test_no_secret_is_left_anywhere(scenario: dict[str, Any], airflow_home: Path) -> None:
    found = Leftovers(scenario["settings"], airflow_home, scenario["output"])
    # The search reaches every place: the canary batch name is in each of them.
    assert found.where(scenario["canary"]) == list(found.places), {
        place: len(text) for place, text in found.places.items()
    }
    leaks = {kind: found.where(secret) for kind, secret in scenario["secrets"].items()}
    assert leaks == {kind: [] for kind in scenario["secrets"]}


# -- the webhook: where it is kept, how it is built, what an error says ------------------
def test_airflow_masks_the_webhook_in_a_connection_not_in_that_variable(
    airflow_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Why the webhook moved: Airflow's secrets masker redacts a connection's password from
    every log line once the connection is read, but not a Variable whose name has none of
    its sensitive words (``costaware_slack_webhook``)."""
    from airflow.sdk import Connection, Variable
    from airflow.sdk.log import redact

    token, var = _secret("tok"), _secret("var")
    monkeypatch.setenv(
        "AIRFLOW_CONN_COSTAWARE_SLACK",
        json.dumps({"conn_type": "slackwebhook", "password": f"T0CW/B0CW/{token}"}),
    )
    monkeypatch.setenv("AIRFLOW_VAR_COSTAWARE_SLACK_WEBHOOK", f"https://x.test/{var}")
    conn = Connection.get(SLACK_CONN_ID)
    url = slack_webhook_url(conn.password, conn.host, conn.schema, conn.port)
    assert url == f"https://hooks.slack.com/services/T0CW/B0CW/{token}"
    assert redact(f"posting to {url}") == "posting to https://hooks.slack.com/services/***"
    old = Variable.get("costaware_slack_webhook")
    assert var in redact(f"posting to {old}")  # the old place: it would have leaked


@pytest.mark.parametrize(
    ("password", "host", "schema", "port", "url"),
    [
        (None, None, None, None, None),
        ("  ", "h", None, None, None),
        ("https://hooks.slack.com/services/T/B/x", "ignored", "http", 1, "https://hooks.slack.com/services/T/B/x"),
        ("T/B/x", None, None, None, "https://hooks.slack.com/services/T/B/x"),
        ("/T/B/x", "hooks.example.com/services/", "http", None, "http://hooks.example.com/services/T/B/x"),
        ("services/T/B/x", "127.0.0.1", "http", 8080, "http://127.0.0.1:8080/services/T/B/x"),
        ("T/B/x", "https://proxy.test/slack", None, 8443, "https://proxy.test:8443/slack/T/B/x"),
    ],
)  # fmt: skip
def test_slack_webhook_url_from_connection_fields(
    password: str | None, host: str | None, schema: str | None, port: int | None, url: str | None
) -> None:
    assert slack_webhook_url(password, host, schema, port) == url


def test_slack_post_errors_never_show_the_webhook() -> None:
    token = _secret("tok")
    over = BudgetStatus("<!channel> <https://evil.test|ml-a> & co", "2026-11", 10.0, 12.0, "aws")
    half = BudgetStatus("ml-b", "2026-11", 10.0, 6.0, "aws")
    slack = SlackStandIn()
    try:
        sent = alert([over, half], slack_webhook=f"{slack.url}/services/T/B/{token}")
        assert len(sent) == 2 and len(slack.posts) == 1  # one message per run
        text = json.loads(slack.posts[0][1])["text"]
        # Slack's escaping: a name from a cloud API cannot ping @channel or hide a link.
        assert text.splitlines()[0].startswith(
            "OVER BUDGET: budget &lt;!channel&gt; &lt;https://evil.test|ml-a&gt; &amp; co 2026-11"
        )
        assert "<" not in text and ">" not in text and text.splitlines()[1].startswith("50% alert")
        slack.status = 404
        with pytest.raises(CostawareError, match="answered HTTP 404") as err:
            alert([over], slack_webhook=f"{slack.url}/services/T/B/{token}")
        assert token not in str(err.value) and slack.url not in str(err.value)
        assert err.value.__cause__ is None and err.value.__suppress_context__
    finally:
        slack.stop()
    with pytest.raises(CostawareError, match="could not be reached") as err:
        alert([over], slack_webhook=f"{slack.url}/services/T/B/{token}")  # nobody listens
    assert token not in str(err.value) and slack.url not in str(err.value)
