"""FinOps at scale: group a FOCUS export of 100k / 1M / 10M charges by a tag key.

    python bench/finops.py                          # 100k, 1M, 10M -> bench/results/finops.md
    python bench/finops.py --sizes 100000,1000000   # smaller; prints only with --out ''
    python bench/finops.py --keep                   # keep (and reuse) the exports in /tmp

**The export** is generated from the shape of a real one (the columns and values of
``tests/fixtures/focus/azure_real.csv``, itself modelled on Azure's and AWS's documented FOCUS
exports): ARM-style resource ids, a dozen services, 25 subscriptions, 12 regions, hourly
charges over one month, and tags drawn per resource — 40 teams, 4 environments, 300 cost
centers, 4 % of resources untagged, 6 % with key variants (``Environment``, ``" env"``,
``Team``) — so the distinct tag sets number one per resource (about rows / 200, at most
60,000), as in a bill where every resource carries its own tags. Also planted: 0.1 % negative
``Usage`` refunds without a ``ChargeClass``, 5 % ``Committed`` and 2 % ``Dynamic`` pricing.
Written as Parquet (snappy, 256k-row row groups: AWS Data Exports' format) under /tmp, never
in the repository, and deleted afterwards unless ``--keep``.

**Measured**, each run in a fresh child process (so the peak RSS is that run's own):
``costaware.costs.focus_stream.scan(path, "tag:cost-center", ...)`` — the path ``costaware
costs --by tag:cost-center`` and the showback use — streaming by row groups with pyarrow;
and, at the sizes where it fits, the pandas baseline it replaces: ``pd.read_parquet`` of the
needed columns, ``json.loads`` of every row's tags (what costaware's FOCUS reader did before),
then ``groupby``. Seconds are wall time of the call after imports, with the CPU seconds the process
used in brackets (the machine is shared: the load average is printed beside each row, and
CPU time is what the code itself costs); peak MB is the child's maximum RSS (VmHWM, imports
included) and, in brackets, its growth during the call. The pandas baseline is not run at
10M rows: every row's tags as a Python dict does not fit the goal by construction. Goal (issue 13):
10M rows in <= 10 s and <= 1 GB. Both paths' totals are compared to the cent.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
WORK = Path("/tmp/costaware-finops-bench")
MONTH = dt.datetime(2026, 10, 1, tzinfo=dt.UTC)
HOURS = 31 * 24
SERVICES = [
    ("Virtual Machines", "Compute", 0.20),
    ("Storage", "Storage", 0.02),
    ("Azure Kubernetes Service", "Compute", 0.35),
    ("Azure Machine Learning", "AI and Machine Learning", 0.90),
    ("Bandwidth", "Networking", 0.01),
    ("Azure Database for PostgreSQL", "Databases", 0.25),
    ("Azure Monitor", "Management and Governance", 0.005),
    ("Key Vault", "Security", 0.001),
    ("Azure Cosmos DB", "Databases", 0.30),
    ("Load Balancer", "Networking", 0.025),
    ("Azure Cache for Redis", "Databases", 0.10),
    ("Event Hubs", "Integration", 0.03),
]
REGIONS = [
    "eastus", "eastus2", "westus2", "westeurope", "northeurope", "uksouth",
    "southeastasia", "japaneast", "australiaeast", "centralus", "francecentral", "canadacentral",
]  # fmt: skip
ENVS = ["prod", "staging", "dev", "test"]


def generate(rows: int, path: Path, seed: int = 7) -> None:
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = np.random.default_rng(seed)
    n_res = int(min(60_000, max(2_000, rows // 200)))
    subs = [f"/subscriptions/{i:08x}-0000-4a5b-9c8d-{i * 7919:012x}" for i in range(25)]
    res_sub = rng.integers(0, len(subs), n_res)
    res_svc = rng.choice(len(SERVICES), n_res, p=_weights(len(SERVICES)))
    res_region = rng.integers(0, len(REGIONS), n_res)
    res_price = np.round(
        np.array([SERVICES[s][2] for s in res_svc]) * rng.lognormal(0, 0.6, n_res), 6
    )
    res_id, res_tags = [], []
    for i in range(n_res):
        res_id.append(
            f"{subs[res_sub[i]]}/resourcegroups/rg-{i % 400}/providers/"
            f"microsoft.{SERVICES[res_svc[i]][0].split()[0].lower()}/resources/r{i}"
        )
        u = rng.random()
        if u < 0.04:
            res_tags.append(None if u < 0.02 else "{}")
            continue
        team, env, cc = f"team-{rng.integers(40):02d}", ENVS[rng.integers(4)], rng.integers(300)
        tags = {"team": team, "env": env, "cost-center": f"cc-{cc:03d}", "owner": f"u{i % 997}"}
        if u < 0.10:  # the spellings people type
            variant = ["Environment", " env", "Team", "Cost-Center "][int(u * 100) % 4]
            canon = variant.strip().lower().replace("environment", "env")
            tags = {(variant if k == canon else k): v for k, v in tags.items()}
        res_tags.append(json.dumps(tags))
    tag_pool = pa.array(res_tags, pa.string())
    id_pool = pa.array(res_id, pa.string())
    sub_pool = pa.array(subs, pa.string())
    svc_pool = pa.array([s[0] for s in SERVICES], pa.string())
    cat_pool = pa.array([s[1] for s in SERVICES], pa.string())
    region_pool = pa.array(REGIONS, pa.string())
    writer = None
    try:
        done = 0
        while done < rows:
            n = min(1_000_000, rows - done)
            r = np.minimum(rng.zipf(1.3, n) - 1, n_res - 1)  # a few resources cost most
            r = (r * 7919 + rng.integers(0, 13, n)) % n_res
            hour = rng.integers(0, HOURS, n)
            start = np.datetime64(MONTH.replace(tzinfo=None), "us") + hour * np.timedelta64(
                3600, "s"
            )
            qty = np.round(rng.uniform(0.1, 1.0, n), 4)
            cost = np.round(res_price[r] * qty, 6)
            u = rng.random(n)
            refund = u < 0.001
            cost = np.where(refund, -cost, cost)
            pricing = np.where(u > 0.95, "Committed", np.where(u > 0.93, "Dynamic", "Standard"))
            billed = np.where(pricing == "Committed", 0.0, cost)
            idx = pa.array(r)
            batch = pa.table(
                {
                    "BilledCost": pa.array(billed),
                    "EffectiveCost": pa.array(cost),
                    "ListCost": pa.array(np.abs(cost) * 1.2),
                    "BillingAccountId": pa.array(
                        ["/providers/Microsoft.Billing/billingAccounts/1"] * n
                    ),
                    "BillingCurrency": pa.array(["USD"] * n),
                    "ChargeCategory": pa.array(["Usage"] * n),
                    "ChargeClass": pa.nulls(n, pa.string()),
                    "ChargePeriodStart": pa.array(start, pa.timestamp("us", tz="UTC")),
                    "ChargePeriodEnd": pa.array(
                        start + np.timedelta64(3600, "s"), pa.timestamp("us", tz="UTC")
                    ),
                    "PricingCategory": pa.array(pricing),
                    "ProviderName": pa.array(["Microsoft"] * n),
                    "RegionId": region_pool.take(pa.array(res_region[r])),
                    "ResourceId": id_pool.take(idx),
                    "ServiceCategory": cat_pool.take(pa.array(res_svc[r])),
                    "ServiceName": svc_pool.take(pa.array(res_svc[r])),
                    "SubAccountId": sub_pool.take(pa.array(res_sub[r])),
                    "Tags": tag_pool.take(idx),
                }
            )
            if writer is None:
                writer = pq.ParquetWriter(path, batch.schema, compression="snappy")
            writer.write_table(batch, row_group_size=1 << 18)
            done += n
    finally:
        if writer is not None:
            writer.close()


def _weights(k: int) -> list[float]:
    w = [1.0 / (i + 1) for i in range(k)]
    return [x / sum(w) for x in w]


# -- children -----------------------------------------------------------------------------
def _child(kind: str, path: str) -> None:
    import pandas  # noqa: F401 - both paths pay the same imports before the clock starts
    import pyarrow  # noqa: F401

    from costaware.costs import focus_stream

    before = _hwm_mb()
    t0, c0 = time.perf_counter(), time.process_time()
    if kind == "stream":
        r = focus_stream.scan(path, "tag:cost-center", dt.date(2026, 10, 1), dt.date(2026, 11, 1))
        total = float(r.frame["usd"].sum())
        groups = len(r.frame)
        extra = {
            "anomalies": {a.kind: a.rows for a in r.anomalies},
            "merges": sum(len(v) for v in r.merges.values()),
            "reconciled": r.reconciliation.ok,
        }
    else:
        total, groups = _pandas(path)
        extra = {}
    seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
    peak = _hwm_mb()
    print(json.dumps({"seconds": seconds, "cpu": cpu, "peak_mb": peak, "grew_mb": peak - before,
                      "total": total, "groups": groups, **extra}))  # fmt: skip


def _hwm_mb() -> float:
    """This process's peak RSS (VmHWM: reset at exec, unlike ru_maxrss, which a child
    inherits from the parent that forked it)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _pandas(path: str) -> tuple[float, int]:
    """The baseline: the whole window in pandas, tags parsed row by row."""
    import pandas as pd

    cols = ["EffectiveCost", "ChargePeriodStart", "Tags"]
    df = pd.read_parquet(path, columns=cols)
    df = df[(df["ChargePeriodStart"] >= "2026-10-01") & (df["ChargePeriodStart"] < "2026-11-01")]
    key = [
        {k.strip().casefold(): v for k, v in json.loads(t).items()}.get("cost-center")
        if t
        else None
        for t in df["Tags"]
    ]
    g = df.assign(key=key).groupby("key", dropna=False)["EffectiveCost"].sum()
    return float(g.sum()), len(g)


