"""publish_report: one HTML page per run that says what happened and why."""

from __future__ import annotations

import html
import json
import logging
from typing import Any

from costaware.faults import step_points
from costaware.steps.context import StepContext
from costaware.store import storage

log = logging.getLogger(__name__)

_CSS = """body{font:14px system-ui,sans-serif;margin:2em;max-width:980px;color:#222}
table{border-collapse:collapse;margin:.5em 0 1.5em}td,th{border:1px solid #ccc;padding:4px 8px;
text-align:left;vertical-align:top}th{background:#f3f3f3}.retrain{color:#0a7}.skip{color:#777}
.approve{color:#c70}.promote{color:#0a7}.reject{color:#c33}.DRIFT{color:#c33;font-weight:bold}
.fallback{color:#c33}"""


# Every value on the page may come from data or a cloud API (batch file names, column names,
# validation findings, tags): text is escaped, and a CSS class is only ever one of these.
_CLASSES = frozenset({"retrain", "skip", "approve", "promote", "reject", "DRIFT"})


def _cls(name: Any) -> str:
    return str(name) if str(name) in _CLASSES else ""


def _table(rows: list[tuple[str, Any]]) -> str:
    body = "".join(
        f"<tr><th>{html.escape(str(k))}</th><td>{html.escape(_fmt(v))}</td></tr>" for k, v in rows
    )
    return f"<table>{body}</table>"


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:,.4f}"
    if isinstance(v, (list, dict)):
        return json.dumps(v, default=str)
    return "—" if v is None else str(v)


def approval_outcome(answer: dict[str, Any] | None) -> str:
    """A person's answer to an ``approve`` decision (the approve_retrain task's result), in
    the ledger's words: approved, rejected by <who>, timed out, or not approved."""
    if not answer or not answer.get("chosen_options"):
        return "not approved"  # no answer recorded: the approval task never finished
    user = answer.get("responded_by_user") or {}
    who = user.get("name") or user.get("id")
    if not who:
        return "timed out"  # the timeout applies the default (Reject) with no responder
    if answer["chosen_options"] == ["Approve"]:
        return "approved"
    return f"rejected by {who}"[:40]  # the ledger's outcome column holds 40 characters


def _final_outcome(
    action: str,
    decision: dict[str, Any],
    outcome: dict[str, Any],
    approval: dict[str, Any] | None = None,
) -> str:
    """What became of the run, in the words the ledger's ``outcome`` column uses."""
    if outcome.get("action") == "promote":
        return "promoted"
    if outcome.get("action") == "reject":
        return "rejected"
    if decision.get("dry_run"):
        return "dry_run"
    if action == "approve":
        return approval_outcome(approval)
    return {"skip": "skipped"}.get(action, "trained")


def _realized_section(r: dict[str, Any]) -> str:
    """Expected vs realized gain of every retrain that went through the gate, and the
    ratio that corrected this run's expected gain."""
    head = _table(
        [
            ("realized / expected (shrunk)", f"{r['ratio']:.2f} ± {r['ratio_se']:.2f}"),
            ("raw ratio Σ realized / Σ expected", r.get("raw_ratio")),
            ("retrains measured / pending", f"{r['counted']} / {r['pending']}"),
            ("expected (pt·batches)", r.get("expected_total")),
            ("realized (pt·batches)", r.get("realized_total")),
            ("$ per pt·batch expected", r.get("usd_per_point_expected")),
            ("$ per pt·batch paid", r.get("usd_per_point_paid")),
            ("prior", r.get("prior")),
        ]
    )
    cells = ("run", "verdict", "expected", "horizon", "batches", "realized ± se", "$", "$/pt paid")
    rows = "".join(
        "<tr>"
        + "".join(
            f"<td>{html.escape(_fmt(v))}</td>"
            for v in (
                o["run_id"],
                "promoted" if o["promoted"] else "rejected",
                o["expected"],
                o["horizon"],
                o["batches"],
                "pending" if o["realized"] is None else f"{o['realized']} ± {o['realized_se']}",
                o["cost_usd"],
                o["usd_per_point_paid"],
            )
        )
        + "</tr>"
        for o in r.get("outcomes", [])
    )
    per = "".join(f"<th>{c}</th>" for c in cells)
    return (
        "<h2>Realized return</h2>"
        f"<p>{html.escape(str(r.get('text', '')))}</p>"
        + head
        + (f"<table><tr>{per}</tr>{rows}</table>" if rows else "")
    )


