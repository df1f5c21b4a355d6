"""Challenger training, champion/challenger evaluation, promotion and rollback."""

from __future__ import annotations

import hashlib
import logging
from typing import Any

from costaware import data
from costaware.context import StepContext
from costaware.errors import NotEnoughData
from costaware.pipeline import BORN_TAG, POINTS_TAG, REFERENCE_TAG, champion_version, run_clock
from costaware.registry import CHALLENGER

log = logging.getLogger(__name__)


def run_key(ctx: StepContext, batch_id: str) -> str:
    return f"{ctx.model}/{batch_id}/{ctx.run_id}"


def _labelled_windows(ctx: StepContext) -> tuple[Any, data.Windows]:
    labelled = data.labelled_frame(ctx.settings, ctx.cfg)
    return labelled, data.split_windows(labelled, ctx.cfg)


def _y(ctx: StepContext, frame: Any) -> Any:
    return (frame[ctx.cfg.target.name] == ctx.cfg.target.positive).astype(int)


def train_challenger(ctx: StepContext, batch_id: str, usage_time: str | None) -> dict[str, Any]:
    """Train on the training window (never the held-out one) and register a challenger."""
    from costaware.costs import make_price_source
    from costaware.drift import SCORE_COLUMN
    from costaware.scoring import load_model_file, score
    from costaware.training import TrainingJob, get_backend

    cfg, t = ctx.cfg, ctx.cfg.training
    key = run_key(ctx, batch_id)
    existing = ctx.registry.find_version(ctx.model, key)
    if existing is not None:  # a retried task: the model of this run is already registered
        log.info("challenger v%s already registered for %s; not training again", existing, key)
        return {"version": existing, "reused": True, **_cost_of(ctx)}
    labelled, windows = _labelled_windows(ctx)
    train = labelled[labelled["batch_id"].isin(windows.train_batches)].copy()
    train[cfg.target.name] = _y(ctx, train)
    if len(train) < t.min_train_rows:
        raise NotEnoughData(f"{ctx.model}: {len(train)} training rows < {t.min_train_rows}")
    job_id = hashlib.sha256(key.encode()).hexdigest()[:16]
    workdir = ctx.settings.work(ctx.model) / job_id
    workdir.mkdir(parents=True, exist_ok=True)
    train_path = workdir / "train.parquet"
    train.to_parquet(train_path, index=False)
    job = TrainingJob(
        job_id=job_id,
        algorithm=t.algorithm,
        train_path=str(train_path),
        features=cfg.feature_names,
        target=cfg.target.name,
        params=t.params,
        num_boost_round=t.num_boost_round,
        chunk_rounds=t.chunk_rounds,
        seed=cfg.evaluation.seed,
        workdir=str(workdir),
    )
    prices = make_price_source(
        cfg.cost_policy.price_source, ctx.ledger, cfg.cost_policy.price_source_options
    )
    backend = get_backend(t.backend)(
        t.instance_type, t.region, prices, t.spot, t.billing_overhead_minutes, t.timeout_minutes
    )
    result = backend.submit(job)
    when = run_clock(usage_time)
    tags = {
        "model": cfg.tags.model,
        "team": cfg.tags.team,
        "env": cfg.tags.env,
        "purpose": "retrain",
    }
    ctx.ledger.record_cost(
        model=ctx.model,
        run_id=ctx.run_id,
        purpose="retrain",
        usd=result.usd,
        capacity=result.capacity,
        instance_type=result.instance_type,
        runtime_s=result.billed_s,
        interruptions=result.interruptions,
        price_source=result.price_source,
        usage_date=when,
        tags=tags,
    )
    # The training data and the new model's scores on it are the drift reference.
    model_obj = load_model_file(result.model_path)
    reference = train[cfg.feature_names].copy()
    reference[SCORE_COLUMN] = score(model_obj, train, cfg.feature_names)
    ref_dir = ctx.settings.home / "data" / ctx.model / "reference"
    ref_dir.mkdir(parents=True, exist_ok=True)
    ref_path = ref_dir / f"{job_id}.parquet"
    reference.to_parquet(ref_path, index=False)
    version = ctx.registry.register(
        ctx.model,
        result.model_path,
        t.algorithm,
        key,
        params={
            **t.params,
            "num_boost_round": t.num_boost_round,
            "train_batches": ",".join(windows.train_batches),
        },
        metrics={
            "train_rows": float(len(train)),
            "usd": result.usd,
            "interruptions": float(result.interruptions),
        },
        tags={
            "costaware.algorithm": t.algorithm,
            REFERENCE_TAG: str(ref_path),
            BORN_TAG: batch_id,
            "costaware.train_batches": ",".join(windows.train_batches),
            "costaware.holdout_batches": ",".join(windows.holdout_batches),
            **tags,
        },
    )
    ctx.registry.set_alias(ctx.model, CHALLENGER, version)
    attempts = " → ".join(f"{a.capacity}{'✗' if a.interrupted else '✓'}" for a in result.attempts)
    log.info(
        "challenger v%s of %s: %d rows from %s; attempts %s; $%.4f (%s)",
        version,
        ctx.model,
        len(train),
        windows.train_batches,
        attempts,
        result.usd,
        result.price_source,
    )
    return {
        "version": version,
        "reused": False,
        "train_rows": len(train),
        "train_batches": windows.train_batches,
        "usd": result.usd,
        "capacity": result.capacity,
        "interruptions": result.interruptions,
        "runtime_s": result.runtime_s,
        "attempts": attempts,
    }