def run_child(kind: str, path: Path) -> dict[str, object]:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "include"), "OMP_NUM_THREADS": "1"}
    out = subprocess.run(
        [sys.executable, __file__, "--child", kind, str(path)],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", default="100000,1000000,10000000")
    ap.add_argument("--pandas-max", type=int, default=1_000_000, help="largest pandas run")
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "finops.md"))
    ap.add_argument("--keep", action="store_true")
    ap.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        return _child(*args.child)
    WORK.mkdir(parents=True, exist_ok=True)
    lines = [
        f"# bench/finops.py — {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC, {os.cpu_count()} cores",
        "",
        "group a FOCUS export by tag:cost-center (one month, hourly charges)",
        "",
        "| rows | file MB | stream s (CPU s) | stream peak MB | pandas s (CPU s) "
        "| pandas peak MB | pandas / stream (CPU) | groups | totals agree | load avg |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|",
    ]
    print("\n".join(lines), flush=True)
    details = []
    for rows in (int(s) for s in args.sizes.split(",")):
        path = WORK / f"focus_{rows}.parquet"
        if not path.exists():  # --keep leaves the files: same seed, same export
            generate(rows, path)
        s = run_child("stream", path)
        p = run_child("pandas", path) if rows <= args.pandas_max else None
        agree = "-" if p is None else ("yes" if abs(p["total"] - s["total"]) < 0.005 else "NO")
        pandas_cols = (
            f"{p['seconds']:.2f} ({p['cpu']:.2f}) | {p['peak_mb']:.0f} (+{p['grew_mb']:.0f}) | "
            f"{p['seconds'] / s['seconds']:.1f}x ({p['cpu'] / s['cpu']:.1f}x)"
            if p
            else "not run | - | -"
        )
        line = (
            f"| {rows:,} | {path.stat().st_size / 2**20:.0f} | {s['seconds']:.2f} "
            f"({s['cpu']:.2f}) | {s['peak_mb']:.0f} (+{s['grew_mb']:.0f}) | {pandas_cols} | "
            f"{s['groups']} | {agree} | {os.getloadavg()[0]:.1f} |"
        )
        print(line, flush=True)
        lines.append(line)
        details.append(
            f"- {rows:,} rows: anomalies {s['anomalies']}, tag-key spellings merged "
            f"{s['merges']}, reconciled to the file's own sums: {s['reconciled']}"
        )
        if not args.keep:
            path.unlink()
    print("\n".join(["", *details]))
    if not args.keep:
        shutil.rmtree(WORK, ignore_errors=True)
    if args.out:
        Path(args.out).write_text("\n".join([*lines, "", *details]) + "\n")
        print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
