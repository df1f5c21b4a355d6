"""Idle capacity: SageMaker endpoints nobody calls, notebooks left on, training jobs past
their deadline — what each costs per day, and (only once a person approved) stopping them.

``find_idle`` is read-only: it lists, describes and reads CloudWatch, and returns a report of
what it *would* stop. Acting on it, once a person approved, is ``idle_actions.py``.

Idle means, at the run's clock ``now`` (costaware's one clock, the run's logical date):

* an ``InService`` endpoint created at least ``endpoint_idle_days`` ago whose variants had no
  ``Invocations`` (CloudWatch ``AWS/SageMaker``, summed) in the last ``endpoint_idle_days``.
  An hour without a datapoint is an hour without calls; a CloudWatch error is an error, never
  "idle". Asynchronous endpoints publish no ``Invocations`` at all: they are listed as not
  judged, never as idle. Action: delete the endpoint (its endpoint config and model stay, so
  it can be recreated).
* an ``InService`` notebook instance whose ``LastModifiedTime`` (its last start or update) is
  at least ``notebook_idle_hours`` old. Action: stop it (its volume is kept).
* an ``InProgress`` training job past its deadline: its ``costaware:deadline`` tag (ISO 8601)
  when it has one, else its start plus ``training_max_hours``. Action: stop it.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from costaware.costs.base import Capacity, PriceSource, Spend
from costaware.costs.idle_prices import HourlyPrice, SageMakerPricer
from costaware.errors import ConfigError, CostSourceError

Kind = Literal["endpoint", "notebook", "training_job"]
ACTIONS: dict[str, str] = {
    "endpoint": "delete_endpoint",
    "notebook": "stop_notebook_instance",
    "training_job": "stop_training_job",
}
DEADLINE_TAG = "costaware:deadline"
CLOUDWATCH_BATCH = 100  # MetricDataQueries per GetMetricData call (AWS allows 500)


@dataclass(frozen=True)
class IdleLimits:
    """When a resource counts as idle. Defaults and why (README, "Idle capacity"):
    7 days of no calls covers a whole weekly cycle, so an endpoint used only by a weekly batch
    job is not flagged; 24 h since a notebook was started is a working day and the night after
    it; 24 h is SageMaker's own default ``MaxRuntimeInSeconds`` for a training job."""

    endpoint_idle_days: float = 7.0
    notebook_idle_hours: float = 24.0
    training_max_hours: float = 24.0

    def __post_init__(self) -> None:
        for name, value in asdict(self).items():
            if not (isinstance(value, int | float) and value > 0):
                raise ConfigError(f"housekeeping limit {name}={value!r}: must be a number > 0")


@dataclass(frozen=True)
class IdleResource:
    kind: Kind
    name: str
    arn: str
    why: str  # in words, with the numbers and the limit that decided it
    instance_type: str | None
    instance_count: int
    usd_per_day: float | None  # None: unknown (no price), never shown as $0
    price_note: str  # where the price came from, or why it is unknown
    lower_bound: bool  # the price is the EC2 price of the hardware: SageMaker's is higher
    since: str  # ISO time the idle span (or the run) started

    @property
    def action(self) -> str:
        return ACTIONS[self.kind]

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "action": self.action}


@dataclass(frozen=True)
class HousekeepingReport:
    checked_at: str
    region: str
    limits: IdleLimits
    checked: dict[str, int]  # how many resources of each kind were looked at
    idle: tuple[IdleResource, ...] = field(default_factory=tuple)
    not_judged: tuple[str, ...] = ()  # resources this check cannot judge, and why

    @property
    def per_day(self) -> Spend:
        return Spend.of(r.usd_per_day for r in self.idle)

    def as_dict(self) -> dict[str, Any]:
        return {
            "checked_at": self.checked_at,
            "region": self.region,
            "limits": asdict(self.limits),
            "checked": dict(self.checked),
            "idle": [r.as_dict() for r in self.idle],
            "not_judged": list(self.not_judged),
            "usd_per_day": self.per_day.as_dict(),
        }

    def text(self) -> str:
        lim = self.limits
        lines = [
            f"idle capacity in {self.region} at {self.checked_at} (limits: endpoints "
            f"{lim.endpoint_idle_days:g} d without calls, notebooks {lim.notebook_idle_hours:g} h,"
            f" training {lim.training_max_hours:g} h): checked "
            + ", ".join(f"{n} {k}(s)" for k, n in sorted(self.checked.items()))
        ]
        lines.append(f"  {'kind':<13} {'name':<32} {'would':<23} {'$/day':>10}  why")
        for r in self.idle:
            at_least = ">= " if r.lower_bound else ""
            usd = "unknown" if r.usd_per_day is None else f"{at_least}${r.usd_per_day:,.2f}"
            lines.append(f"  {r.kind:<13} {r.name:<32} {r.action:<23} {usd:>10}  {r.why}")
            lines.append(f"  {'':<13} {'':<32} {'':<23} {'':>10}  price: {r.price_note}")
        if not self.idle:
            lines.append("  nothing idle")
        at_least = "at least " if any(r.lower_bound for r in self.idle) else ""
        lines.append(f"  total per day: {at_least}{self.per_day.text('{:,.2f}')}")
        lines += [f"  not judged: {n}" for n in self.not_judged]
        return "\n".join(lines)


