"""Idle SageMaker capacity found and acted on, through boto3 over HTTP against moto's server.

What moto 5.2.5 does not do, and how the tests stand in for it (the stand-in is changed, never
costaware's code):

* every training job is created ``Completed`` and there is no ``StopTrainingJob``: a job is put
  ``InProgress`` in moto's own backend (the server runs in this process), and
  ``stop_training_job`` is added to moto's SageMaker responses (it marks the job ``Stopped``),
  so the call still goes over HTTP through botocore;
* every resource is created "now" (wall time) and starting or stopping a notebook does not move
  its ``LastModifiedTime``: age is made by the run's clock, ``now`` days after creation.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator
from typing import Any

import pendulum
import pytest
from sagemaker_helpers import (
    REGION,
    ROLE,
    add_stop_training_job,
    calls,
    make_endpoint,
    make_training_job,
    moto_backend,
)

from costaware.costs.idle import IdleLimits, find_idle
from costaware.costs.idle_actions import apply_actions
from costaware.costs.prices import StaticPriceSource
from costaware.errors import ConfigError, CostSourceError

# ml.m5.large is priced exactly; ml.m5.xlarge only through its EC2 type (a lower bound);
# ml.t2.medium (and t2.medium) not at all.
TABLE = {"ml.m5.large": (0.115, 0.05), "m5.xlarge": (0.192, 0.074)}


@pytest.fixture
def stop_training_job_in_moto(monkeypatch: pytest.MonkeyPatch) -> None:
    add_stop_training_job(monkeypatch)


@pytest.fixture
def fleet(aws_client: Callable[..., Any]) -> Iterator[dict[str, Any]]:
    """An account with idle and busy capacity of every kind, created now (wall time)."""
    sm, cw = aws_client("sagemaker"), aws_client("cloudwatch")
    created = dt.datetime.now(dt.UTC)
    make_endpoint(sm, "idle-ep", "ml.m5.large", 2)
    make_endpoint(sm, "busy-ep", "ml.m5.large", 1)
    make_endpoint(sm, "async-ep", "ml.m5.large", 1, asynchronous=True)  # no Invocations metric
    for name in ("nb-left-on", "nb-stopped"):
        sm.create_notebook_instance(
            NotebookInstanceName=name, InstanceType="ml.t2.medium", RoleArn=ROLE
        )
    sm.stop_notebook_instance(NotebookInstanceName="nb-stopped")
    make_training_job(sm, "job-overdue", "ml.m5.xlarge", spot=True)
    far = (created + dt.timedelta(days=30)).isoformat()
    make_training_job(
        sm, "job-long-deadline", "ml.m5.xlarge", spot=False, tags={"costaware:deadline": far}
    )
    make_training_job(sm, "job-done", "ml.m5.xlarge", spot=False)  # finished: not running
    moto_backend().training_jobs["job-done"].training_job_status = "Completed"
    now = created + dt.timedelta(days=10)
    calls(cw, "idle-ep", created, 500)  # 10 days before the clock: outside the 7-day window
    calls(cw, "busy-ep", now - dt.timedelta(days=2), 3)
    yield {"sm": sm, "cw": cw, "now": now, "created": created}


def test_find_idle_lists_exactly_the_idle_ones_with_their_price(fleet: dict[str, Any]) -> None:
    report = find_idle(fleet["sm"], fleet["cw"], StaticPriceSource(TABLE), fleet["now"])
    got = {(r.kind, r.name): r for r in report.idle}
    assert set(got) == {
        ("endpoint", "idle-ep"),
        ("notebook", "nb-left-on"),
        ("training_job", "job-overdue"),
    }
    assert report.checked == {"endpoint": 3, "notebook": 1, "training_job": 2}
    assert report.not_judged == (
        "endpoint async-ep: asynchronous inference publishes no Invocations metric",
    )
    ep = got[("endpoint", "idle-ep")]
    assert ep.action == "delete_endpoint" and ep.instance_count == 2
    assert ep.usd_per_day == pytest.approx(2 * 0.115 * 24)  # $5.52, priced as ml.m5.large
    assert not ep.lower_bound
    job = got[("training_job", "job-overdue")]
    # Managed spot on ml.m5.xlarge: only m5.xlarge's spot price is known, a lower bound.
    assert job.usd_per_day == pytest.approx(0.074 * 24) and job.lower_bound
    assert "past its deadline" in job.why and "start + 24 h" in job.why
    nb = got[("notebook", "nb-left-on")]
    assert nb.action == "stop_notebook_instance"
    assert nb.usd_per_day is None and "unknown" in nb.price_note and "t2.medium" in nb.price_note
    total = report.per_day
    assert total.known_usd == pytest.approx(5.52 + 1.776) and total.unknown == 1
    text = report.text()
    assert "at least $7.30 + 1 unknown" in text and "nb-left-on" in text and "busy-ep" not in text


def test_nothing_is_idle_before_the_limits(fleet: dict[str, Any]) -> None:
    """Three days (72 h) after creation: no endpoint is old enough for 7 idle days, and with
    96 h limits neither the notebook nor the training job is idle or overdue."""
    # As Airflow passes it: a pendulum DateTime (its arithmetic drops a stdlib tzinfo).
    now = pendulum.instance(fleet["created"] + dt.timedelta(days=3))
    limits = IdleLimits(endpoint_idle_days=7, notebook_idle_hours=96, training_max_hours=96)
    report = find_idle(fleet["sm"], fleet["cw"], StaticPriceSource(TABLE), now, limits)
    assert report.idle == ()
    assert "nothing idle" in report.text()
    shorter = IdleLimits(endpoint_idle_days=2, notebook_idle_hours=71, training_max_hours=96)
    found = find_idle(fleet["sm"], fleet["cw"], StaticPriceSource(TABLE), now, shorter).idle
    # busy-ep was called 2 days before day 10, i.e. after day 3: in a 2-day window ending on
    # day 3 nobody called either endpoint.
    assert {(r.kind, r.name) for r in found} == {  # async-ep: never judged idle
        ("endpoint", "busy-ep"),
        ("endpoint", "idle-ep"),
        ("notebook", "nb-left-on"),
    }


def test_approved_actions_act_once_and_spare_what_came_back(
    fleet: dict[str, Any], stop_training_job_in_moto: None
) -> None:
    sm, cw, now = fleet["sm"], fleet["cw"], fleet["now"]
    prices = StaticPriceSource(TABLE)
    report = find_idle(sm, cw, prices, now)
    approved = [r.as_dict() for r in report.idle]
    # Between the report and the approval, someone calls idle-ep again.
    make_endpoint(sm, "other-ep", "ml.m5.large", 1)  # not approved: never touched
    calls(cw, "idle-ep", now - dt.timedelta(hours=1), 1)
    results = {r.name: r.outcome for r in apply_actions(sm, cw, prices, approved, now)}
    assert results == {
        "idle-ep": "not idle any more (InService): left alone",
        "nb-left-on": "done",
        "job-overdue": "done",
    }
    assert sm.describe_endpoint(EndpointName="idle-ep")["EndpointStatus"] == "InService"
    nb = sm.describe_notebook_instance(NotebookInstanceName="nb-left-on")
    assert nb["NotebookInstanceStatus"] == "Stopped"
    assert sm.describe_training_job(TrainingJobName="job-overdue")["TrainingJobStatus"] == "Stopped"
    assert sm.describe_training_job(TrainingJobName="job-long-deadline")["TrainingJobStatus"] == (
        "InProgress"
    )
    # A retry after everything went through converges: nothing is acted on twice.
    again = {r.name: r.outcome for r in apply_actions(sm, cw, prices, approved, now)}
    assert again["nb-left-on"] == again["job-overdue"] == "already done"


def test_an_approved_idle_endpoint_is_deleted_and_a_retry_finds_it_gone(
    fleet: dict[str, Any],
) -> None:
    sm, cw, now = fleet["sm"], fleet["cw"], fleet["now"]
    prices = StaticPriceSource(TABLE)
    [ep] = [r.as_dict() for r in find_idle(sm, cw, prices, now).idle if r.kind == "endpoint"]
    assert [r.outcome for r in apply_actions(sm, cw, prices, [ep], now)] == ["done"]
    left = sorted(e["EndpointName"] for e in sm.list_endpoints()["Endpoints"])
    assert left == ["async-ep", "busy-ep"]
    # Its config and model stay: the endpoint can be recreated.
    assert sm.describe_endpoint_config(EndpointConfigName="idle-ep-config")["ProductionVariants"]
    assert [r.outcome for r in apply_actions(sm, cw, prices, [ep], now)] == ["already done"]


def test_an_unreachable_cloudwatch_is_an_error_not_idle(
    fleet: dict[str, Any], aws_client: Callable[..., Any]
) -> None:
    import boto3
    from botocore.config import Config

    dead = boto3.client(
        "cloudwatch",
        region_name=REGION,
        endpoint_url="http://127.0.0.1:9",  # discard port: nothing answers
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        config=Config(retries={"total_max_attempts": 1}, connect_timeout=2),
    )
    with pytest.raises(CostSourceError, match="SageMaker/CloudWatch in us-east-1"):
        find_idle(fleet["sm"], dead, StaticPriceSource(TABLE), fleet["now"])


def test_a_bad_deadline_tag_names_the_job_and_the_format(aws_client: Callable[..., Any]) -> None:
    sm, cw = aws_client("sagemaker"), aws_client("cloudwatch")
    make_training_job(
        sm, "job-typo", "ml.m5.xlarge", spot=False, tags={"costaware:deadline": "friday"}
    )
    with pytest.raises(ConfigError, match=r"'job-typo': tag costaware:deadline='friday' is not"):
        find_idle(sm, cw, StaticPriceSource(TABLE), dt.datetime.now(dt.UTC))


@pytest.mark.parametrize("bad", [0, -1.0, "7"])
def test_limits_must_be_positive_numbers(bad: Any) -> None:
    with pytest.raises(ConfigError, match="endpoint_idle_days=.*must be a number > 0"):
        IdleLimits(endpoint_idle_days=bad)


def test_invocations_of_many_endpoints_are_read_in_batches(aws_client: Callable[..., Any]) -> None:
    """101 endpoints: two GetMetricData requests (100 queries each at most), and each
    endpoint's calls counted as its own, the last one's included."""
    sm, cw = aws_client("sagemaker"), aws_client("cloudwatch")
    created = dt.datetime.now(dt.UTC)
    names = [f"ep-{i:03d}" for i in range(101)]
    for name in names:
        make_endpoint(sm, name, "ml.m5.large", 1)
    now = created + dt.timedelta(days=8)
    calls(cw, "ep-100", now - dt.timedelta(hours=5), 2)  # the 101st: in the second request
    calls(cw, "ep-000", now - dt.timedelta(hours=3), 1)
    requests: list[int] = []
    cw.meta.events.register(
        "provide-client-params.cloudwatch.GetMetricData",
        lambda params, **_: requests.append(len(params["MetricDataQueries"])),
    )
    report = find_idle(sm, cw, StaticPriceSource(TABLE), now)
    assert requests == [100, 1]
    assert {r.name for r in report.idle} == set(names) - {"ep-000", "ep-100"}


def test_an_endpoint_costs_its_instances_and_nothing_for_serverless() -> None:
    from costaware.costs.idle_prices import SageMakerPricer

    pricer = SageMakerPricer(StaticPriceSource(TABLE), REGION)
    desc = {"ProductionVariants": [{"VariantName": "a", "CurrentInstanceCount": 3}]}
    config = {
        "ProductionVariants": [
            {"VariantName": "a", "InstanceType": "ml.m5.large", "InitialInstanceCount": 1},
            {"VariantName": "b", "ServerlessConfig": {"MemorySizeInMB": 2048}},
        ]
    }
    price = pricer.endpoint(desc, config)
    # The current count (3, after autoscaling) is billed, not the initial one.
    assert price.usd_per_hour == pytest.approx(3 * 0.115) and price.count == 3
    assert "b: serverless, no charge while idle" in price.note and not price.lower_bound
    config["ProductionVariants"].append(
        {"VariantName": "c", "InstanceType": "ml.t2.medium", "InitialInstanceCount": 1}
    )
    unknown = pricer.endpoint(desc, config)
    assert unknown.usd_per_hour is None  # one unknown variant: the endpoint's total is unknown
    config["ProductionVariants"][1:] = [
        {
            "VariantName": "b",
            "ServerlessConfig": {"MemorySizeInMB": 2048, "ProvisionedConcurrency": 2},
        }
    ]
    assert pricer.endpoint(desc, config).usd_per_hour is None  # billed while idle: not priced
    desc["ProductionVariants"][0]["CurrentInstanceCount"] = 0  # scaled to zero
    config["ProductionVariants"][1:] = []
    assert pricer.endpoint(desc, config).usd_per_hour == 0.0
