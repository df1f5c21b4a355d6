"""Retraining economics on real drifting data: does costaware's checkpoint pay?

    python bench/policy.py                   # Elec2 + Weather, 3 seeds → bench/results/
    python bench/policy.py --quick           # 1 seed, shorter streams (a smoke run)
    python bench/policy.py --models elec2 --seeds 5

Total cost = misclassifications + κ × batch rows × retrains (+ the probes' compute, priced
the same way), for κ ∈ {0.005, 0.02, 0.05, 0.2}; in dollars, a retrain costs what the model's
price settings say (expected runtime + billing overhead × the static spot price) and κ sets
what a misclassification is worth. The costaware policy is ``costaware.decide.gain`` +
``costaware.decide.policy.decide`` — the code the DAG runs — fed by the same simulation as every
other policy. See bench/README.md for the results and how to read them.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from policy_sim import (  # noqa: E402
    Matrix,
    Outcome,
    State,
    Stream,
    bench_policy,
    cara,
    error_jump,
    error_matrix,
    load_stream,
    never,
    oracle,
    periodic,
    simulate,
)

from costaware.batches.drift import measure_drift  # noqa: E402
from costaware.config import get_model  # noqa: E402
from costaware.costs.prices import StaticPriceSource  # noqa: E402
from costaware.decide.gain import (  # noqa: E402
    PROBE_AGES,
    estimate_gain_probe,
    regret_curve,
    regret_se,
)
from costaware.decide.policy import CheckpointInputs, decide  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
KAPPAS = (0.005, 0.02, 0.05, 0.2)
PERIODS = (1, 2, 4, 8, 13, 26)
BEST_PERIODIC = "periodic (best k, hindsight)"
COSTAWARE = "costaware checkpoint"
BLIND = "costaware, noise-blind (before)"


def retrain_usd(stream: Stream) -> tuple[float, float]:
    """(retrain $, worker $/s) from the model's training settings and the static price table."""
    t = stream.cfg.training
    prices = StaticPriceSource()
    cap = "spot" if t.spot.enabled else "on_demand"
    hourly = prices.price(t.instance_type, t.region, cap).usd_per_hour
    on_demand = prices.price(t.instance_type, t.region, "on_demand").usd_per_hour
    minutes = t.expected_runtime_minutes + t.billing_overhead_minutes
    return minutes / 60 * hourly, on_demand / 3600


def costaware_policy(
    stream: Stream,
    m: Matrix,
    kappa: float,
    probe_usd_ratio: float,
    noise_aware: bool = True,
    pool: bool = True,
    **kw,
):
    """The checkpoint as the DAG runs it: probe regret curve → estimate_gain_probe → decide.
    ``noise_aware``: also the regrets' sampling standard errors; ``pool``: also the batch's
    rows and the champion's earlier regrets. ``kw`` go to estimate_gain_probe."""
    d, s0, b = stream.delay, stream.first_step, stream.batch_rows
    usd, _ = retrain_usd(stream)
    # κ × batch rows misclassifications per retrain = 100 κ accuracy points × batches, so a
    # point × batch is worth usd / (100 κ): the user's cost-per-gain limit.
    limit = usd / (100 * kappa)
    policy = bench_policy(kappa)
    decisions: list[str] = []

    def rule(t: int, st: State) -> bool:
        newest = t - d
        curves = st.memo.setdefault("curves", [])
        ses = st.memo.setdefault("ses", [])
        y = stream.y[newest]
        if newest - 1 >= s0:
            older = [
                m.scores.get((newest - a, newest)) if newest - a >= s0 else None
                for a in range(1, PROBE_AGES + 1)
            ]
            probe = m.scores[(newest, newest)]
            curves.append(regret_curve(y, probe, older, "accuracy"))
            if noise_aware:
                ses.append(regret_se(y, probe, older, "accuracy"))
            st.memo["extra"] = st.memo.get("extra", 0.0) + kappa * b * probe_usd_ratio
        champ = champ_se = None
        if newest > st.born:
            champ = 100 * (m.err[st.born, newest] - m.err[newest, newest]) / b
            if noise_aware:  # 0/1 scores with the champion's row-by-row mistakes (same accuracy)
                as_scored = np.where(m.mistakes(st.born, newest), 1 - y, y)
                champ_se = regret_se(y, m.scores[(newest, newest)], [as_scored], "accuracy")[0]
        noise = {"curve_se": ses, "champion_se": champ_se} if noise_aware else {}
        history = st.memo.setdefault(("champion", st.born), [])
        if pool:
            noise |= {"rows": b, "champion_history": list(history), "extend": True}
        gain = estimate_gain_probe(curves, t - st.born, champ, **noise, **kw)
        if champ is not None:
            history.append((champ, champ_se))
        inputs = CheckpointInputs(
            model=stream.cfg.name,
            has_champion=True,
            labelled_rows=b * min(newest + 1, stream.cfg.training.window_batches),
            min_train_rows=stream.cfg.training.min_train_rows,
            gain_points=gain.points,
            gain_low=gain.low,
            gain_high=gain.high,
            gain_basis=gain.basis,
            cost_usd=usd,
            cost_quality="static",
            cost_source="bench",
            spent_this_month_usd=0.0,
            hours_since_last_retrain=None,
        )
        decision = decide(inputs, policy, max_usd_per_metric_point=limit)
        decisions.append(decision.action)
        return decision.action in ("retrain", "approve")

    return rule