def _utc(t: Any) -> dt.datetime:
    """A plain, timezone-aware UTC datetime. Naive times are UTC. A pendulum DateTime (an
    Airflow logical date) becomes a plain one: pendulum drops a stdlib tzinfo in arithmetic."""
    if isinstance(t, str):
        t = dt.datetime.fromisoformat(t)
    if t.tzinfo is None:
        t = t.replace(tzinfo=dt.UTC)
    return dt.datetime.fromtimestamp(t.timestamp(), dt.UTC)


def _client_error(what: str, exc: Exception) -> CostSourceError:
    return CostSourceError(f"{what}: {type(exc).__name__}: {exc}")


def _pages(client: Any, op: str, key: str, **kwargs: Any) -> list[dict[str, Any]]:
    return [item for page in client.get_paginator(op).paginate(**kwargs) for item in page[key]]


# -- finding ------------------------------------------------------------------------------
def find_idle(
    sagemaker: Any,
    cloudwatch: Any,
    prices: PriceSource,
    now: dt.datetime,
    limits: IdleLimits | None = None,
) -> HousekeepingReport:
    """Everything idle in the clients' region at ``now``, priced per day. Reads only."""
    from botocore.exceptions import BotoCoreError, ClientError

    limits = limits or IdleLimits()
    now = _utc(now)
    region = sagemaker.meta.region_name
    pricer = SageMakerPricer(prices, region)
    try:
        endpoints = _pages(sagemaker, "list_endpoints", "Endpoints", StatusEquals="InService")
        notebooks = _pages(
            sagemaker, "list_notebook_instances", "NotebookInstances", StatusEquals="InService"
        )
        jobs = _pages(
            sagemaker, "list_training_jobs", "TrainingJobSummaries", StatusEquals="InProgress"
        )
        not_judged: list[str] = []
        found = [
            *_idle_endpoints(sagemaker, cloudwatch, pricer, endpoints, now, limits, not_judged),
            *_idle_notebooks(pricer, notebooks, now, limits),
            *_overdue_jobs(sagemaker, pricer, jobs, now, limits),
        ]
    except (ClientError, BotoCoreError) as exc:
        raise _client_error(f"SageMaker/CloudWatch in {region}", exc) from exc
    return HousekeepingReport(
        checked_at=now.isoformat(),
        region=region,
        limits=limits,
        checked={"endpoint": len(endpoints), "notebook": len(notebooks), "training_job": len(jobs)},
        idle=tuple(sorted(found, key=lambda r: (r.kind, r.name))),
        not_judged=tuple(sorted(not_judged)),
    )


def _resource(
    kind: Kind, name: str, arn: str, why: str, since: dt.datetime, price: HourlyPrice
) -> IdleResource:
    per_day = None if price.usd_per_hour is None else price.usd_per_hour * 24
    return IdleResource(
        kind=kind,
        name=name,
        arn=arn,
        why=why,
        instance_type=price.instance_type,
        instance_count=price.count,
        usd_per_day=per_day,
        price_note=price.note,
        lower_bound=price.lower_bound,
        since=since.isoformat(),
    )


def _idle_endpoints(
    sm: Any,
    cw: Any,
    pricer: SageMakerPricer,
    endpoints: list[dict[str, Any]],
    now: dt.datetime,
    limits: IdleLimits,
    not_judged: list[str],
) -> list[IdleResource]:
    since = now - dt.timedelta(days=limits.endpoint_idle_days)
    old = [e for e in endpoints if _utc(e["CreationTime"]) <= since]
    described = {
        e["EndpointName"]: sm.describe_endpoint(EndpointName=e["EndpointName"]) for e in old
    }
    calls = invocations(cw, described, since, now)
    out = []
    for name, desc in described.items():
        if calls[name] > 0:
            continue
        config = sm.describe_endpoint_config(EndpointConfigName=desc["EndpointConfigName"])
        if config.get("AsyncInferenceConfig"):
            # SageMaker does not publish Invocations for asynchronous endpoints: zero calls
            # would be read from a metric that never exists.
            not_judged.append(
                f"endpoint {name}: asynchronous inference publishes no Invocations metric"
            )
            continue
        price = pricer.endpoint(desc, config)
        why = (
            f"0 invocations in the last {limits.endpoint_idle_days:g} d (since "
            f"{since:%Y-%m-%d %H:%M}); created {_utc(desc['CreationTime']):%Y-%m-%d}"
        )
        out.append(_resource("endpoint", name, desc["EndpointArn"], why, since, price))
    return out


