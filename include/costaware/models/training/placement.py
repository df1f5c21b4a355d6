"""Where to train: among the instance types and zones a model's YAML allows, the one with the
lowest expected price of a finished hour of training on spot.

Inputs are AWS's own: the latest spot price per instance type and zone
(``ec2.describe_spot_price_history``) and the Spot placement score per zone (1–10,
``ec2.get_spot_placement_scores``: how likely a spot request of that size succeeds there).
A score ``s`` is read as a chance ``p = (10 − s) / 10`` that an hour of spot work is lost to
a reclaim (10 → 0, 1 → 0.9), and a lost hour is paid and run again, so a finished hour costs
``price / (1 − p)`` in expectation (the mean of a geometric number of tries). That mapping is
a deliberately simple reading of a score AWS does not define numerically; it was not fitted
to any data. A zone without a score gets the middle score, 5, and the reason says so.

SageMaker managed spot does not take a zone, and its ``ml.*`` capacity has no public price
history: for those the EC2 type of the same name (``ml.m5.xlarge`` → ``m5.xlarge``) stands
in, and the reason says that too.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

NO_SCORE = 5  # the middle of AWS's 1–10 scale, for a zone AWS gave no score


@dataclass(frozen=True)
class Option:
    instance_type: str
    zone: str
    spot_usd_per_hour: float
    score: int | None

    @property
    def loss(self) -> float:
        """Chance an hour of spot work is reclaimed (from the placement score)."""
        return (10 - (NO_SCORE if self.score is None else self.score)) / 10

    @property
    def expected_usd_per_hour(self) -> float:
        return self.spot_usd_per_hour / (1 - self.loss)


@dataclass(frozen=True)
class Placement:
    chosen: Option
    options: list[Option]
    reason: str
    notes: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "instance_type": self.chosen.instance_type,
            "zone": self.chosen.zone,
            "reason": self.reason,
            "notes": self.notes,
            "options": [
                {
                    "instance_type": o.instance_type,
                    "zone": o.zone,
                    "spot_usd_per_hour": o.spot_usd_per_hour,
                    "score": o.score,
                    "expected_usd_per_hour": round(o.expected_usd_per_hour, 6),
                }
                for o in self.options
            ],
        }


def choose(options: list[Option], notes: list[str] | None = None) -> Placement:
    """The option with the lowest expected price of a finished hour; ties go to the better
    score, then to the order the YAML listed them in."""
    if not options:
        raise ValueError("no instance type and zone to choose from")
    ranked = sorted(
        enumerate(options),
        key=lambda io: (io[1].expected_usd_per_hour, -(io[1].score or NO_SCORE), io[0]),
    )
    best = ranked[0][1]
    reason = (
        f"{best.instance_type} in {best.zone}: spot ${best.spot_usd_per_hour:.4f}/h, "
        f"placement score {best.score if best.score is not None else f'none (taken as {NO_SCORE})'}"
        f" → ${best.expected_usd_per_hour:.4f} per finished hour"
    )
    if len(ranked) > 1:
        second = ranked[1][1]
        reason += (
            f", against {second.instance_type} in {second.zone} at "
            f"${second.expected_usd_per_hour:.4f} (spot ${second.spot_usd_per_hour:.4f}/h, "
            f"score {second.score if second.score is not None else 'none'})"
        )
    return Placement(best, [o for _, o in ranked], reason, list(notes or []))


def ec2_type(instance_type: str) -> str:
    return instance_type.removeprefix("ml.")


def look_up(
    ec2: Any,
    instance_types: list[str],
    zones: list[str],
    region: str,
    now: dt.datetime | None = None,
) -> Placement:
    """Ask EC2 for the latest spot prices and the placement scores, and choose. Zones empty:
    every zone EC2 quotes. A placement-score call that fails is said in the notes (the
    prices still decide, every zone at the middle score)."""
    notes: list[str] = []
    wanted = {ec2_type(t): t for t in instance_types}
    if any(t.startswith("ml.") for t in instance_types):
        notes.append(
            "SageMaker ml.* capacity has no public spot price history: the EC2 type of the "
            "same name stands in for its price and risk"
        )
    latest: dict[tuple[str, str], tuple[Any, float]] = {}
    pages = ec2.get_paginator("describe_spot_price_history").paginate(
        InstanceTypes=sorted(wanted),
        ProductDescriptions=["Linux/UNIX", "Linux/UNIX (Amazon VPC)"],
        StartTime=now or dt.datetime.now(dt.UTC),
    )
    for page in pages:
        for row in page.get("SpotPriceHistory", []):
            key = (row["InstanceType"], row["AvailabilityZone"])
            if zones and key[1] not in zones:
                continue
            if key not in latest or row["Timestamp"] > latest[key][0]:
                latest[key] = (row["Timestamp"], float(row["SpotPrice"]))
    if not latest:
        raise ValueError(
            f"EC2 quotes no spot price for {sorted(wanted)} in "
            f"{zones or 'any zone of ' + region}: check training.sagemaker.instance_types/zones"
        )
    scores = _scores(ec2, sorted(wanted), region, notes)
    order = [ec2_type(t) for t in instance_types]  # ties go to the YAML's order
    options = [
        Option(wanted[t], zone, price, scores.get(zone))
        for (t, zone), (_, price) in sorted(
            latest.items(), key=lambda kv: (order.index(kv[0][0]), kv[0][1])
        )
    ]
    return choose(options, notes)


def _scores(ec2: Any, types: list[str], region: str, notes: list[str]) -> dict[str, int]:
    """Placement score per zone name (AWS answers per zone id: mapped through
    ``describe_availability_zones``)."""
    from botocore.exceptions import BotoCoreError, ClientError
    from botocore.parsers import ResponseParserError  # an endpoint without the action (moto)

    try:
        got = ec2.get_spot_placement_scores(
            InstanceTypes=types,
            TargetCapacity=1,
            SingleAvailabilityZone=True,
            RegionNames=[region],
        )
        names = {
            z["ZoneId"]: z["ZoneName"]
            for z in ec2.describe_availability_zones()["AvailabilityZones"]
        }
    except (ClientError, BotoCoreError, ResponseParserError) as exc:
        said = str(exc).splitlines()[0][:200]
        notes.append(f"no Spot placement scores ({said}): every zone taken at score {NO_SCORE}")
        return {}
    return {
        names.get(s.get("AvailabilityZoneId", ""), s.get("AvailabilityZoneId", "")): int(s["Score"])
        for s in got.get("SpotPlacementScores", [])
    }
