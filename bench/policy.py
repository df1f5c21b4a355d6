"""Retraining economics on real drifting data, through the DAG's own decision path.

    python bench/policy.py                  # every stream and variant → bench/results/policy.md
    python bench/policy.py --quick          # a smoke run: Elec2's first 30 weeks (< 60 s)
    python bench/policy.py --streams elec2 weather

Every stream is replayed by ``costaware.decide.backtest`` — the engine of ``costaware
backtest``: the model's configured metric, the probe and the champion's own training
settings, the label delay and window, ``estimate_gain_probe`` + ``decide`` for the costaware
policy, and the same promotion gate (``evaluation.judge``) for every policy, so a rejected
challenger costs its retrain and changes nothing. Total cost in $ = the limit ($ per metric
point × batch) × the served models' shortfall from a perfect score (points × batches) +
retrain $ (+ the probes' compute for costaware). κ sets the limit: a retrain is worth
100 κ metric points × batches, i.e. limit = retrain $ / (100 κ). Ratios are to the hindsight
oracle at the same limit. See bench/README.md.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
KAPPAS = (0.005, 0.02, 0.05, 0.2)
PERIODS = (1, 2, 4, 8, 13, 26)
COSTAWARE, ORACLE, BEST_PERIODIC = "costaware", "oracle (hindsight)", "periodic (best k, hindsight)"
LOW_DRIFT = {"weather"}  # the goal there: within 1.02× of the oracle
WEEKLY = "elec2"  # the goal there: within 1.05× of the oracle
# What the costaware row's retrains returned, measured as the DAG measures it (Realized).
REALIZED = (
    "counted",
    "pending",
    "ratio",
    "ratio_se",
    "raw_ratio",
    "expected_total",
    "realized_total",
    "cost_total",
    "usd_per_point_expected",
    "usd_per_point_paid",
)


@dataclass(frozen=True)
class Variant:
    label: str
    model: str
    models_dir: str = "include/models"
    changes: dict[str, dict[str, Any]] = field(default_factory=dict)


VARIANTS = [
    Variant("elec2", "elec2"),
    Variant("elec2 168 rows", "elec2", changes={"data": {"batch_rows": 168}}),
    Variant("elec2 504 rows", "elec2", changes={"data": {"batch_rows": 504}}),
    Variant("elec2 delay 3", "elec2", changes={"data": {"label_delay_batches": 3}}),
    Variant("elec2 window 6", "elec2", changes={"training": {"window_batches": 6}}),
    Variant("elec2 window 12", "elec2", changes={"training": {"window_batches": 12}}),
    Variant("weather", "weather"),
    Variant("flights_lga", "flights_lga", "examples/models"),
    Variant("storms", "storms", "examples/models"),
    Variant("hotel_rates", "hotel_rates", "examples/models"),
]


def variant_config(v: Variant) -> Any:
    from costaware.config import ModelConfig, get_model

    cfg = get_model(ROOT / v.models_dir, v.model)
    raw = cfg.model_dump(mode="python")
    for section, values in v.changes.items():
        raw[section] = {**raw[section], **values}
    return ModelConfig.model_validate(raw)


def run_variant(v: Variant, max_batches: int | None, log: Any) -> dict[str, Any]:
    from costaware.app.backtest import load_stream, make_book
    from costaware.decide.backtest import PolicySpec, oracle, run

    t0 = time.perf_counter()
    cfg = variant_config(v)
    stream = load_stream(cfg, ROOT, max_batches)
    book = make_book(stream, progress=log).build()
    fit_s = time.perf_counter() - t0
    log(f"{v.label}: {len(stream.batches)} batches, models fitted in {fit_s:.0f} s")
    fixed = [PolicySpec("never")] + [PolicySpec("periodic", k) for k in PERIODS]
    fixed.append(PolicySpec("drift"))
    outcomes = {p.name: run(book, p) for p in fixed}  # κ changes only what they cost
    rows: dict[str, dict[float, dict[str, Any]]] = {}
    for kappa in KAPPAS:
        limit = book.usd / (100 * kappa)
        best = oracle(book, limit)
        mine = run(book, PolicySpec("costaware"), limit)
        per = {name: r for name, r in outcomes.items() if name.startswith("periodic")}
        bp_name = min(per, key=lambda n: per[n].total(limit))
        table = {**outcomes, COSTAWARE: mine, BEST_PERIODIC: per[bp_name], ORACLE: best}
        for name, r in table.items():
            rows.setdefault(name, {})[kappa] = {
                "ratio": r.total(limit) / best.total(limit),
                "retrains": r.retrains,
                "rejections": r.rejections,
                "usd": r.total(limit),
                "spend": r.spend,
                "points": r.mean_points,
                "k": bp_name.split(":")[1] if name == BEST_PERIODIC else "",
            }
        got = mine.realized or {}
        rows[COSTAWARE][kappa]["realized"] = {k: got.get(k) for k in REALIZED}
        log(
            f"{v.label} κ={kappa}: costaware {rows[COSTAWARE][kappa]['ratio']:.3f} "
            f"({mine.retrains} retrains, {mine.rejections} rejected), best periodic "
            f"{rows[BEST_PERIODIC][kappa]['ratio']:.3f}, oracle {best.retrains} retrains; "
            f"realized {realized_text(rows[COSTAWARE][kappa]['realized'])}"
        )
    return {
        "label": v.label,
        "model": v.model,
        "kind": cfg.target.kind,
        "metric": cfg.metric,
        "batches": len(stream.batches),
        "batch_rows": cfg.data.batch_rows,
        "delay": cfg.data.label_delay_batches,
        "window": cfg.training.window_batches,
        "steps": mine.steps,
        "retrain_usd": book.usd,
        "rows": rows,
        "seconds": time.perf_counter() - t0,
    }


def realized_text(r: dict[str, Any] | None) -> str:
    """The realized return of costaware's retrains in a few words (a table cell)."""
    if not r or r.get("counted") is None:
        return "not measured"
    if not r["counted"]:
        return f"none measured ({r['pending']} pending)"
    paid = r["usd_per_point_paid"]
    paid_text = "?" if paid is None else ("∞" if paid == "inf" else f"${paid:.4g}")
    return (
        f"{r['realized_total']:.1f} of {r['expected_total']:.1f} pt·batches over "
        f"{r['counted']} retrains (raw {r['raw_ratio']:.2f}, shrunk {r['ratio']:.2f}), "
        f"{paid_text}/pt·batch paid"
    )