def _cost_of(ctx: StepContext) -> dict[str, Any]:
    rows = [
        r for r in ctx.ledger.costs(model=ctx.model, purpose="retrain") if r["run_id"] == ctx.run_id
    ]
    if not rows:
        return {"usd": 0.0}
    r = rows[0]
    return {"usd": r["usd"], "capacity": r["capacity"], "interruptions": r["interruptions"]}


def evaluate_challenger(ctx: StepContext, version: str) -> dict[str, Any]:
    """Champion vs challenger on the same held-out window: paired bootstrap + guardrails."""
    import numpy as np

    from costaware.performance import metric_points, paired_bootstrap
    from costaware.scoring import score

    cfg, ev = ctx.cfg, ctx.cfg.evaluation
    labelled, windows = _labelled_windows(ctx)
    hold = labelled[labelled["batch_id"].isin(windows.holdout_batches)]
    y = _y(ctx, hold).to_numpy()
    chall = score(ctx.registry.load(ctx.model, version), hold, cfg.feature_names)
    champ_v = champion_version(ctx)
    guard = {
        "challenger scores are finite": bool(np.isfinite(chall).all()),
        "both classes in the held-out window": bool(0 < y.sum() < len(y)),
    }
    out: dict[str, Any] = {
        "challenger_version": version,
        "champion_version": champ_v,
        "holdout_batches": windows.holdout_batches,
        "rows": len(hold),
        "metric": cfg.metric,
        "min_gain_points": ev.min_gain_points,
    }
    if champ_v is None:
        pts = (
            metric_points(y, chall, cfg.metric)
            if guard["both classes in the held-out window"]
            else float("nan")
        )
        guard["better than chance"] = bool(pts == pts and (cfg.metric != "roc_auc" or pts > 50))
        ok = all(guard.values())
        out.update(
            challenger_points=pts,
            champion_points=None,
            gain=None,
            guardrails=guard,
            verdict="promote" if ok else "reject",
            reason="first model: guardrails pass"
            if ok
            else "first model failed guardrails: "
            + ", ".join(k for k, v in guard.items() if not v),
        )
        return out
    champ = score(ctx.registry.load(ctx.model, champ_v), hold, cfg.feature_names)
    guard["challenger differs from champion"] = not bool(np.allclose(champ, chall))
    cmp = paired_bootstrap(y, champ, chall, cfg.metric, ev.bootstrap, ev.confidence, ev.seed)
    wins = cmp.gain >= ev.min_gain_points and cmp.low > 0
    failed = [k for k, v in guard.items() if not v]
    if failed:
        verdict, reason = "reject", "guardrails failed: " + ", ".join(failed)
    elif not wins:
        verdict = "reject"
        reason = (
            f"challenger {cmp.gain:+.2f} pts, {cmp.confidence:.0%} interval "
            f"[{cmp.low:+.2f}, {cmp.high:+.2f}]: needs ≥ {ev.min_gain_points:g} pts "
            "with the interval above 0"
        )
    else:
        verdict = "promote"
        reason = (
            f"challenger {cmp.gain:+.2f} pts, {cmp.confidence:.0%} interval "
            f"[{cmp.low:+.2f}, {cmp.high:+.2f}] > 0 and ≥ {ev.min_gain_points:g} pts"
        )
    out.update(
        challenger_points=cmp.challenger,
        champion_points=cmp.champion,
        gain=cmp.gain,
        interval=[cmp.low, cmp.high],
        confidence=cmp.confidence,
        guardrails=guard,
        verdict=verdict,
        reason=reason,
    )
    log.info(
        "champion v%s vs challenger v%s on %s (%d rows): %s %.2f vs %.2f → %s: %s",
        champ_v,
        version,
        windows.holdout_batches,
        len(hold),
        cfg.metric,
        cmp.champion,
        cmp.challenger,
        verdict.upper(),
        reason,
    )
    return out


