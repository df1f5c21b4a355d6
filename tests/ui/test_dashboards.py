"""The operators' dashboards: Prometheus's configuration and the provisioned Grafana dashboard.

Checked with Prometheus's own ``promtool`` (Debian's ``prometheus`` package: the configuration,
every panel query as PromQL, and costaware's exposition), and every metric a panel queries is
one that is exported: costaware's from a real render of ``/costaware/metrics`` (a ledger built
here), the serving app's from its own registry, Airflow's from the metric list Airflow ships
(``metrics_template.yaml``) under the StatsD exporter's naming."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import yaml

from costaware.app.ui import data
from costaware.app.ui.metrics import METRICS, render

from ..conftest import ROOT
from .test_data import state  # noqa: F401  (the hand-built ledger fixture)

DEPLOY = ROOT / "deploy"
DASHBOARD = DEPLOY / "grafana" / "dashboards" / "costaware.json"
PROMETHEUS = DEPLOY / "prometheus" / "prometheus.yml"
PROMQL_WORDS = {
    "sum", "by", "rate", "increase", "histogram_quantile", "max", "min", "avg", "without",
    "on", "le", "count",
}  # fmt: skip
SUFFIXES = {"timer": ("", "_sum", "_count"), "counter": ("",), "gauge": ("",)}


def _promtool() -> str:
    found = shutil.which("promtool")
    assert found, "promtool is missing: apt-get install prometheus (Debian's package)"
    return found


def _dashboard() -> dict[str, Any]:
    return json.loads(DASHBOARD.read_text())


def _queries() -> list[tuple[str, str]]:
    return [(p["title"], t["expr"]) for p in _dashboard()["panels"] for t in p.get("targets", [])]


def _metric_names(expr: str) -> set[str]:
    """Identifiers in a PromQL expression that are not functions, keywords or label names."""
    no_strings = re.sub(r'"[^"]*"', '""', expr)
    no_labels = re.sub(r"\{[^}]*\}", "{}", no_strings)
    no_ranges = re.sub(r"\[[^\]]*\]", "[]", no_labels)
    no_by = re.sub(r"\b(by|without)\s*\([^)]*\)", "", no_ranges)
    words = set(re.findall(r"[A-Za-z_:][A-Za-z0-9_:]*", no_by))
    return {w for w in words if w not in PROMQL_WORDS}


def _airflow_names() -> dict[str, set[str]]:
    """Airflow's metric names as the StatsD exporter exposes them with prefix ``airflow`` and
    tags as labels: dots → underscores; a timer is a summary (``_sum``, ``_count``)."""
    import airflow

    template = Path(airflow.__file__).parent / "_shared/observability/metrics/metrics_template.yaml"
    names: dict[str, set[str]] = {}
    for m in yaml.safe_load(template.read_text())["metrics"]:
        if "{" in m["name"]:
            continue  # names with variables in them ({job_name}_start): not queried here
        base = "airflow_" + m["name"].replace(".", "_")
        names[base] = {base + s for s in SUFFIXES.get(m["type"], ("",))}
    return names


def _serve_names() -> set[str]:
    from prometheus_client.parser import text_string_to_metric_families

    from costaware.serve.metrics import ServeMetrics

    m = ServeMetrics.create(lambda: 0.0, lambda: 0.0, lambda: 0.0)
    m.requests.labels(endpoint="/predict", status="200").inc()
    m.latency.observe(0.001)
    m.scores.labels(alias="champion").observe(0.4)
    m.set_versions({"champion": "3"})
    return {s.name for f in text_string_to_metric_families(m.render().decode()) for s in f.samples}


def _costaware_render(state) -> str:  # noqa: F811
    settings, led = state
    return render([(data.model_view(settings, led, "m1"), 5.0)]).decode()


def test_every_panel_queries_metrics_that_are_exported(state) -> None:  # noqa: F811
    from prometheus_client.parser import text_string_to_metric_families

    exported = {
        s.name for f in text_string_to_metric_families(_costaware_render(state)) for s in f.samples
    }
    assert exported == set(METRICS)  # the hand-built ledger fills every series
    airflow = set().union(*_airflow_names().values())
    serve = _serve_names()
    queries = _queries()
    assert len(queries) >= 15
    unknown = []
    for title, expr in queries:
        names = _metric_names(expr)
        assert names, f"panel {title!r} queries no metric: {expr}"
        for name in names:
            if name.startswith("costaware_serve_"):
                ok = name in serve
            elif name.startswith("costaware_"):
                ok = name in exported
            else:
                ok = name in airflow
            if not ok:
                unknown.append((title, name))
    assert not unknown, f"panels query metrics nobody exports: {unknown}"


def test_the_name_check_catches_a_misspelt_metric() -> None:
    assert _metric_names('sum by (action) (costaware_decision{model=~"$model"})') == {
        "costaware_decision"
    }
    assert "costaware_decision" not in METRICS
    assert "airflow_scheduler_heartbeats" not in set().union(*_airflow_names().values())


def test_panel_queries_are_valid_promql(tmp_path: Path) -> None:
    # promtool parses each query as a recording rule's expression.
    exprs = [e.replace("$model", ".*") for _, e in _queries()]
    rules = {"groups": [{"name": "g", "rules": [
        {"record": f"costaware:panel_{i}", "expr": e} for i, e in enumerate(exprs)
    ]}]}  # fmt: skip
    path = tmp_path / "rules.yml"
    path.write_text(yaml.safe_dump(rules))
    done = subprocess.run(
        [_promtool(), "check", "rules", str(path)], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"SUCCESS: {len(exprs)} rules found" in done.stdout + done.stderr


def test_prometheus_config_passes_promtool(tmp_path: Path) -> None:
    cfg = yaml.safe_load(PROMETHEUS.read_text())
    jobs = {j["job_name"]: j for j in cfg["scrape_configs"]}
    assert jobs["costaware"]["metrics_path"] == "/costaware/metrics"  # the plugin's route
    assert jobs["costaware"]["authorization"]["type"] == "Bearer"  # the plugin requires login
    # promtool wants the token file to exist: point it at one for the check.
    token = tmp_path / "airflow-token"
    token.write_text("x")
    jobs["costaware"]["authorization"]["credentials_file"] = str(token)
    path = tmp_path / "prometheus.yml"
    path.write_text(yaml.safe_dump(cfg))
    done = subprocess.run(
        [_promtool(), "check", "config", str(path)], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_costaware_exposition_passes_promtool(state) -> None:  # noqa: F811
    done = subprocess.run(
        [_promtool(), "check", "metrics"],
        input=_costaware_render(state),
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_grafana_provisioning_points_at_the_dashboard_and_datasource() -> None:
    dash = _dashboard()
    ds = yaml.safe_load((DEPLOY / "grafana/provisioning/datasources/prometheus.yml").read_text())
    uids = {d["uid"] for d in ds["datasources"]}
    ids = [p["id"] for p in dash["panels"]]
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    for p in dash["panels"]:
        assert {"h", "w", "x", "y"} <= set(p["gridPos"]) and p["gridPos"]["x"] + p["gridPos"][
            "w"
        ] <= 24
        if p["type"] != "row":
            assert p["datasource"]["uid"] in uids, p["title"]
            assert all(t["datasource"]["uid"] in uids for t in p["targets"])
    prov = yaml.safe_load((DEPLOY / "grafana/provisioning/dashboards/costaware.yml").read_text())
    assert prov["providers"][0]["options"]["path"] == "/var/lib/grafana/dashboards"
    assert [p["type"] for p in ds["datasources"]] == ["prometheus"]
    assert ds["datasources"][0]["url"].endswith(":9090")
