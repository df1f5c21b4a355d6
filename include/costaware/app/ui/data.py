"""What the Costaware page shows about one model, from the ledger and the run reports alone.

No Airflow and no registry here: the page must answer "why did (or didn't) this model
retrain, what did it cost, is it working?" from what the runs recorded, so it works on the
state ``make demo`` leaves and on a deployment's shared ledger and storage alike.

* decisions, costs, batches and the audit trail come from the ledger (``store/ledger.py``);
* per-feature drift and the labelled rows of each run come from the run's ``summary.json``
  under ``reports/<model>/<batch>/`` (``publish_report`` writes it), read through the storage
  layer, so a report written by another worker or to object storage reads the same.

Unknown is not zero: an amount nobody knows stays ``None`` here and is shown as unknown.
"""

from __future__ import annotations

import datetime as dt
import re
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from costaware.costs.base import Spend
from costaware.costs.prices import STATIC_PRICES
from costaware.settings import Settings
from costaware.store import storage
from costaware.store.ledger import Ledger

# The files of a run's report folder the page links to (publish_report, validate_batch and
# measure_drift write them); nothing else in the folder is served.
REPORT_FILES = {
    "index.html": "decision",  # the decision, checkpoint numbers, evaluation verdict
    "validation.json": "validation",  # Great Expectations' result
    "drift.html": "drift",  # Evidently's report
    "summary.json": "evaluation",  # every step's numbers, the evaluation's in full
}
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.=+-]{0,199}$")


def safe_name(value: str, what: str) -> str:
    """A model, batch or file name that can only name something inside its folder."""
    if not _NAME.fullmatch(value) or ".." in value:
        raise ValueError(
            f"{what} {value!r} is not a plain name (letters, digits, '_', '.', '-', '=', '+'; "
            "no '/' or '..')"
        )
    return value


@dataclass(frozen=True)
class Run:
    """One row of the decision timeline."""

    run_id: str
    batch_id: str | None
    when: dt.datetime | None  # the batch's newest event (data time); None if unknown
    action: str  # retrain | skip | approve | quarantined
    outcome: str  # promoted | rejected | skipped | dry_run | approved | ... | pending
    reason: str
    expected_gain: float | None
    expected_usd: float | None
    actual: Spend  # the run's training attempts (unknown amounts counted, never $0)
    budget_left: float | None
    realized_gain: float | None
    champion_points: float | None
    drift: dict[str, float | None] = field(default_factory=dict)  # column -> score
    drifted: tuple[str, ...] = ()
    labelled_rows: int | None = None
    accepted_rows: int | None = None  # batches accepted up to this one (label coverage)
    report_files: tuple[str, ...] = ()

    @property
    def label_coverage(self) -> float | None:
        if not self.labelled_rows or not self.accepted_rows:
            return None
        return self.labelled_rows / self.accepted_rows


@dataclass(frozen=True)
class ChampionChange:
    when: dt.datetime | None
    action: str  # promote | reject | rollback
    status: str  # done | pending | aborted
    from_version: str | None
    to_version: str | None
    points: float | None
    actor: str
    reason: str
    run_id: str


@dataclass(frozen=True)
class Champion:
    version: str
    since: dt.datetime | None
    points: float | None  # its metric when it became champion (None: not recorded)
    how: str  # promote | rollback


@dataclass(frozen=True)
class MonthSpend:
    month: str  # YYYY-MM
    by_tag: dict[str, Spend]  # tag value -> spend
    total: Spend
    spot_savings: float | None  # vs the on-demand list price; None when not computable


@dataclass(frozen=True)
class ModelView:
    model: str
    metric: str | None
    champion: Champion | None
    runs: list[Run]
    history: list[ChampionChange]
    months: list[MonthSpend]
    tag_key: str
    features: list[str]


def _num(value: Any) -> float | None:
    if isinstance(value, bool) or value is None:
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def _summary(settings: Settings, model: str, batch_id: str | None) -> tuple[dict, tuple]:
    """The run's summary.json (empty when absent) and the report files that exist."""
    if not batch_id:
        return {}, ()
    folder = settings.reports(model) / batch_id
    present = {p.name for p in storage.files(folder)}
    summary: dict[str, Any] = {}
    if "summary.json" in present:
        summary = storage.read_json(folder / "summary.json") or {}
    return summary, tuple(n for n in REPORT_FILES if n in present)


def _spot_savings(row: dict[str, Any]) -> float | None:
    """What a spot attempt saved against the on-demand list price of its instance type for
    the same runtime (static price table, ``costs/prices.py``); None when not computable."""
    if row["capacity"] != "spot" or row["usd"] is None or row["runtime_s"] is None:
        return None
    prices = STATIC_PRICES.get(row["instance_type"] or "")
    if prices is None:
        return None
    return prices[0] * float(row["runtime_s"]) / 3600.0 - float(row["usd"])


def months(cost_rows: list[dict[str, Any]], tag_key: str) -> list[MonthSpend]:
    """Retraining spend per month (the run clock's month of each attempt) by ``tag_key``."""
    amounts: dict[str, dict[str, list[float | None]]] = defaultdict(lambda: defaultdict(list))
    savings: dict[str, list[float | None]] = defaultdict(list)
    for r in cost_rows:
        month = r["usage_date"].strftime("%Y-%m")
        tag = str((r["tags"] or {}).get(tag_key, "untagged"))
        amounts[month][tag].append(r["usd"])
        if r["capacity"] == "spot":
            savings[month].append(_spot_savings(r))
    out = []
    for month in sorted(amounts):
        by_tag = {t: Spend.of(v) for t, v in sorted(amounts[month].items())}
        total = Spend.of(a for v in amounts[month].values() for a in v)
        saved = savings.get(month, [])
        known = None if any(s is None for s in saved) else sum(s for s in saved if s is not None)
        out.append(MonthSpend(month, by_tag, total, known))
    return out


