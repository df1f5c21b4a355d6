"""Showback / chargeback: who spent what, from any cost source that can list every charge.

``showback`` groups a source's charges by any dimension or several (``team,env``,
``tag:cost-center``, ``service``, ``account``, ``region``): a FOCUS export through one
streaming pass of pyarrow (``focus_stream``, any size, its anomalies and reconciliation
attached), the ledger through ``load_charges`` (one flat row per charge). ``summarize`` is a
pure function of such a table; ``write_report`` writes the CSV and an HTML page with a chart.
Untagged spend — charges that lack the chosen key — is shown, never spread over the teams:
its share and its biggest resources are the point of the report.
A charge whose amount is unknown (a ledger attempt that died unpriced) has ``usd`` NaN: sums
cover the known amounts and the unknown ones are counted beside them, never shown as $0.
"""

from __future__ import annotations

import base64
import datetime as dt
import html
import io
import re
from dataclasses import dataclass
from typing import Any

import pandas as pd

from costaware.costs.focus_stream import DERIVED_DIMS, parse_by
from costaware.errors import ConfigError, CostSourceError
from costaware.store import storage
from costaware.store.storage import Loc

DIMENSIONS = ("model", "team", "env")  # the ledger's; a FOCUS export groups by anything
# Grouped with every showback so the daily, monthly, purpose and capacity views come free.
CONTEXT = ("usage_date", "purpose", "capacity", "reconciled")
UNTAGGED = "(untagged)"
COLUMNS = [
    "usage_date",
    "usd",
    "model",
    "team",
    "env",
    "purpose",
    "capacity",
    "resource_id",
    "service",
    "reconciled",
]


def load_charges(source: Any, start: dt.date, end: dt.date) -> pd.DataFrame:
    """Every charge in [start, end) from a source that can list them all: ``focus`` (its
    ``charges``) or ``ledger`` (the runs it recorded)."""
    if hasattr(source, "scan"):
        # One row per day x resource x tags x capacity, by the streaming reader: the table
        # stays small whatever the size of the export.
        dims = [c for c in COLUMNS if c != "usd"]
        df = source.scan(dims, start, end).frame
        out = df[dims].copy()
        out.insert(1, "usd", df["usd"].astype(float))
        out["reconciled"] = out["reconciled"].astype(bool)
    elif hasattr(source, "ledger"):
        rows = source.ledger.costs(
            start=dt.datetime.combine(start, dt.time()), end=dt.datetime.combine(end, dt.time())
        )
        out = pd.DataFrame(
            [
                {
                    "usage_date": r["usage_date"].date(),
                    "usd": float("nan") if r["usd"] is None else float(r["usd"]),
                    "model": r["model"],
                    "team": (r["tags"] or {}).get("team"),
                    "env": (r["tags"] or {}).get("env"),
                    "purpose": r["purpose"],
                    "capacity": r["capacity"],
                    "resource_id": r["run_id"],
                    "service": "costaware training",
                    "reconciled": False,
                }
                for r in rows
            ],
            columns=COLUMNS,
        )
    else:
        raise CostSourceError(
            f"showback needs a source that lists every charge; {getattr(source, 'name', source)!r}"
            " cannot; use 'focus' (a FOCUS export of the same cloud) or 'ledger'"
        )
    return out[COLUMNS].reset_index(drop=True)


@dataclass(frozen=True)
class Showback:
    start: dt.date
    end: dt.date
    by: str  # the dimensions, comma-separated: "team", "team,env", "tag:cost center"
    total_usd: float
    untagged_usd: float  # charges lacking any of the chosen keys
    untagged_share: float
    by_key: pd.DataFrame  # key, <dims...>, usd, share, unknown
    daily: pd.DataFrame  # usage_date x key
    monthly: pd.DataFrame  # month x key
    purpose: dict[str, float]  # retrain / serve / untagged
    capacity: dict[str, float]  # spot / on_demand / committed / other
    top_untagged: pd.DataFrame  # resource_id, service, usd
    unreconciled_usd: float
    unknown_charges: int = 0  # charges of unknown amount, not in any sum above
    dims: tuple[str, ...] = ()
    untagged_by_dim: dict[str, float] | None = None  # per chosen key: spend lacking it
    load_report: dict[str, Any] | None = None  # a FOCUS export's anomalies, merges, totals