def promote_or_reject(
    ctx: StepContext, evaluation: dict[str, Any], usd: float, usage_time: str | None
) -> dict[str, Any]:
    """Move the aliases (or not) and write the audit row; safe to retry."""
    version = evaluation["challenger_version"]
    action = "promote" if evaluation["verdict"] == "promote" else "reject"
    old = ctx.registry.alias(ctx.model, "champion")
    if action == "promote":
        prev = ctx.registry.promote(ctx.model, version)
        ctx.registry.set_version_tag(
            ctx.model, version, POINTS_TAG, str(evaluation["challenger_points"])
        )
        from_v = prev if prev != version else None
    else:
        from_v = old
    when = run_clock(usage_time)
    metrics = {
        k: evaluation.get(k)
        for k in (
            "metric",
            "champion_points",
            "challenger_points",
            "gain",
            "interval",
            "rows",
            "holdout_batches",
        )
    }
    recorded = ctx.ledger.record_audit(
        model=ctx.model,
        action=action,
        actor=ctx.actor,
        run_id=ctx.run_id,
        from_version=from_v,
        to_version=version if action == "promote" else from_v,
        metrics=metrics,
        usd=usd,
        reason=evaluation["reason"],
        data_time=when,
    )
    decision = ctx.ledger.decision(ctx.model, ctx.run_id)
    if decision is not None:
        details = dict(decision["details"] or {})
        if evaluation.get("gain") is not None:
            details["realized_gain"] = evaluation["gain"]
        details["evaluation"] = evaluation
        ctx.ledger.record_decision(
            **{
                **{
                    k: decision[k]
                    for k in (
                        "model",
                        "run_id",
                        "batch_id",
                        "action",
                        "reason",
                        "dry_run",
                        "data_time",
                    )
                },
                "details": details,
                "outcome": "promoted" if action == "promote" else "rejected",
            }
        )
    log.info(
        "%s: %s v%s (champion was v%s)%s",
        ctx.model,
        action.upper(),
        version,
        old,
        "" if recorded else " — already recorded by an earlier try",
    )
    return {
        "action": action,
        "version": version,
        "previous_champion": old,
        "champion": ctx.registry.alias(ctx.model, "champion"),
    }


def rollback(ctx: StepContext, to_version: str | None = None, reason: str = "") -> dict[str, Any]:
    """champion ← the previous champion (or a named version), with an audit row."""
    if any(
        a["run_id"] == ctx.run_id and a["action"] == "rollback" for a in ctx.ledger.audit(ctx.model)
    ):  # a retried task: move nothing twice
        current = ctx.registry.alias(ctx.model, "champion")
        return {"from": None, "to": current, "note": "already rolled back by this run"}
    old, new = ctx.registry.rollback(ctx.model, to_version)
    ctx.ledger.record_audit(
        model=ctx.model,
        action="rollback",
        actor=ctx.actor,
        run_id=ctx.run_id,
        from_version=old,
        to_version=new,
        metrics={},
        usd=0.0,
        reason=reason or "manual rollback",
    )
    log.info("%s: ROLLBACK champion v%s → v%s by %s", ctx.model, old, new, ctx.actor)
    return {"from": old, "to": new}
