"""Where to run: spot price × interruption risk, among what the YAML allows.

moto 5.2.5's EC2 answers ``DescribeSpotPriceHistory`` with its real table of instance-type
offerings per zone but one price for all (0.00001) and has no ``GetSpotPlacementScores``:
so the choice itself is checked on hand-worked prices and scores, and moto shows the calls,
the zone filter and the fallback when scores cannot be had."""

from __future__ import annotations

from collections.abc import Iterator

import boto3
import pytest

from costaware.models.training.placement import Option, choose, look_up

from ...conftest import moto_server


def test_a_cheap_but_risky_zone_loses_to_a_safer_one() -> None:
    # Hand-worked expected $ per finished hour = price / (1 - (10 - score) / 10):
    #   m5.xlarge  a: 0.070 / 0.9 = 0.07778   (chosen)
    #   m5.xlarge  b: 0.060 / 0.3 = 0.20000   (cheapest price, worst risk)
    #   c5.2xlarge a: 0.080 / 1.0 = 0.08000
    options = [
        Option("m5.xlarge", "us-east-1b", 0.060, 3),
        Option("m5.xlarge", "us-east-1a", 0.070, 9),
        Option("c5.2xlarge", "us-east-1a", 0.080, 10),
    ]
    placed = choose(options)
    assert (placed.chosen.instance_type, placed.chosen.zone) == ("m5.xlarge", "us-east-1a")
    assert [round(o.expected_usd_per_hour, 5) for o in placed.options] == [0.07778, 0.08, 0.2]
    assert "$0.0778 per finished hour" in placed.reason
    assert "against c5.2xlarge in us-east-1a at $0.0800" in placed.reason


def test_no_score_is_the_middle_and_ties_keep_the_yaml_order() -> None:
    placed = choose([Option("r5.xlarge", "z1", 0.1, None), Option("m5.xlarge", "z1", 0.1, None)])
    assert placed.chosen.instance_type == "r5.xlarge"  # listed first
    assert placed.chosen.expected_usd_per_hour == pytest.approx(0.2)  # 0.1 / (1 - 0.5)
    assert "none (taken as 5)" in placed.reason
    with pytest.raises(ValueError, match="no instance type"):
        choose([])


@pytest.fixture(scope="module")
def ec2() -> Iterator[object]:
    with moto_server() as url:
        yield boto3.client(
            "ec2",
            endpoint_url=url,
            region_name="us-east-1",
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )


def test_look_up_against_moto(ec2: object) -> None:
    placed = look_up(
        ec2, ["ml.m5.xlarge", "ml.c5.2xlarge"], ["us-east-1a", "us-east-1b"], "us-east-1"
    )
    assert {o.zone for o in placed.options} == {"us-east-1a", "us-east-1b"}
    assert {o.instance_type for o in placed.options} == {"ml.m5.xlarge", "ml.c5.2xlarge"}
    assert any("no Spot placement scores" in n for n in placed.notes)
    assert any("EC2 type of the same name stands in" in n for n in placed.notes)
    # moto quotes one price everywhere: the tie goes to the first type listed.
    assert placed.chosen.instance_type == "ml.m5.xlarge"


def test_nothing_quoted_is_a_clear_error(ec2: object) -> None:
    with pytest.raises(ValueError, match="quotes no spot price for \\['m5.xlarge'\\]"):
        look_up(ec2, ["m5.xlarge"], ["mars-1a"], "us-east-1")


def test_the_choice_and_its_reason_reach_the_decision_memo(ec2: object, settings: object) -> None:
    """``estimate_cost`` carries the placement and the run report shows it."""
    import datetime as dt
    import html

    import yaml

    from costaware.config import ModelConfig
    from costaware.steps.cloud_training import placement_for
    from costaware.steps.context import StepContext
    from costaware.steps.report import publish_report
    from costaware.store import storage

    from ...conftest import ROOT

    raw = yaml.safe_load((ROOT / "include" / "models" / "elec2.yaml").read_text())
    raw["training"].update(
        backend="sagemaker",
        instance_type="ml.m5.xlarge",
        sagemaker={
            "role_arn": "arn:aws:iam::123456789012:role/t",
            "instance_types": ["ml.m5.xlarge", "ml.c5.2xlarge"],
            "zones": ["us-east-1a", "us-east-1b"],
        },
    )
    cfg = ModelConfig.model_validate(raw)
    ctx = StepContext(cfg, settings, "run-p", "test", dt.datetime(2026, 11, 1))  # type: ignore[arg-type]
    placement = placement_for(ctx, ec2)
    assert placement is not None and placement["instance_type"] == "ml.m5.xlarge"

    publish_report(ctx, {"validated": {"batch_id": "b1"}, "cost": {"placement": placement}})
    page = storage.read_bytes(ctx.report_dir("b1") / "index.html").decode()
    assert "Where to train:" in page
    assert html.escape(placement["reason"]) in page
    assert "ml.c5.2xlarge us-east-1b" in page

    # A model whose YAML leaves no choice has no placement.
    raw["training"]["sagemaker"] = {"role_arn": "arn:aws:iam::123456789012:role/t"}
    assert (
        placement_for(
            StepContext(
                ModelConfig.model_validate(raw), settings, "r", "t", dt.datetime(2026, 11, 1)
            )
        )
        is None
    )  # type: ignore[arg-type]
