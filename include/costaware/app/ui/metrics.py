"""costaware's own numbers for Prometheus, from the same ledger and reports as the page.

Served at ``/costaware/metrics`` by the plugin (Airflow's login required, like every route:
Prometheus sends a token, see ``deploy/prometheus/prometheus.yml``). Every value is recomputed
from the ledger at scrape time, so they are gauges; an unknown amount is left out (a missing
series), never exported as 0.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily

from costaware.app.ui.data import ModelView

# name -> help; the Grafana dashboard's test checks its queries against this table and a render.
METRICS = {
    "costaware_decisions": "checkpoint decisions recorded in the ledger, by action and outcome",
    "costaware_retrain_spend_usd": "known retraining spend in the ledger, by month (run clock)",
    "costaware_retrain_unknown_charges": "training attempts whose cost is unknown, by month",
    "costaware_monthly_budget_usd": "the model's monthly retraining budget (config)",
    "costaware_budget_left_usd": "budget left this month at the newest decision",
    "costaware_drift_score": "drift score per feature at the newest run that measured drift",
    "costaware_champion_metric_points": "the champion's metric when it became champion",
    "costaware_champion_version": "the registry version that is champion (from the audit trail)",
    "costaware_expected_gain_points": "expected gain at the newest decision",
    "costaware_realized_gain_points": "realized gain of the newest evaluated retrain",
}


class LedgerCollector:
    def __init__(self, views: Iterable[tuple[ModelView, float | None]]) -> None:
        self.views = list(views)

    def collect(self) -> Iterator[Any]:
        fam = {n: GaugeMetricFamily(n, h, labels=_labels(n)) for n, h in METRICS.items()}
        for view, budget in self.views:
            m = view.model
            counts = Counter((r.action, r.outcome) for r in view.runs)
            for (action, outcome), n in sorted(counts.items()):
                fam["costaware_decisions"].add_metric([m, action, outcome], n)
            for month in view.months:
                fam["costaware_retrain_spend_usd"].add_metric(
                    [m, month.month], month.total.known_usd
                )
                fam["costaware_retrain_unknown_charges"].add_metric(
                    [m, month.month], month.total.unknown
                )
            if budget is not None:
                fam["costaware_monthly_budget_usd"].add_metric([m], budget)
            decided = [r for r in view.runs if r.action != "quarantined"]
            if decided and decided[-1].budget_left is not None:
                fam["costaware_budget_left_usd"].add_metric([m], decided[-1].budget_left)
            if decided and decided[-1].expected_gain is not None:
                fam["costaware_expected_gain_points"].add_metric([m], decided[-1].expected_gain)
            realized = [r.realized_gain for r in view.runs if r.realized_gain is not None]
            if realized:
                fam["costaware_realized_gain_points"].add_metric([m], realized[-1])
            drifted = [r for r in view.runs if r.drift]
            if drifted:
                for feature, score in drifted[-1].drift.items():
                    if score is not None:
                        fam["costaware_drift_score"].add_metric([m, feature], score)
            champ = view.champion
            if champ is not None:
                if champ.points is not None:
                    fam["costaware_champion_metric_points"].add_metric([m], champ.points)
                if champ.version.isdigit():
                    fam["costaware_champion_version"].add_metric([m], float(champ.version))
        yield from fam.values()


def _labels(name: str) -> list[str]:
    if name == "costaware_decisions":
        return ["model", "action", "outcome"]
    if name in ("costaware_retrain_spend_usd", "costaware_retrain_unknown_charges"):
        return ["model", "month"]
    if name == "costaware_drift_score":
        return ["model", "feature"]
    return ["model"]


def render(views: Iterable[tuple[ModelView, float | None]]) -> bytes:
    """The Prometheus text exposition of ``views`` (each with the model's monthly budget)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(LedgerCollector(views))  # type: ignore[arg-type]
    return bytes(generate_latest(registry))