@step_points
def publish_report(ctx: StepContext, results: dict[str, Any]) -> dict[str, Any]:
    """Write ``reports/<model>/<batch>/index.html`` + ``summary.json``; finish the ledger row."""
    validated = results.get("validated") or {}
    batch_id = validated.get("batch_id", "no-batch")
    folder = ctx.report_dir(batch_id)
    decision = results.get("decision") or {}
    outcome = results.get("outcome") or {}
    evaluation = results.get("evaluation") or {}
    drift = results.get("drift") or {}
    action = decision.get("action", "none")
    final = _final_outcome(action, decision, outcome, results.get("approval"))
    if decision:
        row = ctx.ledger.decision(ctx.model, ctx.run_id)
        if row is not None and row["outcome"] != final:
            ctx.ledger.set_outcome(ctx.model, ctx.run_id, final)
    parts = [
        f"<h1>{html.escape(ctx.model)} — batch {html.escape(batch_id)}</h1>",
        f"<p>run <code>{html.escape(ctx.run_id)}</code></p>",
        f"<h2>Decision: <span class='{_cls(action)}'>{html.escape(str(action).upper())}</span>"
        f" → {html.escape(final)}</h2>",
        f"<p>{html.escape(decision.get('reason', ''))}</p>",
    ]
    cost = results.get("cost") or {}
    if cost.get("fallback"):  # the estimate is not what the configured source said
        parts.append(
            f"<p class='fallback'><b>{html.escape(str(cost.get('fallback_text')))}</b></p>"
        )
    if cost.get("spent_this_month_unknown"):
        parts.append(f"<p>Spent this month: {html.escape(str(cost['spent_this_month_text']))}</p>")
    placement = cost.get("placement")
    if placement:  # a cloud spot job with several allowed instance types or zones
        parts.append(
            f"<p><b>Where to train:</b> {html.escape(str(placement['reason']))}</p>"
            + "".join(f"<p>{html.escape(str(n))}</p>" for n in placement.get("notes", []))
            + _table(
                [
                    (
                        f"{o['instance_type']} {o['zone']}",
                        f"spot ${o['spot_usd_per_hour']}/h, score {o['score']}, "
                        f"${o['expected_usd_per_hour']} per finished hour",
                    )
                    for o in placement.get("options", [])
                ]
            )
        )
    if action == "approve":
        answer = approval_outcome(results.get("approval"))
        if answer == "approved":
            user = results["approval"].get("responded_by_user") or {}
            who = user.get("name") or user.get("id")
            parts.append(f"<p><b>Approved by {html.escape(str(who))}</b>.</p>")
        else:
            parts.append(
                f"<p><b>Needed a person's approval and did not get it</b> "
                f"({html.escape(answer)}). To retrain anyway, trigger this DAG again with "
                "<code>force</code> ticked.</p>"
            )
    led = ctx.ledger.decision(ctx.model, ctx.run_id)
    if led is not None:
        det = led["details"]
        parts.append("<h3>Checkpoint numbers</h3>" + _table(list(det.get("numbers", {}).items())))
        parts.append("<h3>Thresholds</h3>" + _table(list(det.get("thresholds", {}).items())))
    realized = (results.get("performance") or {}).get("realized")
    if realized:
        parts.append(_realized_section(realized))
    parts.append(
        "<h2>Validation (Great Expectations)</h2>"
        + _table(
            [
                ("status", validated.get("status")),
                ("rows", validated.get("rows")),
                ("sha256", validated.get("sha256")),
                ("warnings", validated.get("warnings")),
                ("report", "validation.json"),
            ]
        )
    )
    if drift.get("columns"):
        rows = [
            (
                c["column"],
                f"{c['method']} {c['score'] if c['score'] is None else round(c['score'], 4)}"
                f" / {c['threshold']} {'DRIFT' if c['drifted'] else 'ok'}",
            )
            for c in drift["columns"] + ([drift["prediction"]] if drift.get("prediction") else [])
        ]
        parts.append(
            "<h2>Drift (Evidently)</h2>"
            + _table(rows)
            + "<p><a href='drift.html'>Evidently report</a></p>"
        )
    elif drift.get("skipped"):
        parts.append(f"<h2>Drift</h2><p>{html.escape(drift['skipped'])}</p>")
    if results.get("training"):
        parts.append("<h2>Training</h2>" + _table(list(results["training"].items())))
    if evaluation:
        parts.append(
            f"<h2>Champion / challenger: <span class='{_cls(evaluation.get('verdict'))}'>"
            f"{html.escape(str(evaluation.get('verdict', '')).upper())}</span></h2>"
            + _table([(k, v) for k, v in evaluation.items() if k != "verdict"])
        )
    storage.write_text(
        folder / "index.html",
        f"<!doctype html><meta charset=utf-8><title>{html.escape(f'{ctx.model} {batch_id}')}"
        "</title>"
        f"<style>{_CSS}</style>" + "\n".join(parts),
    )
    summary = {
        "model": ctx.model,
        "batch_id": batch_id,
        "run_id": ctx.run_id,
        "action": action,
        "outcome": final,
        **{k: v for k, v in results.items()},
    }
    storage.write_json(folder / "summary.json", summary)
    log.info("report for %s batch %s: %s", ctx.model, batch_id, folder / "index.html")
    return {"report": storage.text(folder / "index.html"), "outcome": final}
