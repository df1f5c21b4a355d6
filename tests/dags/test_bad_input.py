"""Broken batches are quarantined with a clear message; nothing is trained or lost."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest

from costaware.app.replay import land_batch

from ..conftest import make_settings
from .harness import WEEKS, Harness

pytestmark = pytest.mark.airflow  # runs the real retrain DAG with dag.test()


@pytest.fixture(scope="module")
def harness(airflow_home, tmp_path_factory) -> Harness:
    home = tmp_path_factory.mktemp("bad-input")
    mp = pytest.MonkeyPatch()
    mp.setenv("COSTAWARE_HOME", str(home))
    mp.delenv("COSTAWARE_DB_URL", raising=False)
    h = Harness(make_settings(home))
    for i in range(4):  # a champion exists after week 3
        assert h.week(i) == "success"
    assert h.champion() == "1"
    yield h
    mp.undo()


def _frame(h: Harness) -> pd.DataFrame:
    name, part = WEEKS[4]
    land_batch(h.settings, h.cfg, "tmp", part)
    path = h.settings.landing("elec2") / "tmp.parquet"
    frame = pd.read_parquet(path)
    path.unlink()
    return frame


def _parquet(h: Harness, path: Path, change: Callable[[pd.DataFrame], pd.DataFrame]) -> None:
    change(_frame(h)).to_parquet(path, index=False)


CASES = {
    "missing_column": (
        lambda h, p: _parquet(h, p, lambda f: f.drop(columns=["transfer"])),
        ".parquet",
        "expect_column_to_exist on column 'transfer'",
    ),
    "wrong_type": (
        lambda h, p: _parquet(h, p, lambda f: f.assign(vicprice="high")),
        ".parquet",
        "expect_column_values_to_be_in_type_list on column 'vicprice'",
    ),
    "out_of_range": (
        lambda h, p: _parquet(h, p, lambda f: f.assign(nswdemand=f.nswdemand + 3)),
        ".parquet",
        "expect_column_values_to_be_between on column 'nswdemand'",
    ),
    "empty_file": (lambda h, p: p.write_bytes(b""), ".parquet", "the file is empty (0 bytes)"),
    "no_rows": (
        lambda h, p: _parquet(h, p, lambda f: f.iloc[:0]),
        ".parquet",
        "expect_table_row_count_to_be_between on table",
    ),
    "corrupt_parquet": (
        lambda h, p: p.write_bytes(b"PAR1\x00garbage\x00not a footer"),
        ".parquet",
        "cannot be read as Parquet",
    ),
    "corrupt_csv": (
        lambda h, p: p.write_bytes(b'event_id,"event_time\n1,"2020\x00\xff\xfe'),
        ".csv",
        "cannot be read as CSV",
    ),
}


@pytest.mark.parametrize("case", list(CASES))
def test_bad_batch_is_quarantined(harness: Harness, case: str) -> None:
    make, suffix, words = CASES[case]
    name = f"b9999_{case}"
    path = harness.settings.landing("elec2") / f"{name}{suffix}"
    path.parent.mkdir(parents=True, exist_ok=True)
    make(harness, path)
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    versions, champion = harness.versions(), harness.champion()

    assert harness.run({"batch": path.name}) == "failed"

    folder = harness.settings.quarantine("elec2") / name
    kept = folder / path.name
    assert kept.exists() and hashlib.sha256(kept.read_bytes()).hexdigest() == digest
    assert not path.exists()
    report = json.loads((folder / "validation.json").read_text())
    assert report["status"] == "fail"
    row = harness.ctx.ledger.batch("elec2", name)
    assert row["status"] == "quarantined" and words in row["message"], row["message"]
    assert harness.ctx.ledger.decision_for_batch("elec2", name) is None  # nothing downstream
    assert harness.versions() == versions and harness.champion() == champion


def test_retried_tasks_are_idempotent(harness: Harness) -> None:
    """A task retried by Airflow (same run id) must not register a second model version,
    record a second cost or audit row, or move an alias twice."""
    from costaware.steps.context import StepContext
    from costaware.steps.evaluate import evaluate_challenger
    from costaware.steps.promote import promote_or_reject
    from costaware.steps.train import train_challenger

    ctx = StepContext.for_model("elec2", run_id="retried-run", actor="test")
    batch = WEEKS[3][0]
    first = train_challenger(ctx, batch)
    costs = ctx.ledger.run_costs("elec2", "retried-run")
    again = train_challenger(ctx, batch)
    assert again["version"] == first["version"] and again["reused"] is True
    assert harness.versions().count(first["version"]) == 1
    # One row per attempt, each priced, and the retry added none.
    assert costs and all(c["usd"] > 0 and c["status"] == "final" for c in costs)
    assert ctx.ledger.run_costs("elec2", "retried-run") == costs
    assert again["usd"] == first["usd"] == sum(c["usd"] for c in costs)
    evaluation = {
        **evaluate_challenger(ctx, first["version"]),
        "verdict": "promote",
        "reason": "test: forced verdict",
    }
    promote_or_reject(ctx, evaluation)
    champion = harness.champion()
    previous = ctx.registry.alias("elec2", "previous_champion")
    promote_or_reject(ctx, evaluation)
    assert harness.champion() == champion == first["version"]
    assert ctx.registry.alias("elec2", "previous_champion") == previous
    rows = [a for a in ctx.ledger.audit("elec2") if a["run_id"] == "retried-run"]
    assert [a["action"] for a in rows] == ["promote"]