def showback(
    source: Any, by: str | list[str], start: dt.date, end: dt.date, top: int = 5
) -> tuple[Showback, pd.DataFrame]:
    """Cost by ``by`` in [start, end) and the table it was summed from. A FOCUS source is
    read in one streaming pass grouped by exactly what the report needs."""
    dims = parse_by(by)
    if hasattr(source, "scan"):
        result = source.scan([*dims, *(c for c in CONTEXT if c not in dims)], start, end, top)
        charges = result.frame
        s = summarize(
            charges,
            dims,
            start,
            end,
            top,
            top_untagged=result.top_untagged,
            load_report=result.report(),
        )
        return s, charges
    charges = load_charges(source, start, end)
    return summarize(charges, dims, start, end, top), charges


def summarize(
    charges: pd.DataFrame,
    by: str | list[str],
    start: dt.date,
    end: dt.date,
    top: int = 5,
    top_untagged: pd.DataFrame | None = None,
    load_report: dict[str, Any] | None = None,
) -> Showback:
    dims = parse_by(by) if not isinstance(by, str) or by not in charges.columns else [by]
    allowed = [c for c in (*DIMENSIONS, *charges.columns) if c not in ("usd", "reconciled")]
    for d in dims:
        if d not in charges.columns:
            raise ConfigError(
                f"showback by {d!r}; allowed: {list(dict.fromkeys(allowed))} for this source "
                "(a FOCUS export groups by any tag:KEY, service, account or region)"
            )
    df = charges.copy()
    value_dims = [d for d in dims if d not in DERIVED_DIMS]
    lacking = pd.Series(False, index=df.index)
    for d in value_dims:
        lacking |= df[d].isna()
    if len(dims) == 1:
        df["key"] = df[dims[0]].astype(object).where(df[dims[0]].notna(), UNTAGGED)
    else:
        df["key"] = [
            " / ".join(UNTAGGED if pd.isna(v) else str(v) for v in row)
            for row in df[dims].itertuples(index=False)
        ]
    df["month"] = pd.to_datetime(df["usage_date"]).dt.strftime("%Y-%m")
    total = float(df["usd"].sum())
    untagged = float(df.loc[lacking, "usd"].sum())
    by_key = (
        df.groupby("key", as_index=False, dropna=False)["usd"]
        .sum()
        .sort_values("usd", ascending=False)
    )
    if len(dims) > 1:
        first = df.drop_duplicates("key").set_index("key")[dims]
        by_key = by_key.join(first, on="key")[["key", *dims, "usd"]]
    by_key["share"] = by_key["usd"] / total if total else 0.0
    # How many of each key's charges are of unknown amount (its usd is the known part).
    unknown = df["usd"].isna()
    by_key["unknown"] = by_key["key"].map(df[unknown].groupby("key").size()).fillna(0).astype(int)
    daily = df.pivot_table(
        index="usage_date", columns="key", values="usd", aggfunc="sum", fill_value=0.0
    )
    monthly = df.pivot_table(
        index="month", columns="key", values="usd", aggfunc="sum", fill_value=0.0
    )
    purpose = df["purpose"].fillna(UNTAGGED) if "purpose" in df else pd.Series(UNTAGGED, df.index)
    capacity = df["capacity"].fillna("other (not compute, or committed)")
    if top_untagged is None:
        top_untagged = (
            df[lacking]
            .groupby(["resource_id", "service"], dropna=False, as_index=False)["usd"]
            .sum()
            .sort_values("usd", ascending=False)
            .head(top)
            .reset_index(drop=True)
        )
    return Showback(
        start=start,
        end=end,
        by=",".join(dims),
        total_usd=total,
        untagged_usd=untagged,
        untagged_share=untagged / total if total else 0.0,
        by_key=by_key.reset_index(drop=True),
        daily=daily,
        monthly=monthly,
        purpose={str(k): float(v) for k, v in df.groupby(purpose)["usd"].sum().items()},
        capacity={str(k): float(v) for k, v in df.groupby(capacity)["usd"].sum().items()},
        top_untagged=top_untagged,
        unreconciled_usd=float(df.loc[~df["reconciled"].astype(bool), "usd"].sum()),
        unknown_charges=int(unknown.sum()),
        dims=tuple(dims),
        untagged_by_dim={d: float(df.loc[df[d].isna(), "usd"].sum()) for d in value_dims},
        load_report=load_report,
    )


