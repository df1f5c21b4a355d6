"""Realized return through the real steps (SQLite ledger, MLflow file registry, real XGBoost):
a promotion's new champion and the model it replaced are both scored on every later labelled
batch; expected vs realized shows in the ledger, the decision memo and the report; and a
model whose retrains never pay stops retraining as that evidence accumulates.

On the start of the Weather sequence: the first model is trained 29 months in. Started one
batch earlier, the same 30-row-batch stream went differently: one retrain was rejected, the
next challenger passed the gate and then lost 7.7 pt·batches against the model it replaced
(10.9 expected) — the retrains did not pay either — but the estimator's own gain fell to ~0
for the following ten runs, so the correction did not have to change a decision there (the
skips were the estimator's)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import xgboost as xgb
from sklearn.metrics import roc_auc_score

from costaware.config import ModelConfig
from costaware.decide.policy import CheckpointInputs, decide
from costaware.models.registry import CHAMPION
from costaware.settings import Settings
from costaware.steps.checkpoint import cost_checkpoint, estimate_cost
from costaware.steps.context import StepContext
from costaware.steps.evaluate import evaluate_challenger
from costaware.steps.measure import measure_performance
from costaware.steps.promote import promote_or_reject
from costaware.steps.report import publish_report
from costaware.steps.train import train_challenger
from costaware.store.ledger import realized_rows

from .. import factories
from .helpers import CLOCK, FEATURES, MODEL, accept_frames, install_registry, make_ctx

NO_DRIFT = {"drift_share": 0.0, "drifted_columns": []}  # drift is not what is tested here


def _run(
    ctx: StepContext, batch_id: str, force: bool = False
) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any], dict[str, Any] | None]:
    """One retrain DAG run's steps after intake: measure, cost, checkpoint and, when it says
    retrain, train, evaluate and promote or reject."""
    validated = {"batch_id": batch_id, "status": "pass"}
    perf = measure_performance(ctx)
    cost = estimate_cost(ctx, validated)
    decision = cost_checkpoint(ctx, validated, NO_DRIFT, perf, cost, force=force)
    outcome = None
    if decision["train"]:
        trained = train_challenger(ctx, batch_id)
        outcome = promote_or_reject(ctx, evaluate_challenger(ctx, trained["version"]))
    return perf, cost, decision, outcome


def _elec2_weeks(first: int, count: int) -> dict[str, pd.DataFrame]:
    weeks = factories.batches(MODEL)[first : first + count]
    return {f"w{first + i:02d}": part for i, (_, part) in enumerate(weeks)}


def test_replaced_model_is_scored_on_later_batches_and_shown_everywhere(
    settings: Settings,
) -> None:
    """Champion v1 is a weak model (the template's booster, fit to random data); the run on
    Elec2's week 9 retrains and promotes v4 over it. A week later the next run scores v1 and
    v4 on week 10 — rows neither was chosen on — and records the difference, beside the gain
    the checkpoint expected. Checked against scikit-learn's ROC AUC of both models."""
    cfg = factories.model(MODEL)
    reg = install_registry(settings)
    reg.set_alias(MODEL, CHAMPION, "1")
    ctx = make_ctx(cfg, settings, "run-1")
    accept_frames(settings, ctx.ledger, cfg, _elec2_weeks(0, 10))

    perf, _, decision, outcome = _run(ctx, "w09")
    assert perf["realized"]["tracking"]["promotion"] is None  # v1 was set by hand
    assert decision["action"] == "retrain"
    assert outcome is not None and outcome["action"] == "promote"
    assert outcome["previous_champion"] == "1"
    new = outcome["version"]
    expected = ctx.ledger.decision(MODEL, "run-1")["details"]["gain"]
    assert expected["points"] > 0 and expected["horizon"] >= 1

    week10 = _elec2_weeks(10, 1)
    ctx2 = make_ctx(cfg, settings, "run-2", CLOCK + dt.timedelta(days=7))
    accept_frames(settings, ctx2.ledger, cfg, week10)
    validated = {"batch_id": "w10", "status": "pass"}
    perf2 = measure_performance(ctx2)

    rows = realized_rows(ctx2.ledger, MODEL)
    assert [
        (r["run_id"], r["batch_id"], r["champion_version"], r["replaced_version"]) for r in rows
    ] == [("run-1", "w10", new, "1")]
    row = rows[0]
    frame = week10["w10"]
    y = frame["class"].to_numpy()
    champion = reg.load(MODEL, new).scores(frame)
    replaced = reg.load(MODEL, "1").predict(xgb.DMatrix(frame[FEATURES]))
    assert row["champion_points"] == pytest.approx(100 * roc_auc_score(y, champion))
    assert row["replaced_points"] == pytest.approx(100 * roc_auc_score(y, replaced))
    assert row["gain_points"] == pytest.approx(row["champion_points"] - row["replaced_points"])
    assert row["gain_points"] > 10  # a model of the data vs one of noise
    assert 0 < row["gain_se"] < row["gain_points"] and row["rows"] == len(frame)
    assert row["expected_gain"] == expected["points"]
    assert row["horizon_batches"] == expected["horizon"]
    assert row["usd"] == ctx2.ledger.operation(MODEL, "run-1", "promote")["usd"]

    # The running ratio: one promotion measured on one later batch, extrapolated over the
    # horizon its gain was expected over; the next decision's gain is corrected by it.
    realized = perf2["realized"]
    assert realized["counted"] == 1 and realized["pending"] == 0
    assert realized["realized_total"] == pytest.approx(
        row["gain_points"] * expected["horizon"], abs=1e-3
    )
    assert realized["usd_per_point_paid"] == pytest.approx(
        row["usd"] / (row["gain_points"] * expected["horizon"]), rel=1e-3
    )
    cost2 = estimate_cost(ctx2, validated)
    decision2 = cost_checkpoint(ctx2, validated, NO_DRIFT, perf2, cost2)
    memo = ctx2.ledger.decision(MODEL, "run-2")["details"]
    assert memo["realized"]["outcomes"][0]["run_id"] == "run-1"
    numbers = memo["numbers"]
    assert numbers["realized / expected ratio (shrunk)"].startswith(f"{realized['ratio']:.2f} ±")
    raw = perf2["gain"]["points"]
    assert numbers["estimator's gain before realized correction (pt·batches)"] == raw
    assert numbers["expected gain (pt·batches)"] == pytest.approx(
        max(0.0, realized["ratio"]) * raw, abs=1e-3
    )

    report = publish_report(
        ctx2,
        {"validated": validated, "performance": perf2, "cost": cost2, "decision": decision2},
    )
    page = Path(report["report"]).read_text()
    assert "<h2>Realized return</h2>" in page and "run-1" in page and "promoted" in page

    # A retry of the measurement records nothing twice and changes nothing.
    again = measure_performance(make_ctx(cfg, settings, "run-2", CLOCK + dt.timedelta(days=7)))
    assert realized_rows(ctx2.ledger, MODEL) == rows
    assert again["realized"]["ratio"] == realized["ratio"]


@pytest.mark.slow
def test_a_model_whose_retrains_never_pay_learns_to_stop(settings: Settings) -> None:
    """The shipped Weather config on Weather's own 30-day batches, from the first run that has
    a full training window. Weather barely drifts: the probe curve still finds a few points
    of regret in its noisy 90-row held-out windows, so the estimator alone keeps asking for
    retrains, and the promotion gate rejects each challenger — those retrains paid for
    nothing. Each rejection is a realized gain of exactly 0 against a promised one, the
    ratio falls (1/2, 1/3, ...), and the checkpoint turns to skip on a batch where the
    estimator's own gain would still have bought a retrain under the same limit."""
    cfg = factories.model("weather")
    install_registry(settings, "empty")
    frames = {f"m{i:03d}": part for i, (_, part) in enumerate(factories.batches("weather"))}
    names = list(frames)
    # The first model is trained with 29 monthly batches in (a full 24-batch training window
    # and the 3-batch held-out window are 27): see the module's note on the start.
    first = cfg.training.window_batches + cfg.evaluation.holdout_batches + 2
    ctx = make_ctx(cfg, settings, "run-first")
    accept_frames(settings, ctx.ledger, cfg, {n: frames[n] for n in names[:first]})
    _, _, decision, outcome = _run(ctx, names[first - 1])
    assert decision["action"] == "retrain" and outcome and outcome["action"] == "promote"

    history: list[tuple[str, str | None, dict[str, Any]]] = []
    stopped = None
    for t in range(first, first + 8):
        ctx = make_ctx(cfg, settings, f"run-{t:03d}", CLOCK + dt.timedelta(days=30 * t))
        accept_frames(settings, ctx.ledger, cfg, {names[t]: frames[names[t]]})
        _, _, decision, outcome = _run(ctx, names[t])
        memo = ctx.ledger.decision(cfg.name, ctx.run_id)["details"]
        history.append((decision["action"], outcome and outcome["action"], memo))
        raw = memo["numbers"].get("estimator's gain before realized correction (pt·batches)")
        if decision["action"] == "skip" and raw and memo["realized"]["counted"]:
            # Would the estimator's own gain have retrained, all else equal?
            inputs = CheckpointInputs(**_inputs(cfg, memo, raw))
            if decide(inputs, cfg.cost_policy).action == "retrain":
                stopped = memo
                break
    assert stopped is not None, [
        (
            a,
            o,
            m["reason"],
            m["gain"]["points"],
            m["cost"]["usd"],
            (m.get("realized") or {}).get("ratio"),
        )
        for a, o, m in history
    ]
    # Every retrain before the stop went through the gate and was rejected: none paid.
    retrains = [(a, o) for a, o, _ in history[:-1] if a == "retrain"]
    assert len(retrains) >= 2 and all(o == "reject" for _, o in retrains)
    realized = stopped["realized"]
    assert realized["counted"] == len(retrains) and realized["realized_total"] == 0.0
    assert [o["realized"] for o in realized["outcomes"]] == [0.0] * len(retrains)
    assert realized["ratio"] < 1 / len(retrains)  # at least as low as 1 / (1 + n)
    assert "per pt·batch" in stopped["reason"] and ">" in stopped["reason"]
    # The memo says what it would have been and why it is not.
    numbers = stopped["numbers"]
    assert (
        numbers["expected gain (pt·batches)"]
        < numbers["estimator's gain before realized correction (pt·batches)"]
    )
    assert f"{len(retrains)} retrain(s) measured" in numbers["realized return"]


def _inputs(cfg: ModelConfig, memo: dict[str, Any], raw_gain: float) -> dict[str, Any]:
    """The checkpoint's inputs as its memo recorded them, with the estimator's gain as it was
    before the realized correction."""
    cost = memo["cost"]
    return {
        "model": cfg.name,
        "has_champion": True,
        "labelled_rows": memo["numbers"]["labelled rows"],
        "min_train_rows": cfg.training.min_train_rows,
        "gain_points": raw_gain,
        "gain_low": memo["gain"]["low"],
        "gain_high": memo["gain"]["high"],
        "gain_basis": memo["gain"]["basis"],
        "cost_usd": cost["usd"],
        "cost_quality": cost["quality"],
        "cost_source": cost["source"],
        "spent_this_month_usd": cost["spent_this_month_usd"],
        "hours_since_last_retrain": cost["hours_since_last_retrain"],
        "metric": cfg.metric,
    }
