"""Drift at scale: Evidently's preset vs costaware's drift step vs one NumPy binning pass.

    python bench/drift.py            # 1,000,000 rows × 20 numeric (+ 10 categorical) columns
    python bench/drift.py --quick    # 200,000 rows

Every case runs in its own subprocess that first builds the same frames (fixed seed) and then
reports wall time and peak RSS (``ru_maxrss``); "extra memory" is a case's peak minus the peak
of the case that only builds the data. Times are also given as ratios to the NumPy pass
measured in the same run. Writes bench/results/drift.md.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
NUM_COLS = 20
CAT_COLS = 10
THRESHOLDS = {"psi": 0.2, "wasserstein": 0.1, "jensenshannon": 0.1, "ks": 0.05}


def frames(kind: str, rows: int, scenario: str = "shift") -> tuple[pd.DataFrame, pd.DataFrame]:
    """Reference and current. ``shift``: column j moved by 0.03 × j standard deviations (0 to
    0.57; a few land near each threshold); ``ks``: every column by 0.05 sd; ``same``: current is
    a new draw of the same distributions."""
    rng = np.random.default_rng(0)
    if kind == "num":
        scales = 1 + np.arange(NUM_COLS) % 4
        ref = pd.DataFrame(
            rng.normal(size=(rows, NUM_COLS)) * scales, columns=[f"x{j}" for j in range(NUM_COLS)]
        )
        if scenario == "shift":
            shift = 0.03 * np.arange(NUM_COLS)
        elif scenario == "ks":
            shift = np.full(NUM_COLS, 0.05)
        else:
            shift = np.zeros(NUM_COLS)
        cur = pd.DataFrame(
            (rng.normal(size=(rows, NUM_COLS)) + shift) * scales, columns=ref.columns
        )
        return ref, cur
    cats = np.array([f"c{i:02d}" for i in range(12)])
    base = np.linspace(1, 3, cats.size)
    ref, cur = {}, {}
    for j in range(CAT_COLS):
        p = base / base.sum()
        q = p * np.exp(0.12 * j * np.linspace(-1, 1, cats.size)) if scenario == "shift" else p
        q = q / q.sum()
        ref[f"k{j}"] = pd.Categorical(rng.choice(cats, size=rows, p=p), categories=cats)
        cur[f"k{j}"] = pd.Categorical(rng.choice(cats, size=rows, p=q), categories=cats)
    return pd.DataFrame(ref).astype(object), pd.DataFrame(cur).astype(object)


def model_cfg(columns: list[str], categorical: bool, method: str | None) -> object:
    """A model config for the synthetic frames (default drift settings when method is None)."""
    from costaware.config import ModelConfig

    drift = {} if method is None else {"method": method, "threshold": THRESHOLDS[method]}
    return ModelConfig.model_validate(
        {
            "name": "bench_drift",
            "data": {"source": "none.parquet", "batch_rows": 1},
            "features": [
                {"name": c, "type": "categorical" if categorical else "numeric"} for c in columns
            ],
            "target": {"name": "y"},
            "validation_suite": "none",
            "drift": drift,
            "cost_policy": {
                "max_usd_per_point_batch": 1,
                "auto_approve_usd": 1,
                "monthly_budget_usd": 1,
            },
            "tags": {"model": "bench_drift", "team": "bench"},
        }
    )


def numpy_floor(ref: pd.DataFrame, cur: pd.DataFrame, categorical: bool) -> None:
    """One binning pass per column: 30 equal-width bins over the reference range (numeric) or
    one hash-counting pass (categorical; NumPy has no hash counting, pandas' is the floor)."""
    for c in ref.columns:
        if categorical:
            ref[c].value_counts()
            cur[c].value_counts()
            continue
        r = ref[c].to_numpy()
        lo, hi = float(r.min()), float(r.max())
        np.histogram(r, bins=30, range=(lo, hi))
        np.histogram(cur[c].to_numpy(), bins=30, range=(lo, hi))


def run_case(case: str, kind: str, rows: int) -> dict:
    parts = case.split(":")
    name, arg = parts[0], (parts[1] if len(parts) > 1 else "")
    scenario = parts[2] if len(parts) > 2 else "shift"
    ref, cur = frames(kind, rows, scenario)
    cat = kind == "cat"
    out: dict = {}
    if True:  # imports are not what is measured: load them (in every case) before the clock
        import evidently.presets  # noqa: F401
        import scipy.spatial  # noqa: F401
        import scipy.stats  # noqa: F401

        import costaware.batches.drift  # noqa: F401
    t0 = time.perf_counter()
    if name == "numpy":
        numpy_floor(ref, cur, cat)
    elif name == "preset":
        from evidently import DataDefinition, Dataset, Report
        from evidently.presets import DataDriftPreset

        cols = list(ref.columns)
        dd = DataDefinition(
            numerical_columns=[] if cat else cols, categorical_columns=cols if cat else []
        )
        Report([DataDriftPreset(method=arg, threshold=THRESHOLDS[arg])]).run(
            current_data=Dataset.from_pandas(cur, data_definition=dd),
            reference_data=Dataset.from_pandas(ref, data_definition=dd),
        )
    elif name in ("evidently", "costaware"):
        from costaware.batches.drift import measure_drift

        method = arg if arg in THRESHOLDS else None
        cfg = model_cfg(list(ref.columns), cat, method)
        if arg == "identical":
            cur = ref.copy()
        if arg == "nulls":
            ref["x0"] = np.nan
            cur["x1"] = np.nan
        engine = "evidently" if name == "evidently" else "auto"
        res = measure_drift(ref, cur, cfg, engine=engine)
        out["verdicts"] = {c.column: c.drifted for c in res.columns}
        out["scores"] = {c.column: c.score for c in res.columns}
        out["warnings"] = res.warnings
    out["seconds"] = time.perf_counter() - t0
    out["maxrss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return out


def subprocess_case(case: str, kind: str, rows: int) -> dict:
    cmd = [sys.executable, __file__, "--case", case, "--kind", kind, "--rows", str(rows)]
    res = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if res.returncode:
        raise RuntimeError(f"{case} failed:\n{res.stderr[-3000:]}")
    return json.loads(res.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=None)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--case")
    ap.add_argument("--kind", default="num")
    ap.add_argument("--out", default=str(ROOT / "bench" / "results"))
    a = ap.parse_args(argv)
    rows = a.rows or (200_000 if a.quick else 1_000_000)
    if a.case:
        print(json.dumps(run_case(a.case, a.kind, rows)))
        return 0
    t_all = time.perf_counter()
    plan = {
        "num": [
            "base",
            "numpy",
            "preset:psi",
            "preset:ks",
            *[f"evidently:{m}" for m in ("psi", "wasserstein", "jensenshannon")],
            *[f"costaware:{m}" for m in ("psi", "wasserstein", "jensenshannon", "default")],
            "evidently:ks:ks",
            "costaware:default:ks",
            "costaware:identical",
            "costaware:default:same",
            "costaware:nulls",
        ],
        "cat": [
            "base",
            "numpy",
            "preset:psi",
            *[f"evidently:{m}" for m in ("psi", "jensenshannon")],
            *[f"costaware:{m}" for m in ("psi", "jensenshannon", "default")],
        ],
    }
    results: dict[tuple[str, str], dict] = {}
    for kind, cases in plan.items():
        for case in cases:
            print(f"{kind} {case} …", end=" ", flush=True)
            r = subprocess_case(case, kind, rows)
            results[(kind, case)] = r
            print(f"{r['seconds']:.2f} s, peak {r['maxrss_mb']:.0f} MB", flush=True)
    text = report(results, rows, a.quick)
    text += f"\nWall time of the whole benchmark: {time.perf_counter() - t_all:.0f} s.\n"
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"drift{'_quick' if a.quick else ''}.md"
    path.write_text(text)
    print(text)
    print(f"wrote {path}")
    return 0


def report(results: dict, rows: int, quick: bool) -> str:
    lines = [
        "# Drift at scale (`make bench-drift`)",
        "",
        f"Generated by `bench/drift.py{' --quick' if quick else ''}`: {rows:,} reference + "
        f"{rows:,} current rows; {NUM_COLS} numeric columns (column j shifted by 0.03·j sd) and "
        f"a {CAT_COLS}-column categorical variant (12 categories, shifted shares). Each case runs "
        "in its own process (imports loaded before the clock starts); extra memory = peak RSS "
        "minus the peak of a process that imports the same modules and builds the data.",
        "",
    ]
    for kind, title in (("num", "numeric"), ("cat", "categorical")):
        base = results[(kind, "base")]
        floor = results[(kind, "numpy")]["seconds"]
        lines += [
            f"## {title}",
            "",
            "| case | wall s | × NumPy pass | extra memory MB | drifted columns |",
            "|---|---:|---:|---:|---|",
        ]
        for (k, case), r in results.items():
            if k != kind or case == "base":
                continue
            v = r.get("verdicts")
            drifted = "" if v is None else f"{sum(v.values())}/{len(v)}"
            lines.append(
                f"| {case} | {r['seconds']:.2f} | {r['seconds'] / floor:.1f} | "
                f"{r['maxrss_mb'] - base['maxrss_mb']:.0f} | {drifted} |"
            )
        lines.append("")
        lines += ["Verdicts, costaware (full data) vs Evidently (full data), per column:", ""]
        for m in ("psi", "wasserstein", "jensenshannon"):
            e, c = results.get((kind, f"evidently:{m}")), results.get((kind, f"costaware:{m}"))
            if not e or not c:
                continue
            same = sum(e["verdicts"][x] == c["verdicts"][x] for x in e["verdicts"])
            diff = max(
                abs(e["scores"][x] - c["scores"][x])
                for x in e["scores"]
                if e["scores"][x] is not None
            )
            lines.append(
                f"- {m} (threshold {THRESHOLDS[m]}): {same}/{len(e['verdicts'])} verdicts equal, "
                f"max |score difference| {diff:.2e}"
            )
        lines.append("")
    n = results.get(("num", "costaware:nulls"))
    if n:
        lines.append(f"All-null columns: no crash; warnings: {n['warnings']}")
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