def _history(audit_rows: list[dict[str, Any]]) -> list[ChampionChange]:
    out = []
    for a in audit_rows:
        metrics = a["metrics"] or {}
        points = metrics.get("challenger_points") if a["action"] == "promote" else None
        out.append(
            ChampionChange(
                when=a["data_time"],
                action=a["action"],
                status=a["status"],
                from_version=a["from_version"],
                to_version=a["to_version"],
                points=_num(points if points is not None else metrics.get("champion_points")),
                actor=a["actor"],
                reason=a["reason"],
                run_id=a["run_id"],
            )
        )
    return out


def current_champion(history: list[ChampionChange]) -> Champion | None:
    """The version the last completed promotion or rollback made champion, since when, and the
    metric it was promoted on (a rollback target keeps the points of its own promotion)."""
    promoted_points = {
        h.to_version: h.points for h in history if h.action == "promote" and h.status == "done"
    }
    moves = [h for h in history if h.action in ("promote", "rollback") and h.status == "done"]
    if not moves or moves[-1].to_version is None:
        return None
    last, version = moves[-1], str(moves[-1].to_version)
    return Champion(version, last.when, promoted_points.get(version), last.action)


def model_view(
    settings: Settings,
    ledger: Ledger,
    model: str,
    tag_key: str = "team",
    metric: str | None = None,
) -> ModelView:
    """Everything the page shows for ``model`` (``metric``: the config's, when known)."""
    safe_name(model, "model")
    decisions = ledger.decisions(model)
    batches = {b["batch_id"]: b for b in ledger.batches(model)}
    costs = ledger.costs(model=model, purpose="retrain")
    by_run: dict[str, list[float | None]] = defaultdict(list)
    for c in costs:
        by_run[c["run_id"]].append(c["usd"])
    accepted = ledger.accepted_batches(model)
    cumulative, total = {}, 0
    for b in accepted:
        total += int(b["rows"])
        cumulative[b["batch_id"]] = total

    runs: list[Run] = []
    features: dict[str, None] = {}
    decided = set()
    for d in decisions:
        det = d["details"] or {}
        numbers = det.get("numbers") or {}
        summary, files = _summary(settings, model, d["batch_id"])
        drift_cols = (summary.get("drift") or {}).get("columns") or []
        drift = {str(c["column"]): _num(c.get("score")) for c in drift_cols}
        features.update(dict.fromkeys(drift))
        perf = summary.get("performance") or {}
        metric = metric or perf.get("metric")  # the reports say it once a champion exists
        outcome = d["outcome"] or ("awaiting approval" if d["action"] == "approve" else "running")
        runs.append(
            Run(
                run_id=d["run_id"],
                batch_id=d["batch_id"],
                when=d["data_time"],
                action=d["action"],
                outcome=outcome,
                reason=d["reason"],
                expected_gain=_num((det.get("gain") or {}).get("points")),
                expected_usd=_num((det.get("cost") or {}).get("usd")),
                actual=Spend.of(by_run.get(d["run_id"], [])),
                budget_left=_num(numbers.get("budget left this month ($)")),
                realized_gain=_num(det.get("realized_gain")),
                champion_points=_num(det.get("champion_points")),
                drift=drift,
                drifted=tuple((det.get("drift") or {}).get("drifted_columns") or ()),
                labelled_rows=perf.get("labelled_rows"),
                accepted_rows=cumulative.get(d["batch_id"] or ""),
                report_files=files,
            )
        )
        decided.add(d["batch_id"])
    for b in batches.values():  # a quarantined batch stops its run before any decision
        if b["status"] == "quarantined" and b["batch_id"] not in decided:
            _, files = _summary(settings, model, b["batch_id"])
            runs.append(
                Run(
                    run_id=b["run_id"] or "",
                    batch_id=b["batch_id"],
                    when=b["end_ts"],
                    action="quarantined",
                    outcome="quarantined",
                    reason=b["message"],
                    expected_gain=None,
                    expected_usd=None,
                    actual=Spend(),
                    budget_left=None,
                    realized_gain=None,
                    champion_points=None,
                    report_files=files,
                )
            )
    runs.sort(key=lambda r: (r.when is None, r.when or dt.datetime.min))  # event time
    history = _history(ledger.audit(model))
    return ModelView(
        model=model,
        metric=metric,
        champion=current_champion(history),
        runs=runs,
        history=history,
        months=months(costs, tag_key),
        tag_key=tag_key,
        features=list(features),
    )


def run_for(ledger: Ledger, model: str, run_id: str) -> dict[str, Any] | None:
    """The batch a DAG run took (its decision, or its quarantined batch)."""
    found = ledger.decision(model, run_id)
    if found is not None:
        return {"batch_id": found["batch_id"]}
    for b in ledger.batches(model):
        if b["run_id"] == run_id:
            return {"batch_id": b["batch_id"]}
    return None