def drift_retrains(stream: Stream) -> list[int]:
    """Retrain whenever costaware.batches.drift (Evidently) says dataset drift vs the
    training window.
    Depends on the features only, so it is simulated once per data set."""
    s0, born, out = stream.first_step, stream.first_step, []
    for t in range(s0 + 1, stream.n):
        lo, hi = stream.window(born)
        ref = stream.frames[lo : hi + 1]
        import pandas as pd

        res = measure_drift(pd.concat(ref, ignore_index=True), stream.frames[t], stream.cfg)
        if res.dataset_drift:
            born = t
            out.append(t)
    return out


def replay_steps(stream: Stream, m: Matrix, steps: list[int], name: str) -> Outcome:
    wanted = set(steps)
    return simulate(stream, m, name, lambda t, st: t in wanted)


def run_dataset(name: str, seeds: list[int], rounds: int, max_batches: int | None) -> dict:
    cfg = get_model(ROOT / "include" / "models", name)
    stream = load_stream(cfg, ROOT, max_batches)
    t0 = time.perf_counter()
    drift_steps = drift_retrains(stream)
    drift_s = time.perf_counter() - t0
    usd, worker_usd_per_s = retrain_usd(stream)
    rows: dict[tuple[str, float], list[dict]] = {}
    timing = {"drift policy s": drift_s, "matrix s": 0.0, "fit s": 0.0}
    for seed in seeds:
        t0 = time.perf_counter()
        m = error_matrix(stream, seed, rounds, keep_ages=PROBE_AGES)
        timing["matrix s"] += time.perf_counter() - t0
        timing["fit s"] = m.fit_seconds
        probe_ratio = m.fit_seconds * worker_usd_per_s / usd
        for kappa in KAPPAS:
            best = oracle(stream, m, kappa)
            outs = [
                simulate(stream, m, "never", never()),
                *[simulate(stream, m, f"periodic k={k}", periodic(k)) for k in PERIODS],
                replay_steps(stream, m, drift_steps, "drift-triggered (Evidently)"),
                simulate(stream, m, "error jump +5 pts", error_jump(stream, m)),
                simulate(stream, m, "Cara-style staleness", cara(stream, m, kappa)),
                simulate(stream, m, COSTAWARE, costaware_policy(stream, m, kappa, probe_ratio)),
                simulate(
                    stream,
                    m,
                    BLIND,
                    costaware_policy(stream, m, kappa, probe_ratio, noise_aware=False, pool=False),
                ),
            ]
            per = [o for o in outs if o.policy.startswith("periodic k=")]
            bp = min(per, key=lambda o: o.total(kappa, stream.batch_rows))
            outs.append(Outcome(BEST_PERIODIC, bp.errors, bp.retrains, bp.steps, bp.extra_cost))
            outs.append(best)
            ref = best.total(kappa, stream.batch_rows)
            for o in outs:
                total = o.total(kappa, stream.batch_rows)
                rows.setdefault((o.policy, kappa), []).append(
                    {
                        "total": total,
                        "ratio": total / ref,
                        "retrains": o.retrains,
                        "error": o.errors / (o.steps * stream.batch_rows),
                        "usd": total * usd / (kappa * stream.batch_rows),
                        "best_k": bp.policy.split("=")[1] if o.policy == BEST_PERIODIC else "",
                    }
                )
    return {
        "name": name,
        "batches": stream.n,
        "steps": stream.n - stream.first_step,
        "batch_rows": stream.batch_rows,
        "retrain_usd": usd,
        "rows": rows,
        "timing": timing,
        "seeds": seeds,
    }


def _ms(vals: list[float], fmt: str) -> str:
    if len(vals) == 1:
        return format(vals[0], fmt)
    return f"{format(statistics.mean(vals), fmt)} ± {format(statistics.stdev(vals), fmt)}"