def _unknown(n: int) -> str:
    return f" + {n} unknown" if n else ""


def _money(usd: float, unknown: int, width: int = 0) -> str:
    """``$1.50``, ``$1.50 + 2 unknown``, or ``unknown (2)`` when nothing is known: never $0."""
    if unknown and usd == 0:
        return f"{f'unknown ({unknown})':>{width + 1}}"
    return f"${usd:>{width},.2f}{_unknown(unknown)}"


def render_text(s: Showback) -> str:
    lines = [
        f"cost by {s.by}, {s.start} .. {s.end} (end exclusive): "
        f"{_money(s.total_usd, s.unknown_charges)}"
    ]
    lines += [
        f"  {r.key:<22} {_money(float(r.usd), int(r.unknown), 10)}  {r.share:6.1%}"
        for r in s.by_key.itertuples()
    ]
    lines.append("  purpose: " + ", ".join(f"{k} ${v:,.2f}" for k, v in sorted(s.purpose.items())))
    lines.append(
        "  capacity: " + ", ".join(f"{k} ${v:,.2f}" for k, v in sorted(s.capacity.items()))
    )
    biggest = "; biggest:" if len(s.top_untagged) else ""
    lines.append(f"  untagged: ${s.untagged_usd:,.2f} ({s.untagged_share:.1%} of spend){biggest}")
    lines += [
        f"    {'(no resource id)' if pd.isna(r.resource_id) else r.resource_id} "
        f"({r.service}) ${r.usd:,.2f}"
        for r in s.top_untagged.itertuples()
    ]
    if s.untagged_by_dim and len(s.untagged_by_dim) > 1:
        lines.append(
            "  lacking each key: "
            + ", ".join(f"{k} ${v:,.2f}" for k, v in s.untagged_by_dim.items())
        )
    if s.unreconciled_usd:
        lines.append(f"  not yet final (billing lag): ${s.unreconciled_usd:,.2f}")
    lines += _load_lines(s.load_report)
    if s.unknown_charges:
        lines.append(
            f"  unknown amount: {s.unknown_charges} charge(s) (attempts that died before they "
            "were priced); every total above is the known part only"
        )
    return "\n".join(lines)


def _load_lines(report: dict[str, Any] | None) -> list[str]:
    """What loading the export found: the reconciliation, every anomaly, every key merge."""
    if not report:
        return []
    rec = report["reconciliation"]
    lines = [
        f"  export: {rec['rows_read']:,} charges read, {rec['rows_in_window']:,} in the window; "
        f"EffectiveCost ${rec['grouped_effective']:,.2f} and BilledCost "
        f"${rec['grouped_billed']:,.2f} reconcile to the file's own sums "
        f"(${rec['window_effective']:,.2f}, ${rec['window_billed']:,.2f})"
    ]
    if report.get("skipped_files"):
        lines.append(f"  superseded export runs not read: {len(report['skipped_files'])} file(s)")
    for a in report["anomalies"]:
        example = f"; e.g. {a['examples'][0]}" if a["examples"] else ""
        lines.append(
            f"  {a['severity']} {a['kind']}: {a['rows']:,} charge(s), "
            f"${a['effective_usd']:,.2f} effective: {a['what']}{example}"
        )
    for key, spellings in report.get("tag_key_merges", {}).items():
        lines.append(f"  tag key {key!r} merged from {spellings}")
    return lines


