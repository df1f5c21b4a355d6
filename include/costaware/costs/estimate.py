"""What will the next retrain cost? Past runs by tag × today's price."""

from __future__ import annotations

import datetime as dt
import statistics

from costaware.config import ModelConfig
from costaware.costs.base import Capacity, CostEstimate, CostSource, PriceSource


def estimate_retrain_cost(
    cfg: ModelConfig,
    cost_source: CostSource,
    price_source: PriceSource,
    today: dt.date,
    lookback_days: int = 90,
) -> CostEstimate:
    """Median cost of the model's recent retrains, re-priced at today's price when the
    history says how many hours each run used; the static prior when there is no history."""
    t = cfg.training
    capacity: Capacity = "spot" if t.spot.enabled else "on_demand"
    price = price_source.price(t.instance_type, t.region, capacity)
    tags = {"model": cfg.tags.model, "team": cfg.tags.team, "env": cfg.tags.env}
    start = today - dt.timedelta(days=lookback_days)
    records = cost_source.costs(tags, start, today + dt.timedelta(days=1), purpose="retrain")

    if not records:
        hours = (t.expected_runtime_minutes + t.billing_overhead_minutes) / 60.0
        on_demand = price_source.price(t.instance_type, t.region, "on_demand")
        usd = hours * price.usd_per_hour
        return CostEstimate(
            usd=usd,
            low=usd,
            # Worst case: every spot attempt is lost and the run ends on on-demand.
            high=hours * on_demand.usd_per_hour * (1 + 0.5 * t.spot.max_interruptions),
            quality="static" if price.quality == "static" else "estimated",
            source=f"{cost_source.name} (no history) + {price.source}",
            basis=(
                f"no retrain of {cfg.name} in the last {lookback_days} days: "
                f"{hours * 60:.0f} min expected × ${price.usd_per_hour:.4f}/h {capacity}"
            ),
            history_runs=0,
            price=price,
        )

    # Re-price runs whose hours are known; keep billed dollars for the others.
    per_run = [
        r.usage_hours * price.usd_per_hour if r.usage_hours is not None else r.usd for r in records
    ]
    reconciled = all(r.reconciled for r in records)
    usd = statistics.median(per_run)
    return CostEstimate(
        usd=usd,
        low=min(per_run),
        high=max(per_run),
        quality="reconciled" if reconciled else "estimated",
        source=f"{cost_source.name} + {price.source}",
        basis=(
            f"median of {len(per_run)} retrain(s) since {start.isoformat()} "
            f"at ${price.usd_per_hour:.4f}/h {capacity}"
        ),
        history_runs=len(per_run),
        price=price,
    )