def markdown(results: list[dict], rounds: int, quick: bool) -> str:
    lines = [
        "# Retraining economics (`make bench-policy`)",
        "",
        f"Generated by `bench/policy.py{' --quick' if quick else ''}`; XGBoost with each model's "
        f"own parameters and {rounds} rounds, one thread. Total cost = misclassifications + "
        "κ × batch rows × retrains (+ probe compute for costaware). Ratio = total / hindsight "
        "oracle of the same seed; mean ± standard deviation over seeds.",
        "",
    ]
    for res in results:
        lines += [
            f"## {res['name']} — {res['steps']} steps of {res['batch_rows']} rows "
            f"(seeds {res['seeds']}; a retrain is ${res['retrain_usd']:.4f})",
            "",
        ]
        policies = list(dict.fromkeys(p for p, _ in res["rows"]))
        head = "| policy | " + " | ".join(f"κ={k} ratio" for k in KAPPAS) + " |"
        lines += [head, "|---|" + "---:|" * len(KAPPAS)]
        for p in policies:
            cells = []
            for k in KAPPAS:
                r = res["rows"][(p, k)]
                cell = _ms([x["ratio"] for x in r], ".3f")
                if p == BEST_PERIODIC:
                    cell += f" (k={'/'.join(sorted({x['best_k'] for x in r}, key=int))})"
                cells.append(cell)
            lines.append(f"| {p} | " + " | ".join(cells) + " |")
        lines += ["", "Total cost, retrains, mean error rate and dollars:", ""]
        lines += [
            "| policy | κ | total cost | retrains | mean error | total $ |",
            "|---|---:|---:|---:|---:|---:|",
        ]
        for p in policies:
            for k in KAPPAS:
                r = res["rows"][(p, k)]
                lines.append(
                    f"| {p} | {k} | {_ms([x['total'] for x in r], '.0f')} | "
                    f"{_ms([x['retrains'] for x in r], '.1f')} | "
                    f"{_ms([100 * x['error'] for x in r], '.2f')} % | "
                    f"{_ms([x['usd'] for x in r], '.2f')} |"
                )
        t = res["timing"]
        lines += [
            "",
            f"Timing: drift policy {t['drift policy s']:.0f} s, error matrices "
            f"{t['matrix s']:.0f} s, one fit {1000 * t['fit s']:.0f} ms.",
            "",
        ]
    return "\n".join(lines)


def plot(results: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(results), figsize=(6.5 * len(results), 4.5), squeeze=False)
    for ax, res in zip(axes[0], results, strict=True):
        policies = [
            p
            for p in dict.fromkeys(p for p, _ in res["rows"])
            if not p.startswith("periodic k=") and not p.startswith("oracle")
        ]
        for p in policies:
            means = [np.mean([x["ratio"] for x in res["rows"][(p, k)]]) for k in KAPPAS]
            sds = [np.std([x["ratio"] for x in res["rows"][(p, k)]]) for k in KAPPAS]
            style = {"lw": 3, "color": "black"} if p == COSTAWARE else {"lw": 1.3}
            ax.errorbar(KAPPAS, means, yerr=sds, marker="o", label=p, capsize=2, **style)
        ax.axhline(1.0, color="grey", ls=":", lw=1)
        ax.axhline(1.05, color="grey", ls="--", lw=0.8)
        ax.set_xscale("log")
        ax.set_xlabel("κ (retrain cost in misclassifications per row of a batch)")
        ax.set_ylabel("total cost / hindsight oracle")
        ax.set_title(res["name"])
    axes[0][0].legend(fontsize=7, loc="upper left")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", nargs="+", default=["elec2", "weather"])
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--rounds", type=int, default=50, help="boosting rounds (bench speed)")
    ap.add_argument("--max-batches", type=int, default=None, help="cut each stream")
    ap.add_argument("--quick", action="store_true", help="1 seed, at most 150 batches")
    ap.add_argument("--out", default=str(ROOT / "bench" / "results"))
    a = ap.parse_args(argv)
    seeds = list(range(1 if a.quick else a.seeds))
    max_batches = a.max_batches or (150 if a.quick else None)
    t0 = time.perf_counter()
    results = []
    for name in a.models:
        print(f"{name}: simulating ({len(seeds)} seed(s))…", flush=True)
        results.append(run_dataset(name, seeds, a.rounds, max_batches))
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    suffix = "_quick" if a.quick else ""
    text = markdown(results, a.rounds, a.quick)
    text += f"\nWall time {time.perf_counter() - t0:.0f} s on this machine.\n"
    (out / f"policy{suffix}.md").write_text(text)
    plot(results, out / f"policy{suffix}.png")
    print(text)
    print(f"wrote {out / f'policy{suffix}.md'} and policy{suffix}.png")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