def _chart_png(s: Showback) -> bytes:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 4), gridspec_kw={"width_ratios": [3, 1]})
    if s.daily.empty or s.monthly.empty:  # a new deployment: nothing spent yet
        ax1.text(0.5, 0.5, f"no costs from {s.start} to {s.end}", ha="center", va="center")
        ax1.set_axis_off()
        ax2.set_axis_off()
        return _png(fig, plt)
    daily = s.daily.copy()
    daily.index = pd.to_datetime(daily.index)
    # Legend labels are tag values from cloud APIs; an unescaped "$" starts matplotlib's
    # mathtext, and a malformed formula there fails the whole report.
    daily.columns = [str(c).replace("$", r"\$") for c in daily.columns]
    # Lines, not stacked areas: credits make some days negative.
    daily.plot(ax=ax1, linewidth=1.5)
    ax1.set_title(f"Daily cost by {s.by} (USD)")
    ax1.set_xlabel("")
    s.monthly.plot.bar(ax=ax2, stacked=True, legend=False)
    ax2.set_title("Monthly (USD)")
    ax2.set_xlabel("")
    fig.tight_layout()
    return _png(fig, plt)


def _png(fig: Any, plt: Any) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90)
    plt.close(fig)
    return buf.getvalue()


def write_report(charges: pd.DataFrame, s: Showback, out_dir: str | Loc) -> dict[str, str]:
    """``showback_<by>_<start>_<end>.csv`` (every charge) and ``.html`` (tables + chart), in a
    folder or under an object-storage prefix."""
    out = storage.ensure_dir(storage.location(out_dir) if isinstance(out_dir, str) else out_dir)
    by = re.sub(r"[^A-Za-z0-9_.-]+", "_", s.by)
    stem = f"showback_{by}_{s.start}_{s.end}"
    csv_path, html_path = out / f"{stem}.csv", out / f"{stem}.html"
    storage.write_text(csv_path, charges.sort_values(["usage_date", "usd"]).to_csv(index=False))
    png = base64.b64encode(_chart_png(s)).decode()

    def table(df: pd.DataFrame) -> str:
        # Tag values, resource ids and service names come from cloud APIs: always escaped.
        return df.to_html(float_format=lambda v: f"{v:,.2f}", border=0, classes="t", escape=True)

    by = html.escape(s.by)

    body = f"""<!doctype html><html><head><meta charset="utf-8">
<title>costaware showback by {by}</title>
<style>body{{font-family:sans-serif;margin:2em}} .t td,.t th{{padding:2px 10px;text-align:right}}
</style></head><body>
<h1>Cost by {by}: {html.escape(str(s.start))} to {html.escape(str(s.end))} (end exclusive)</h1>
<p>Total <b>${s.total_usd:,.2f}</b>. Untagged <b>${s.untagged_usd:,.2f}
({s.untagged_share:.1%})</b>. Not yet final (billing lag): ${s.unreconciled_usd:,.2f}.</p>
<img alt="daily and monthly cost by {by}" src="data:image/png;base64,{png}">
<h2>By {by}</h2>{table(s.by_key)}
<h2>Retraining vs serving</h2>{table(pd.Series(s.purpose, name="usd").to_frame())}
<h2>Spot vs on-demand</h2>{table(pd.Series(s.capacity, name="usd").to_frame())}
<h2>Biggest untagged resources</h2>{table(s.top_untagged)}
<h2>Loading the export</h2><pre>{html.escape(chr(10).join(_load_lines(s.load_report)))}</pre>
<h2>Monthly</h2>{table(s.monthly)}
<h2>Daily</h2>{table(s.daily)}
</body></html>"""
    storage.write_text(html_path, body)
    return {"csv": storage.text(csv_path), "html": storage.text(html_path)}