def goals(res: dict[str, Any]) -> dict[float, list[str]]:
    """Which of issue 12's goals the costaware row meets at each κ (words for the table)."""
    out = {}
    for kappa in KAPPAS:
        mine = res["rows"][COSTAWARE][kappa]["ratio"]
        others = {
            n: r[kappa]["ratio"] for n, r in res["rows"].items() if n not in (COSTAWARE, ORACLE)
        }
        rival = min(others, key=lambda n: others[n])
        notes = [
            "≤ all others: met"
            if mine <= others[rival] + 1e-9
            else f"≤ all others: MISSED ({rival} {others[rival]:.3f})"
        ]
        if res["label"] == WEEKLY:
            notes.append("≤ 1.05× oracle: " + ("met" if mine <= 1.05 else "MISSED"))
        if res["label"] in LOW_DRIFT:
            notes.append("≤ 1.02× oracle: " + ("met" if mine <= 1.02 else "MISSED"))
        out[kappa] = notes
    return out


def markdown(results: list[dict[str, Any]], quick: bool, wall: float) -> str:
    lines = [
        "# Retraining economics through the DAG's decision path (`bench/policy.py`)",
        "",
        f"Generated by `bench/policy.py{' --quick' if quick else ''}` in {wall:.0f} s. Every "
        "policy runs through `costaware.decide.backtest` (the engine of `costaware backtest`) "
        "and the same promotion gate; a retrain is priced as the model's training settings say. "
        "Ratio = total $ / hindsight oracle's at the same limit (limit = retrain $ / (100 κ) "
        "per metric point × batch); retrains in brackets, rejected ones after the slash.",
        "",
        "## Goals (issue 12), costaware row",
        "",
        "| stream | " + " | ".join(f"κ={k}" for k in KAPPAS) + " |",
        "|---|" + "---|" * len(KAPPAS),
    ]
    for res in results:
        g = goals(res)
        cells = [f"{res['rows'][COSTAWARE][k]['ratio']:.3f}: " + "; ".join(g[k]) for k in KAPPAS]
        lines.append(f"| {res['label']} | " + " | ".join(cells) + " |")
    for res in results:
        lines += [
            "",
            f"## {res['label']} — {res['kind']}, {res['metric']}; {res['batches']} batches of "
            f"{res['batch_rows']} rows, label delay {res['delay']}, window {res['window']}; "
            f"{res['steps']} steps from the first champion; a retrain ${res['retrain_usd']:.4f}",
            "",
            "| policy | " + " | ".join(f"κ={k}" for k in KAPPAS) + " |",
            "|---|" + "---:|" * len(KAPPAS),
        ]
        for name, per in res["rows"].items():
            cells = []
            for k in KAPPAS:
                r = per[k]
                extra = f" k={r['k']}" if r["k"] else ""
                rej = f"/{r['rejections']}" if r["rejections"] else ""
                cells.append(f"{r['ratio']:.3f} ({r['retrains']}{rej}{extra})")
            bold = "**" if name == COSTAWARE else ""
            lines.append(f"| {bold}{name}{bold} | " + " | ".join(cells) + " |")
        lines.append("")
        lines.append(
            "Mean metric points served at κ=0.02: "
            + ", ".join(
                f"{n} {per[0.02]['points']:.2f}"
                for n, per in res["rows"].items()
                if n in ("never", "periodic:1", COSTAWARE, ORACLE)
            )
            + f". Wall time {res['seconds']:.0f} s."
        )
        lines += [
            "",
            "Realized return of the costaware row's retrains, measured as the DAG measures it "
            "(realized of expected pt·batches, the raw and shrunk ratio that corrects the "
            "next gain, $ per pt·batch actually paid):",
            "",
        ]
        lines += [
            f"- κ={k}: {realized_text(res['rows'][COSTAWARE][k].get('realized'))}" for k in KAPPAS
        ]
    return "\n".join(lines) + "\n"


