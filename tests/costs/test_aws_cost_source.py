"""The aws cost and price sources against moto's server (and the fake Pricing endpoint)."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import pytest
from botocore.awsrequest import AWSResponse
from costs_helpers import NOW, ce_day, ce_result, queue_ce

from costaware.costs.aws import NO_DATA_HINT, AwsCostExplorerSource, month_chunks
from costaware.costs.aws_prices import AwsPriceSource
from costaware.costs.cache import ResponseCache
from costaware.errors import CostSourceError

TAGS = {"model": "elec2", "team": "forecasting", "env": "prod"}
RETRAIN_SPOT = ("retrain", "Spot Instances")
RETRAIN_OD = ("retrain", "On Demand Instances")
SERVE_OD = ("serve", "On Demand Instances")


class _Raw:
    def __init__(self, body: bytes) -> None:
        self.body = body

    def stream(self, **_: Any) -> Any:
        return iter([self.body])


def inject_errors(client: Any, plan: list[str | None]) -> list[dict[str, Any]]:
    """Answer the next calls with the AWS error codes in ``plan`` (None: let it through to
    moto). Returns the list of parameters every call was made with."""
    sent: list[dict[str, Any]] = []

    def record(params: dict[str, Any], **_: Any) -> None:
        sent.append(json.loads(json.dumps(params)))

    def maybe_fail(request: Any, **_: Any) -> AWSResponse | None:
        code = plan.pop(0) if plan else None
        if code is None:
            return None
        status = 500 if code == "InternalServerError" else 400
        body = json.dumps({"__type": code, "message": f"injected {code}"}).encode()
        return AWSResponse(
            request.url, status, {"Content-Type": "application/x-amz-json-1.1"}, _Raw(body)
        )

    client.meta.events.register("provide-client-params.ce.GetCostAndUsage", record)
    client.meta.events.register("before-send.ce.GetCostAndUsage", maybe_fail)
    return sent


def october() -> list[dict[str, Any]]:
    # Three retrains and daily serving; October's bill is final by Nov 20.
    return [
        ce_day(dt.date(2026, 10, 3), {RETRAIN_SPOT: 1.20, SERVE_OD: 2.0}),
        ce_day(dt.date(2026, 10, 12), {RETRAIN_SPOT: 0.90, RETRAIN_OD: 0.60, SERVE_OD: 2.0}),
        ce_day(dt.date(2026, 10, 25), {RETRAIN_SPOT: 1.50, SERVE_OD: 2.0}),
    ]


def november() -> list[dict[str, Any]]:
    return [
        ce_day(dt.date(2026, 11, 5), {RETRAIN_SPOT: 1.10, SERVE_OD: 2.0}),
        # Flagged Estimated by AWS although older than 48 h.
        ce_day(dt.date(2026, 11, 16), {RETRAIN_SPOT: 1.30}, estimated=True),
        # Within 48 h of NOW: a figure still moving, and a day that shows $0 so far.
        ce_day(dt.date(2026, 11, 19), {RETRAIN_SPOT: 0.40}, estimated=True),
        ce_day(dt.date(2026, 11, 20), {RETRAIN_SPOT: 0.0}, estimated=True),
    ]


def make_source(client: Any, ledger: Any, now: dt.datetime = NOW, **kw: Any) -> Any:
    sleeps: list[float] = []
    src = AwsCostExplorerSource(
        client, ResponseCache(ledger), clock=lambda: now, sleep=sleeps.append, **kw
    )
    src.sleeps = sleeps
    return src


def test_month_chunks_cut_at_tomorrow() -> None:
    assert month_chunks(dt.date(2026, 9, 20), dt.date(2026, 12, 1), dt.date(2026, 11, 20)) == [
        (dt.date(2026, 9, 1), dt.date(2026, 10, 1)),
        (dt.date(2026, 10, 1), dt.date(2026, 11, 1)),
        (dt.date(2026, 11, 1), dt.date(2026, 11, 21)),
    ]


def test_daily_costs_by_tag_with_lag_and_cache(moto: str, aws_client: Any, ledger: Any) -> None:
    queue_ce(moto, [ce_result(october()), ce_result(november())])
    ce = aws_client("ce")
    sent = inject_errors(ce, [])
    src = make_source(ce, ledger)

    recs = src.costs(TAGS, dt.date(2026, 10, 1), dt.date(2026, 11, 21))

    # The request: daily, grouped by purpose tag and purchase type, filtered by every tag.
    assert len(sent) == 2
    assert sent[0]["TimePeriod"] == {"Start": "2026-10-01", "End": "2026-11-01"}
    assert sent[1]["TimePeriod"] == {"Start": "2026-11-01", "End": "2026-11-21"}
    assert sent[0]["Granularity"] == "DAILY"
    assert sent[0]["GroupBy"] == [
        {"Type": "TAG", "Key": "purpose"},
        {"Type": "DIMENSION", "Key": "PURCHASE_TYPE"},
    ]
    assert sent[0]["Filter"] == {
        "And": [
            {"Tags": {"Key": "env", "Values": ["prod"], "MatchOptions": ["EQUALS"]}},
            {"Tags": {"Key": "model", "Values": ["elec2"], "MatchOptions": ["EQUALS"]}},
            {"Tags": {"Key": "team", "Values": ["forecasting"], "MatchOptions": ["EQUALS"]}},
        ]
    }
    # The numbers: retrain spend only, one record per day with spend, never a $0 day.
    by_day = {r.usage_date.isoformat(): r for r in recs}
    assert sorted(by_day) == [
        "2026-10-03",
        "2026-10-12",
        "2026-10-25",
        "2026-11-05",
        "2026-11-16",
        "2026-11-19",
    ]
    assert by_day["2026-10-12"].usd == pytest.approx(1.50)
    assert by_day["2026-10-12"].capacity == "mixed"
    assert by_day["2026-10-03"].capacity == "spot"
    assert sum(r.usd for r in recs) == pytest.approx(1.2 + 1.5 + 1.5 + 1.1 + 1.3 + 0.4)
    assert [d for d, r in by_day.items() if not r.reconciled] == ["2026-11-16", "2026-11-19"]
    assert src.last_report.unreconciled_days == ("2026-11-16", "2026-11-19", "2026-11-20")
    assert src.last_report.requests == 2

    # Warm: a second run the same day asks Cost Explorer nothing.
    warm = make_source(aws_client("ce"), ledger)
    assert warm.costs(TAGS, dt.date(2026, 10, 1), dt.date(2026, 11, 21)) == recs
    assert warm.requests_made == 0
    assert warm.last_report.cache_hits == 2
    # Serving costs come from the same cached answers.
    serve = warm.costs(TAGS, dt.date(2026, 10, 1), dt.date(2026, 11, 21), purpose="serve")
    assert sum(r.usd for r in serve) == pytest.approx(8.0)
    assert warm.requests_made == 0

    # Next day: October is final and stays cached; only the open month is asked again.
    later = make_source(aws_client("ce"), ledger, now=NOW + dt.timedelta(hours=13))
    later.costs(TAGS, dt.date(2026, 10, 1), dt.date(2026, 11, 21))
    assert later.requests_made == 1


def test_all_pages_are_read(moto: str, aws_client: Any, ledger: Any) -> None:
    days = october()
    queue_ce(moto, [ce_result(days[:2], next_token="page-2"), ce_result(days[2:])])
    src = make_source(aws_client("ce"), ledger)
    recs = src.costs(TAGS, dt.date(2026, 10, 1), dt.date(2026, 11, 1))
    assert [r.usage_date.day for r in recs] == [3, 12, 25]
    assert src.last_report.pages == 2 and src.requests_made == 2


def test_a_page_failing_midway_fails_the_answer_and_caches_nothing(
    moto: str, aws_client: Any, ledger: Any
) -> None:
    days = october()
    queue_ce(moto, [ce_result(days[:2], next_token="page-2"), ce_result(days[2:])])
    ce = aws_client("ce")
    inject_errors(ce, [None, "InternalServerError"])
    src = make_source(ce, ledger)
    with pytest.raises(CostSourceError, match="failed on page 2 .*No partial result"):
        src.costs(TAGS, dt.date(2026, 10, 1), dt.date(2026, 11, 1))
    assert ResponseCache(ledger).entries() == 0


def test_throttling_backs_off_then_succeeds(moto: str, aws_client: Any, ledger: Any) -> None:
    queue_ce(moto, [ce_result(october())])
    ce = aws_client("ce")
    inject_errors(ce, ["ThrottlingException", "LimitExceededException"])
    src = make_source(ce, ledger)
    recs = src.costs(TAGS, dt.date(2026, 10, 1), dt.date(2026, 11, 1))
    assert len(recs) == 3
    assert src.sleeps == [1.0, 2.0]
    assert src.requests_made == 3


def test_throttled_for_good_is_an_error(moto: str, aws_client: Any, ledger: Any) -> None:
    ce = aws_client("ce")
    inject_errors(ce, ["LimitExceededException"] * 4)
    src = make_source(ce, ledger, max_retries=3)
    with pytest.raises(CostSourceError, match="still throttled .*after 4 attempts"):
        src.costs(TAGS, dt.date(2026, 10, 1), dt.date(2026, 11, 1))
    assert src.sleeps == [1.0, 2.0, 4.0]


def test_request_cap_per_run(moto: str, aws_client: Any, ledger: Any) -> None:
    queue_ce(moto, [ce_result(october()), ce_result(november())])
    src = make_source(aws_client("ce"), ledger, max_requests=1)
    with pytest.raises(CostSourceError, match="request cap reached: 1 request.* cap is 1"):
        src.costs(TAGS, dt.date(2026, 10, 1), dt.date(2026, 11, 21))


def test_empty_answer_is_no_data_for_this_tag_never_free(
    moto: str, aws_client: Any, ledger: Any
) -> None:
    src = make_source(aws_client("ce"), ledger)
    with pytest.raises(CostSourceError, match="model=nosuch") as err:
        src.costs({**TAGS, "model": "nosuch"}, dt.date(2026, 10, 1), dt.date(2026, 11, 1))
    assert NO_DATA_HINT in str(err.value)


def test_serving_spend_but_no_retrain_yet_is_no_history(
    moto: str, aws_client: Any, ledger: Any
) -> None:
    queue_ce(moto, [ce_result([ce_day(dt.date(2026, 10, 3), {SERVE_OD: 2.0})])])
    src = make_source(aws_client("ce"), ledger)
    assert src.costs(TAGS, dt.date(2026, 10, 1), dt.date(2026, 11, 1)) == []
    assert src.last_report.notes == ()


def test_custom_tag_keys(moto: str, aws_client: Any, ledger: Any) -> None:
    queue_ce(moto, [ce_result(october())])
    ce = aws_client("ce")
    sent = inject_errors(ce, [])
    src = make_source(ce, ledger, tag_keys={"model": "ml:model", "purpose": "ml:purpose"})
    src.costs({"model": "elec2"}, dt.date(2026, 10, 1), dt.date(2026, 11, 1))
    assert sent[0]["Filter"] == {
        "Tags": {"Key": "ml:model", "Values": ["elec2"], "MatchOptions": ["EQUALS"]}
    }
    assert sent[0]["GroupBy"][0] == {"Type": "TAG", "Key": "ml:purpose"}


# -- prices -----------------------------------------------------------------------------
def _spot_history(monkeypatch: pytest.MonkeyPatch, prices: dict[str, list[tuple[str, str]]]):
    """moto answers every spot price with a dummy $0.00001: make it return realistic ones."""
    from moto.core.responses import ActionResult
    from moto.ec2.responses.spot_instances import SpotInstances

    def describe_spot_price_history(self: Any) -> ActionResult:
        types = self._get_param("InstanceTypes", [])
        history = [
            {
                "InstanceType": t,
                "ProductDescription": "Linux/UNIX",
                "SpotPrice": price,
                "AvailabilityZone": az,
                "Timestamp": ts,
            }
            for t in types
            for az, rows in prices.items()
            for price, ts in rows
        ]
        return ActionResult({"SpotPriceHistory": history})

    monkeypatch.setattr(SpotInstances, "describe_spot_price_history", describe_spot_price_history)


def test_spot_price_is_median_of_latest_per_zone(
    aws_client: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    _spot_history(
        monkeypatch,
        {
            "us-east-1a": [("0.0712", "2026-11-20T09:00:00Z"), ("0.0690", "2026-11-20T11:00:00Z")],
            "us-east-1b": [("0.0741", "2026-11-20T10:00:00Z")],
            "us-east-1c": [("0.0802", "2026-11-20T08:00:00Z")],
        },
    )
    src = AwsPriceSource(aws_client, clock=lambda: NOW.replace(tzinfo=dt.UTC))
    price = src.price("m5.xlarge", "us-east-1", "spot")
    assert price.usd_per_hour == pytest.approx(0.0741)
    assert price.quality == "estimated" and "spot price history" in price.source
    assert price.as_of.startswith("2026-11-20T11:00")


def test_spot_price_missing_is_an_error(aws_client: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    _spot_history(monkeypatch, {})
    src = AwsPriceSource(aws_client)
    with pytest.raises(CostSourceError, match="no spot price history for 'm5.xlarge'"):
        src.price("m5.xlarge", "us-east-1", "spot")


def _product(usd: str) -> str:
    return json.dumps(
        {
            "product": {"attributes": {"instanceType": "m5.xlarge", "regionCode": "us-east-1"}},
            "terms": {
                "OnDemand": {
                    "ABC.JRTCKXETXF": {
                        "priceDimensions": {
                            "ABC.JRTCKXETXF.6YS6EN2CT7": {
                                "unit": "Hrs",
                                "pricePerUnit": {"USD": usd},
                                "description": "$0.192 per On Demand Linux",
                            }
                        }
                    }
                }
            },
        }
    )


def test_on_demand_price_from_pricing_api(aws_client: Any, gcloud: Any) -> None:
    gcloud.price_list = [_product("0.1920000000")]
    price = AwsPriceSource(aws_client).price("m5.xlarge", "us-east-1", "on_demand")
    assert price.usd_per_hour == pytest.approx(0.192)
    req = gcloud.requests[-1]
    assert req["target"] == "AWSPriceListService.GetProducts"
    assert req["body"]["ServiceCode"] == "AmazonEC2"
    fields = {f["Field"]: f["Value"] for f in req["body"]["Filters"]}
    assert fields["instanceType"] == "m5.xlarge" and fields["regionCode"] == "us-east-1"
    assert fields["operatingSystem"] == "Linux" and fields["tenancy"] == "Shared"


def test_on_demand_price_ambiguous_or_missing_is_an_error(aws_client: Any, gcloud: Any) -> None:
    gcloud.price_list = [_product("0.192"), _product("0.250")]
    with pytest.raises(CostSourceError, match="2 different on-demand prices"):
        AwsPriceSource(aws_client).price("m5.xlarge", "us-east-1", "on_demand")
    gcloud.price_list = []
    with pytest.raises(CostSourceError, match="no Linux shared on-demand hourly price"):
        AwsPriceSource(aws_client).price("m5.xlarge", "us-east-1", "on_demand")


def test_checkpoint_estimate_requests_cold_and_warm(
    moto: str, aws_client: Any, ledger: Any
) -> None:
    """How many billed Cost Explorer requests one checkpoint's cost estimate makes."""
    from costaware.config import load_model_config
    from costaware.costs.estimate import estimate_retrain_cost
    from costaware.costs.prices import StaticPriceSource

    cfg = load_model_config(Path(__file__).resolve().parents[2] / "include/models/elec2.yaml")
    tags = {"model": cfg.tags.model, "team": cfg.tags.team, "env": cfg.tags.env}
    # Aug, Sep, Oct, Nov 1-21; then Nov 1-22 asked again the next day.
    queue_ce(
        moto,
        [
            ce_result([]),
            ce_result([]),
            ce_result(october()),
            ce_result(november()),
            ce_result(november()),
        ],
    )
    counts = []
    for now in (NOW, NOW + dt.timedelta(hours=1), NOW + dt.timedelta(days=1)):
        src = make_source(aws_client("ce"), ledger, now=now)
        est = estimate_retrain_cost(cfg, src, StaticPriceSource(), now.date())
        # The pipeline then asks for this month's spend: the same open-month request.
        src.costs(tags, now.date().replace(day=1), now.date() + dt.timedelta(days=1))
        counts.append(src.requests_made)
        assert est.history_runs > 0 and est.quality == "estimated"  # recent days unreconciled
    assert src.last_report is not None and tags["model"] == "elec2"
    # 90-day lookback = 4 calendar months cold; same day warm: 0; next day: the open month.
    assert counts == [4, 0, 1]
