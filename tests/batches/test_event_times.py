"""Event times must be times: the batch suite's one check beyond Great Expectations."""

from __future__ import annotations

import pandas as pd
import pytest

from costaware.batches.validation import validate_frame

from .. import factories
from ..conftest import ROOT

CFG = factories.model("elec2")
GOOD = factories.batches("elec2")[5][1].drop(columns=["class"]).reset_index(drop=True)
CHECK = "expect_column_values_to_be_event_times"


def _iso(frame: pd.DataFrame) -> pd.Series:
    return frame["event_time"].dt.strftime("%Y-%m-%dT%H:%M:%S")


CASES = {
    # name -> (event_time column, passes)
    "parquet_timestamps": (lambda f: f["event_time"], True),
    "timezone_aware": (lambda f: f["event_time"].dt.tz_localize("Australia/Sydney"), True),
    "iso_text": (_iso, True),
    "words": (lambda f: _iso(f).where(f.index != 7, "yesterday"), False),
    "numbers": (lambda f: pd.Series(range(len(f))), False),
    "two_formats": (
        lambda f: _iso(f).where(f.index < 300, f["event_time"].dt.strftime("%d/%m/%Y %H:%M")),
        False,
    ),
}


@pytest.mark.parametrize("case", list(CASES))
def test_event_times(case: str) -> None:
    make, passes = CASES[case]
    out = validate_frame(GOOD.assign(event_time=make(GOOD)), CFG, ROOT / "great_expectations")
    failed = [f for f in out.failures if f.expectation == CHECK]
    if passes:
        assert out.status == "pass", out.summary()
    else:
        assert out.status == "fail" and [f.column for f in failed] == ["event_time"]
        assert "not dates and times in one format" in failed[0].detail
