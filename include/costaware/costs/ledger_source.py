"""The ``ledger`` cost source: what the project's own training attempts recorded.

One record per attempt (a run that was interrupted or retried has several). An attempt whose
amount is not known (``usd`` NULL: its process died before it was priced) is passed on as
``usd=None``; so is an unknown runtime. Consumers sum the known amounts and count the rest."""

from __future__ import annotations

import datetime as dt

from costaware.costs.base import CostRecord
from costaware.store.ledger import Ledger


class LedgerCostSource:
    name = "ledger"

    def __init__(self, ledger: Ledger) -> None:
        self.ledger = ledger

    def costs(
        self, tags: dict[str, str], start: dt.date, end: dt.date, purpose: str = "retrain"
    ) -> list[CostRecord]:
        rows = self.ledger.costs(
            model=tags.get("model"),
            start=dt.datetime.combine(start, dt.time()),
            end=dt.datetime.combine(end, dt.time()),
            purpose=purpose,
        )
        out = []
        for r in rows:
            row_tags = {str(k): str(v) for k, v in (r["tags"] or {}).items()}
            if any(row_tags.get(k) != v for k, v in tags.items()):
                continue
            out.append(
                CostRecord(
                    usage_date=r["usage_date"].date(),
                    usd=None if r["usd"] is None else float(r["usd"]),
                    source=f"ledger ({r['price_source']})",
                    # Our own runtime × a price: an estimate until a bill confirms it.
                    reconciled=False,
                    purpose=r["purpose"],
                    capacity=r["capacity"],
                    usage_hours=None if r["runtime_s"] is None else float(r["runtime_s"]) / 3600,
                    run_id=r["run_id"],
                    instance_type=r["instance_type"],
                    tags=row_tags,
                    attempt=r.get("attempt"),
                    status=r.get("status") or "final",
                )
            )
        return out
