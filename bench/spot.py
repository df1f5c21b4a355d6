"""Spot training on the ``local`` backend: what interruptions cost, what spot saves, and
whether a resumed model is exactly the uninterrupted one.

    python bench/spot.py                # Elec2's training job, hazards 0 / low / high / every
    python bench/spot.py --seeds 3      # fewer draws per hazard

One fixed training job: Elec2's first ``training.window_batches`` weeks (8 × 336 rows, target
encoded as the retrain step encodes it) with the model's own training settings from
include/models/elec2.yaml (XGBoost, 120 rounds in chunks of 20, subsampling on, m5.2xlarge,
6 min billing overhead per attempt, at most 2 spot reclaims before the on-demand fallback,
the static price table). It runs on the real ``local`` backend: a worker subprocess per
attempt, a reclaim is a real SIGTERM, a resumed attempt starts from the checkpoint on disk.

Per hazard (the chance that a spot attempt is reclaimed before it ends; see HAZARDS for what
"low" and "high" are) the job runs once per seed (``SpotSpec.seed``; the draw key is the same
for every hazard, so seed s draws the same numbers at every hazard). Every number is compared
with the uninterrupted on-demand run of the same job in the same process (median of
``--baseline-runs``): wall time as a ratio, $ as a difference, and the final model's
predictions on the training rows and on the next week, which must be identical. Writes
bench/results/spot.md.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

os.environ.setdefault("OMP_NUM_THREADS", "1")  # the worker runs with one thread; so do we

ROOT = Path(__file__).resolve().parents[1]
DRAW_KEY = "elec2/spot-bench"


@dataclass(frozen=True)
class Hazard:
    label: str
    rate: float  # SpotSpec.interruption_rate: P(a spot attempt is reclaimed before it ends)
    why: str


# AWS's Spot Instance Advisor sorts instance types into interruption-frequency bands "<5 %",
# "5-10 %", ..., ">20 %" (the share of capacity reclaimed over the trailing month). "low" and
# "high" take the two outer band edges as the chance that one attempt of this job is
# reclaimed. That is a pessimistic reading: an attempt of this job bills ~10 min (6 min
# overhead + ~4 min expected runtime), and a 5 % / 20 % per-HOUR hazard over 10 minutes is
# only 0.85 % / 3.65 % per attempt. "every" is the bound: each spot attempt is reclaimed until
# max_interruptions sends the job to on-demand. Nothing here was chosen on results.
HAZARDS = (
    Hazard("0", 0.0, "no reclaim"),
    Hazard("low", 0.05, "AWS band <5 %, read per attempt"),
    Hazard("high", 0.20, "AWS band >20 %, read per attempt"),
    Hazard("every", 1.0, "every spot attempt reclaimed (bound)"),
)


@dataclass(frozen=True)
class Setup:
    cfg: Any  # ModelConfig
    train_path: Path
    train: Any  # the training frame (features + encoded target)
    holdout: Any  # the week after the training window
    num_boost_round: int
    chunk_rounds: int


def prepare(
    workroot: Path,
    weeks: int | None = None,
    num_boost_round: int | None = None,
    chunk_rounds: int | None = None,
) -> Setup:
    """Elec2's training frame (its first ``weeks`` weeks, default ``window_batches``) and
    the week after it, written where the worker reads it."""
    import pandas as pd

    from costaware.app.replay import load_source, split_batches
    from costaware.config import get_model
    from costaware.models.algorithms import encode_target

    cfg = get_model(ROOT / "include" / "models", "elec2")
    t = cfg.training
    weeks = t.window_batches if weeks is None else weeks
    parts = [p for _, p in split_batches(cfg, load_source(cfg, ROOT))]
    if weeks < 1 or weeks >= len(parts):
        raise ValueError(f"weeks={weeks}: Elec2 has {len(parts)} weeks; use 1..{len(parts) - 1}")
    cols = [*cfg.feature_names, cfg.target.name]
    train = pd.concat(parts[:weeks])[cols].reset_index(drop=True)
    train[cfg.target.name] = encode_target(train[cfg.target.name], cfg)
    holdout = parts[weeks][cols].reset_index(drop=True)
    workroot.mkdir(parents=True, exist_ok=True)
    train_path = workroot / "train.parquet"
    train.to_parquet(train_path)
    return Setup(
        cfg,
        train_path,
        train,
        holdout,
        t.num_boost_round if num_boost_round is None else num_boost_round,
        t.chunk_rounds if chunk_rounds is None else chunk_rounds,
    )


def run_job(
    setup: Setup, workdir: Path, rate: float, seed: int, spot: bool, max_interruptions: int
) -> dict[str, Any]:
    """One run of the job on a fresh folder: its result, wall time and final model."""
    from costaware.config import SpotSpec
    from costaware.costs.prices import StaticPriceSource
    from costaware.models.algorithms import model_spec
    from costaware.models.scoring import load_model_file
    from costaware.models.training import TrainingJob, run_to_end
    from costaware.models.training.local import LocalBackend

    cfg, t = setup.cfg, setup.cfg.training
    shutil.rmtree(workdir, ignore_errors=True)
    job = TrainingJob(
        job_id=workdir.name,
        algorithm=t.algorithm,
        train_path=str(setup.train_path),
        features=cfg.feature_names,
        target=cfg.target.name,
        params=t.params,
        num_boost_round=setup.num_boost_round,
        chunk_rounds=setup.chunk_rounds,
        seed=cfg.evaluation.seed,
        workdir=str(workdir),
        tags={"model": "elec2", "purpose": "bench"},
        model_spec=model_spec(cfg),
        draw_key=DRAW_KEY,
    )
    backend = LocalBackend(
        t.instance_type,
        t.region,
        StaticPriceSource(),
        SpotSpec(
            enabled=spot, interruption_rate=rate, max_interruptions=max_interruptions, seed=seed
        ),
        t.billing_overhead_minutes,
        t.timeout_minutes,
    )
    t0 = time.perf_counter()
    result = run_to_end(backend, job, poll_s=0.05)
    wall = time.perf_counter() - t0
    # Rounds trained across all attempts, from where each attempt started and ended.
    trained = sum(
        min(setup.chunk_rounds, setup.num_boost_round - i * setup.chunk_rounds)
        for a in result.attempts
        for i in range(a.start_chunk, a.end_chunk)
    )
    return {
        "wall_s": wall,
        "result": result,
        "model": load_model_file(result.model_path),
        "attempts": len(result.attempts),
        "reclaims": result.interruptions,
        "capacity": result.capacity,
        "rounds_redone": trained - setup.num_boost_round,
        "usd": result.usd,
        "saved_usd": result.saved_usd,
    }


def exactness(base: Any, other: Any, setup: Setup) -> tuple[bool, float]:
    """(the boosters' saved bytes are identical, max |Δ P(positive)| on training rows and the
    next week) between two final models."""
    import numpy as np

    same = bytes(base.estimator.save_raw("ubj")) == bytes(other.estimator.save_raw("ubj"))
    diff = 0.0
    for frame in (setup.train, setup.holdout):
        x = frame[setup.cfg.feature_names]
        p0 = np.asarray(base.predict_proba(x))
        p1 = np.asarray(other.predict_proba(x))
        diff = max(diff, float(np.max(np.abs(p0 - p1))))
    return same, diff


def run(
    setup: Setup,
    workroot: Path,
    hazards: tuple[Hazard, ...] = HAZARDS,
    seeds: int = 5,
    baseline_runs: int = 3,
    max_interruptions: int | None = None,
    log: Any = print,
) -> dict[str, Any]:
    """The on-demand baseline, then every hazard × seed; numbers per run and per hazard."""
    mi = (
        setup.cfg.training.spot.max_interruptions
        if max_interruptions is None
        else max_interruptions
    )
    base_runs = [
        run_job(setup, workroot / f"on-demand-{i}", 0.0, 0, False, mi) for i in range(baseline_runs)
    ]
    base = base_runs[0]
    base_wall = statistics.median(r["wall_s"] for r in base_runs)
    base_usd = statistics.median(r["usd"] for r in base_runs)
    log(f"on-demand baseline: {base_wall:.2f} s (median of {baseline_runs}), ${base_usd:.5f}")
    rows = []
    for h in hazards:
        runs = []
        for seed in range(seeds):
            r = run_job(setup, workroot / f"{h.label}-{seed}", h.rate, seed, True, mi)
            same, diff = exactness(base["model"], r["model"], setup)
            runs.append(
                {
                    "seed": seed,
                    "wall_ratio": r["wall_s"] / base_wall,
                    "wall_s": r["wall_s"],
                    "reclaims": r["reclaims"],
                    "attempts": r["attempts"],
                    "capacity": r["capacity"],
                    "rounds_redone": r["rounds_redone"],
                    "usd": r["usd"],
                    "saved_vs_on_demand": base_usd - r["usd"],
                    "backend_saved_usd": r["saved_usd"],
                    "identical": same,
                    "max_abs_diff": diff,
                }
            )
            log(
                f"hazard {h.label} seed {seed}: {r['reclaims']} reclaims, "
                f"{r['wall_s']:.2f} s, ${r['usd']:.5f}, identical={same}, max|Δp|={diff:g}"
            )
        rows.append({"hazard": h, "runs": runs})
    return {
        "baseline_wall_s": base_wall,
        "baseline_walls": [r["wall_s"] for r in base_runs],
        "baseline_usd": base_usd,
        "baseline_model": base["model"],
        "baseline_identical": all(
            exactness(base["model"], r["model"], setup)[0] for r in base_runs[1:]
        ),
        "rows": rows,
        "num_boost_round": setup.num_boost_round,
        "chunk_rounds": setup.chunk_rounds,
        "train_rows": len(setup.train),
        "max_interruptions": mi,
        "seeds": seeds,
    }


def _spread(values: list[float], fmt: str) -> str:
    lo, hi = min(values), max(values)
    mean = statistics.fmean(values)
    if f"{lo:{fmt}}" == f"{hi:{fmt}}":
        return f"{mean:{fmt}}"
    return f"{mean:{fmt}} [{lo:{fmt}}–{hi:{fmt}}]"


def table(res: dict[str, Any]) -> str:
    """The markdown table: one row per hazard, mean [min–max] over the seeds."""
    lines = [
        "| hazard | P(reclaim) per spot attempt | runs | runs reclaimed | reclaims | "
        "rounds redone | wall × on-demand | $ per run | $ saved vs on-demand run | "
        "backend's saved $ | identical models | max abs Δ P |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
        f"| on-demand (baseline) | – | {len(res['baseline_walls'])} | – | – | – | "
        f"1 ({res['baseline_wall_s']:.2f} s) | {res['baseline_usd']:.5f} | – | – | – | – |",
    ]
    for row in res["rows"]:
        h, runs = row["hazard"], row["runs"]
        lines.append(
            f"| {h.label} | {h.rate:g} | {len(runs)} | "
            f"{sum(r['reclaims'] > 0 for r in runs)} | "
            f"{_spread([r['reclaims'] for r in runs], '.1f')} | "
            f"{_spread([r['rounds_redone'] for r in runs], '.0f')} | "
            f"{_spread([r['wall_ratio'] for r in runs], '.2f')} | "
            f"{_spread([r['usd'] for r in runs], '.5f')} | "
            f"{_spread([r['saved_vs_on_demand'] for r in runs], '.5f')} | "
            f"{_spread([r['backend_saved_usd'] for r in runs], '.5f')} | "
            f"{sum(r['identical'] for r in runs)}/{len(runs)} | "
            f"{max(r['max_abs_diff'] for r in runs):g} |"
        )
    return "\n".join(lines)


def report(res: dict[str, Any], seconds: float) -> str:
    cfg_line = (
        f"Elec2, {res['train_rows']} training rows, XGBoost {res['num_boost_round']} rounds "
        f"in chunks of {res['chunk_rounds']}, max {res['max_interruptions']} spot reclaims "
        f"then on-demand; {res['seeds']} seeds per hazard"
    )
    hazards = "\n".join(
        f"- **{r['hazard'].label}** ({r['hazard'].rate:g}): {r['hazard'].why}" for r in res["rows"]
    )
    return (
        "# Spot training on the local backend: interruptions, $ and exactness\n\n"
        f"`python bench/spot.py` ({time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, "
        f"{os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f} at the end, "
        f"{seconds:.0f} s in all). {cfg_line}.\n\n"
        f"{table(res)}\n\n"
        "Mean [min–max] over the seeds. Wall time is a ratio to the median of the on-demand "
        f"runs in the same process ({', '.join(f'{w:.2f}' for w in res['baseline_walls'])} s); "
        "$ is the backend's bill: (6 min start-up overhead + wall time) × the static price of "
        "each attempt's capacity (m5.2xlarge: $0.384/h on demand, $0.148/h spot). \"$ saved "
        "vs on-demand run\" is the baseline's bill minus this run's (it pays for the extra "
        'attempts); "backend\'s saved $" is `TrainingResult.saved_usd` (one uninterrupted '
        "on-demand run — one start-up + the attempts' wall time — minus what all attempts "
        "cost: it should match the column before it up to the runs' wall-time noise). "
        "Identical: the final boosters' saved bytes are equal to the on-demand run's; max abs "
        "Δ P is over the training rows and the week after. On-demand runs identical to each "
        f"other: {res['baseline_identical']}.\n\n"
        f"Hazards:\n{hazards}\n"
    )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--baseline-runs", type=int, default=3)
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "spot.md")
    args = ap.parse_args(argv)
    if args.seeds < 1 or args.baseline_runs < 1:
        ap.error("--seeds and --baseline-runs must be at least 1")
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="spot-bench-") as tmp:
        setup = prepare(Path(tmp))
        res = run(setup, Path(tmp), seeds=args.seeds, baseline_runs=args.baseline_runs)
    text = report(res, time.perf_counter() - t0)
    args.out.write_text(text)
    print(text)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