def plot(results: list[dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(9, 5))
    for res in results:
        mine = [res["rows"][COSTAWARE][k]["ratio"] for k in KAPPAS]
        rival = [
            min(r[k]["ratio"] for n, r in res["rows"].items() if n not in (COSTAWARE, ORACLE))
            for k in KAPPAS
        ]
        (line,) = ax.plot(KAPPAS, mine, marker="o", label=f"{res['label']} costaware")
        ax.plot(KAPPAS, rival, ls=":", marker="x", color=line.get_color())
    ax.axhline(1.05, color="grey", ls="--", lw=0.8)
    ax.axhline(1.02, color="grey", ls=":", lw=0.8)
    ax.set_xscale("log")
    ax.set_xlabel("κ (a retrain is worth 100 κ metric points × batches)")
    ax.set_ylabel("total cost / hindsight oracle")
    ax.set_title("costaware (solid) vs best other policy incl. best periodic (dotted)")
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def render(files: list[str], out: Path) -> int:
    """One report from the JSON of runs made in parallel (``--streams`` split over processes)."""
    results, wall = [], 0.0
    out.mkdir(parents=True, exist_ok=True)
    for f in files:
        for res in json.loads(Path(f).read_text()):
            res["rows"] = {
                n: {float(k): v for k, v in per.items()} for n, per in res["rows"].items()
            }
            results.append(res)
            wall += res["seconds"]
    order = [v.label for v in VARIANTS]
    results.sort(key=lambda r: order.index(r["label"]))
    (out / "policy.md").write_text(markdown(results, False, wall))
    plot(results, out / "policy.png")
    print(f"wrote {out / 'policy.md'} and policy.png from {len(results)} streams")
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--streams", nargs="+", default=None, help="labels of VARIANTS to run")
    ap.add_argument("--max-batches", type=int, default=None, help="cut each stream")
    ap.add_argument("--quick", action="store_true", help="Elec2's first 30 weeks only")
    ap.add_argument("--out", default=str(ROOT / "bench" / "results"))
    ap.add_argument(
        "--render", nargs="+", default=None, help="policy*.json files of earlier runs: one report"
    )
    a = ap.parse_args(argv)
    if a.render:
        return render(a.render, Path(a.out))
    wanted = a.streams or (["elec2"] if a.quick else [v.label for v in VARIANTS])
    unknown = sorted(set(wanted) - {v.label for v in VARIANTS})
    if unknown:
        ap.error(f"unknown stream(s) {unknown}; available: {[v.label for v in VARIANTS]}")
    max_batches = a.max_batches or (30 if a.quick else None)
    t0 = time.perf_counter()

    def log(msg: str) -> None:
        print(f"[{time.perf_counter() - t0:6.0f} s] {msg}", flush=True)

    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    suffix = "_quick" if a.quick else ""
    results = []
    for label in wanted:  # in the order asked; each stream's numbers are kept as it ends
        results.append(run_variant(next(v for v in VARIANTS if v.label == label), max_batches, log))
        (out / f"policy{suffix}.json").write_text(json.dumps(results, indent=1, default=str))
    text = markdown(results, a.quick, time.perf_counter() - t0)
    (out / f"policy{suffix}.md").write_text(text)
    plot(results, out / f"policy{suffix}.png")
    print(text)
    print(f"wrote {out / f'policy{suffix}.md'}, .json and .png", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
