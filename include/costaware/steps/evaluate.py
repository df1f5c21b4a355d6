"""Champion vs challenger on the same held-out window: paired bootstrap and guardrails."""

from __future__ import annotations

import logging
from typing import Any

from costaware.faults import step_points
from costaware.steps.context import StepContext
from costaware.steps.train import _labelled_windows, _y

log = logging.getLogger(__name__)


@step_points
def evaluate_challenger(ctx: StepContext, version: str) -> dict[str, Any]:
    """Champion vs challenger on the same held-out window: paired bootstrap + guardrails."""
    import numpy as np

    from costaware.decide.performance import metric_points, paired_bootstrap
    from costaware.models.scoring import score

    cfg, ev = ctx.cfg, ctx.cfg.evaluation
    labelled, windows = _labelled_windows(ctx)
    hold = labelled[labelled["batch_id"].isin(windows.holdout_batches)]
    y = _y(ctx, hold).to_numpy()
    chall = score(ctx.registry.load(ctx.model, version), hold, cfg.feature_names)
    champ_v = ctx.champion()
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
