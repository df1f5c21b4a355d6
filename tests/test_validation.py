"""Great Expectations on real Elec2 batches, good and broken."""

from __future__ import annotations

import pytest

from costaware.batches.validation import validate_frame

from . import factories
from .conftest import ROOT

GX = ROOT / "great_expectations"


@pytest.fixture(scope="module")
def good():
    return factories.batches("elec2")[5][1].drop(columns=["class"]).reset_index(drop=True)


def test_real_batch_passes(good) -> None:
    out = validate_frame(good, factories.model(), GX)
    assert out.status == "pass", out.summary()
    assert out.evaluated > 20


def test_missing_column_fails_naming_it(good) -> None:
    out = validate_frame(good.drop(columns=["vicdemand"]), factories.model(), GX)
    assert out.status == "fail"
    assert any(
        f.column == "vicdemand" and f.expectation == "expect_column_to_exist" for f in out.failures
    )


def test_wrong_type_fails(good) -> None:
    bad = good.copy()
    bad["transfer"] = bad["transfer"].map(lambda v: f"{v:.3f}")
    out = validate_frame(bad, factories.model(), GX)
    assert out.status == "fail"
    assert ("expect_column_values_to_be_in_type_list", "transfer") in {
        (f.expectation, f.column) for f in out.failures
    }


def test_out_of_range_many_fail_few_warn(good) -> None:
    many = good.copy()
    many.loc[:50, "nswdemand"] = 7.0
    out = validate_frame(many, factories.model(), GX)
    assert out.status == "fail"
    assert any(f.column == "nswdemand" and "unexpected" in f.detail for f in out.failures)
    few = good.copy()
    few.loc[0, "nswdemand"] = 1.5  # one stray reading in 336: let it through, loudly
    out = validate_frame(few, factories.model(), GX)
    assert out.status == "warn"
    assert [w.column for w in out.warnings] == ["nswdemand"]


def test_nulls_and_duplicate_ids_fail(good) -> None:
    bad = good.copy()
    bad.loc[3, "period"] = None
    bad.loc[4, "event_id"] = bad.loc[5, "event_id"]
    out = validate_frame(bad, factories.model(), GX)
    failed = {(f.expectation, f.column) for f in out.failures}
    assert ("expect_column_values_to_not_be_null", "period") in failed
    assert ("expect_column_values_to_be_unique", "event_id") in failed