def invocations(
    cw: Any, endpoints: dict[str, dict[str, Any]], start: dt.datetime, end: dt.datetime
) -> dict[str, float]:
    """Calls per endpoint in [start, end): CloudWatch ``AWS/SageMaker`` ``Invocations``, summed
    over every variant, through ``GetMetricData`` (one request per 100 variants)."""
    queries: list[tuple[str, dict[str, Any]]] = []
    for name, desc in endpoints.items():
        for variant in desc.get("ProductionVariants", []):
            dims = [
                {"Name": "EndpointName", "Value": name},
                {"Name": "VariantName", "Value": variant["VariantName"]},
            ]
            metric = {"Namespace": "AWS/SageMaker", "MetricName": "Invocations", "Dimensions": dims}
            stat = {"Metric": metric, "Period": 3600, "Stat": "Sum"}
            queries.append((name, {"Id": f"q{len(queries)}", "MetricStat": stat}))
    totals = dict.fromkeys(endpoints, 0.0)
    for i in range(0, len(queries), CLOUDWATCH_BATCH):
        batch = queries[i : i + CLOUDWATCH_BATCH]
        owner = {q["Id"]: name for name, q in batch}
        results = _pages(
            cw,
            "get_metric_data",
            "MetricDataResults",
            MetricDataQueries=[q for _, q in batch],
            StartTime=start,
            EndTime=end,
        )
        for r in results:
            if r.get("StatusCode") not in (None, "Complete", "PartialData"):
                raise CostSourceError(
                    f"CloudWatch Invocations of endpoint {owner[r['Id']]!r}: status "
                    f"{r.get('StatusCode')} {r.get('Messages')}"
                )
            totals[owner[r["Id"]]] += float(sum(r.get("Values", [])))
    return totals


def _idle_notebooks(
    pricer: SageMakerPricer, notebooks: list[dict[str, Any]], now: dt.datetime, limits: IdleLimits
) -> list[IdleResource]:
    out = []
    for nb in notebooks:
        modified = _utc(nb["LastModifiedTime"])
        hours = (now - modified).total_seconds() / 3600
        if hours < limits.notebook_idle_hours:
            continue
        why = (
            f"InService, last started or changed {hours:,.1f} h ago (limit "
            f"{limits.notebook_idle_hours:g} h)"
        )
        price = pricer.instances(nb["InstanceType"], 1, "on_demand")
        out.append(
            _resource(
                "notebook",
                nb["NotebookInstanceName"],
                nb["NotebookInstanceArn"],
                why,
                modified,
                price,
            )
        )
    return out


def _overdue_jobs(
    sm: Any,
    pricer: SageMakerPricer,
    jobs: list[dict[str, Any]],
    now: dt.datetime,
    limits: IdleLimits,
) -> list[IdleResource]:
    out = []
    for summary in jobs:
        job = sm.describe_training_job(TrainingJobName=summary["TrainingJobName"])
        started = _utc(job.get("TrainingStartTime") or job["CreationTime"])
        tags = {
            t["Key"]: t["Value"]
            for t in _pages(sm, "list_tags", "Tags", ResourceArn=job["TrainingJobArn"])
        }
        if DEADLINE_TAG in tags:
            try:
                deadline = _utc(tags[DEADLINE_TAG])
            except ValueError:
                raise ConfigError(
                    f"training job {job['TrainingJobName']!r}: tag {DEADLINE_TAG}="
                    f"{tags[DEADLINE_TAG]!r} is not an ISO 8601 time (e.g. 2026-11-20T18:00Z)"
                ) from None
            rule = f"its {DEADLINE_TAG} tag"
        else:
            deadline = started + dt.timedelta(hours=limits.training_max_hours)
            rule = f"start + {limits.training_max_hours:g} h"
        if now < deadline:
            continue
        over = (now - deadline).total_seconds() / 3600
        why = f"InProgress {over:,.1f} h past its deadline {deadline:%Y-%m-%d %H:%M} ({rule})"
        rc = job["ResourceConfig"]
        capacity: Capacity = "spot" if job.get("EnableManagedSpotTraining") else "on_demand"
        price = pricer.instances(rc["InstanceType"], int(rc.get("InstanceCount", 1)), capacity)
        out.append(
            _resource(
                "training_job", job["TrainingJobName"], job["TrainingJobArn"], why, started, price
            )
        )
    return out
