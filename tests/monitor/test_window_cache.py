"""Fixed monitor windows and the reuse of unchanged windows' results from the previous run.

A real Elec2 champion in a real MLflow registry; six days of logged predictions (the
serving app's ``log_predictions`` / ``record_labels`` writes) with scores and labels drawn
so the labels follow the scores. ``SAMPLE_ROWS`` is lowered so the days are sampled (and,
on PostgreSQL, drawn with TABLESAMPLE), as 10 M logged rows would be. Each check compares
a run that reused windows with a run at the same clock that computed every window
(``run_monitor(ctx, reuse=False)``): the results must be identical. Both ledgers.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from costaware.config import MonitorSpec
from costaware.models.registry import CHAMPION
from costaware.monitor import queries, windows
from costaware.monitor.run import run_monitor
from costaware.settings import Settings
from costaware.steps.context import StepContext
from costaware.store import ledger as ledger_mod

from ..conftest import ROOT
from ..serve import helpers as h

T0 = dt.datetime(2026, 3, 10)  # a midnight: a boundary of 24 h windows
HOUR, DAY = dt.timedelta(hours=1), dt.timedelta(days=1)
DAYS = 6
PER_HOUR = 40


def test_window_bounds_are_fixed_multiples_of_the_width_from_the_origin() -> None:
    # Weekly windows from the default origin (a Monday midnight): ISO weeks.
    clock = dt.datetime(1996, 5, 7, 13, 30)  # a Tuesday afternoon
    b = windows.window_bounds(clock, 168, 3)
    assert [(w.start, w.end, w.open) for w in b] == [
        (dt.datetime(1996, 5, 6), clock, True),
        (dt.datetime(1996, 4, 29), dt.datetime(1996, 5, 6), False),
        (dt.datetime(1996, 4, 22), dt.datetime(1996, 4, 29), False),
    ]
    assert all(w.start.weekday() == 0 for w in b)
    # Daily windows from the same origin run midnight to midnight.
    assert windows.window_bounds(clock, 24, 1)[0].start == dt.datetime(1996, 5, 7)
    # A clock on a boundary has no open stretch: window 0 is the window closing there.
    on = windows.window_bounds(dt.datetime(1996, 5, 6), 168, 2)
    assert [(w.start, w.end, w.open) for w in on] == [
        (dt.datetime(1996, 4, 29), dt.datetime(1996, 5, 6), False),
        (dt.datetime(1996, 4, 22), dt.datetime(1996, 4, 29), False),
    ]
    # Whatever the clock within a period, the closed windows are the same ones.
    later = windows.window_bounds(clock + dt.timedelta(days=1), 168, 3)
    assert [(w.start, w.end) for w in later[1:]] == [(w.start, w.end) for w in b[1:]]
    # monitor.window_origin moves the boundaries: weeks that start when the data's do.
    tuesday = dt.datetime(1996, 5, 7)
    own = windows.window_bounds(clock, 168, 2, origin=tuesday)
    assert [(w.start, w.end, w.open) for w in own] == [
        (tuesday, clock, True),
        (tuesday - dt.timedelta(days=7), tuesday, False),
    ]
    # A width that is not whole hours: boundaries at multiples of 5.5 h from the origin.
    odd = windows.window_bounds(dt.datetime(2026, 3, 10, 12), 5.5, 3)
    for w in odd:
        assert (w.start - windows.ORIGIN) % dt.timedelta(hours=5.5) == dt.timedelta(0)
    assert odd[0].open and odd[1].end == odd[0].start and odd[2].end == odd[1].start


def _log(ledger: Any, start: dt.datetime, hours: int, prefix: str, seed: int) -> list[str]:
    rng = np.random.default_rng(seed)
    n = hours * PER_HOUR
    offsets = np.sort(rng.random(n)) * hours * 3600
    rows = [
        {
            "model": "elec2",
            "request_id": f"{prefix}{i}",
            "ts": start + dt.timedelta(seconds=float(o)),
            "features": {f: float(rng.random()) for f in h.FEATURES},
            "score": float(rng.random()),
            "version": "1",
            "alias": "champion",
            "latency_ms": 1.0,
        }
        for i, o in enumerate(offsets)
    ]
    ledger_mod.log_predictions(ledger, rows)
    return [r["request_id"] for r in rows]


def _label(ledger: Any, start: dt.datetime, end: dt.datetime, share: float, seed: int) -> int:
    """Labels (drawn from each row's score: a calibrated model) for a share of the not yet
    labelled rows served in [start, end)."""
    rng = np.random.default_rng(seed)
    rows = queries.window_rows(ledger, "elec2", start, end, features=False)
    rows = rows[rows["label"].isna()]
    pick = rows[rng.random(len(rows)) < share]
    labels = {
        r: str(int(rng.random() < s))
        for r, s in zip(pick["request_id"], pick["score"], strict=True)
    }
    ledger_mod.record_labels(ledger, "elec2", labels, end)
    return len(labels)


@pytest.fixture
def champion(db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    # Days of ~960 rows are sampled at 300 rows; on PostgreSQL a day is drawn with
    # TABLESAMPLE (a window above 2 × the sample), the open hours are read whole.
    monkeypatch.setattr(windows, "SAMPLE_ROWS", 300)
    monkeypatch.setattr(queries, "WHOLE_READ_FACTOR", 2)
    settings = Settings.from_env(
        {
            "COSTAWARE_HOME": str(tmp_path / "home"),
            "COSTAWARE_DB_URL": db_url,
            "COSTAWARE_PROJECT_ROOT": str(ROOT),
            "COSTAWARE_MODELS_DIR": str(ROOT / "include" / "models"),
        }
    )
    ctx = StepContext.for_model("elec2", settings=settings, clock=T0)
    path = h.train(h.weeks(0, 3), tmp_path / "m", "v1", rounds=10)
    version = h.register(ctx.registry, path, "cache-1", h.weeks(0, 3), 55.0)
    ctx.registry.move_champion("elec2", None, version)
    assert ctx.registry.alias("elec2", CHAMPION) == version == "1"
    _log(ctx.ledger, T0 - DAY * DAYS, 24 * DAYS, "a", 1)
    _label(ctx.ledger, T0 - DAY * DAYS, T0 - DAY, 0.7, 2)  # labels a day late
    spec = MonitorSpec(window_hours=24, history_windows=DAYS, min_rows=30)
    cfg = ctx.cfg.model_copy(update={"monitor": spec})
    yield {"cfg": cfg, "settings": settings, "ledger": ctx.ledger}
    ctx.ledger.dispose()


def _run(c: dict[str, Any], clock: dt.datetime, name: str, reuse: bool = True) -> dict[str, Any]:
    ctx = StepContext(c["cfg"], c["settings"], run_id=name, clock=clock)
    out = run_monitor(ctx, reuse=reuse)
    stored = ledger_mod.monitor_history(c["ledger"], "elec2")[-1]
    assert stored["run_id"] == name
    return {"out": out, "stored": stored["details"]}


def _key(record: dict[str, Any]) -> dict[str, Any]:
    return {k: record[k] for k in ("version", "fitted_at", "rows")}


def _row_id(c: dict[str, Any], run_id: str) -> int:
    (row,) = [r for r in ledger_mod.monitor_history(c["ledger"], "elec2") if r["run_id"] == run_id]
    return int(row["id"])


def _same(a: dict[str, Any], b: dict[str, Any]) -> None:
    """Two runs at one clock: every window's result and the verdict identical, as the run
    returned them and as the ledger keeps them."""
    for key in ("out", "stored"):
        assert a[key]["windows"] == b[key]["windows"]
        assert a[key]["calibration"] == b[key]["calibration"]
        for k in ("verdict", "reason", "began", "volume"):
            assert a[key][k] == b[key][k], k


def test_unchanged_windows_are_reused_and_equal_a_full_recompute(
    champion: dict[str, Any],
) -> None:
    c = champion
    first = _run(c, T0, "r0")["out"]
    assert first["windows_recomputed"] == list(range(DAYS)) and first["windows_reused"] == []
    assert [w["open"] for w in first["windows"]] == [False] * DAYS  # the clock is a boundary
    assert first["calibration"]["fitted_at"] == T0.isoformat()
    sampled = first["windows"][2]
    assert sampled["served"] > 600 and sampled["estimate"]["sample"]["rows"] == 300
    assert sampled["sample"]["of"] == sampled["labelled"] > sampled["sample"]["rows"]

    # One more hour served: the open window is new, the five closed ones are the first run's.
    _log(c["ledger"], T0, 1, "b", 3)
    clock = T0 + HOUR
    reused = _run(c, clock, "r1")
    out = reused["out"]
    assert out["windows_recomputed"] == [0] and out["windows_reused"] == [1, 2, 3, 4, 5]
    assert out["windows"][0]["open"] and out["windows"][0]["start"] == T0.isoformat()
    assert out["windows"][0]["served"] == PER_HOUR
    for new, old in zip(out["windows"][1:], first["windows"][:-1], strict=True):
        assert new == {**old, "age": old["age"] + 1}
    # The calibration is the first run's (fitted at this period's start), not refitted.
    assert out["calibration"] == {**_key(first["calibration"]), "fit_in_run": _row_id(c, "r0")}
    full = _run(c, clock, "r1-full", reuse=False)
    assert full["out"]["windows_recomputed"] == list(range(DAYS))
    _same(reused, full)


def test_a_late_label_recomputes_only_its_window(champion: dict[str, Any]) -> None:
    c = champion
    _run(c, T0, "r0")
    _log(c["ledger"], T0, 2, "b", 3)
    before = _run(c, T0 + HOUR, "r1")["out"]
    old = dict(before["windows"][3])

    # Late labels for rows served three days back, and another hour of traffic.
    start = dt.datetime.fromisoformat(old["start"])
    assert _label(c["ledger"], start, start + DAY, 0.5, 4) > 0
    clock = T0 + 2 * HOUR
    reused = _run(c, clock, "r2")
    out = reused["out"]
    assert out["windows_recomputed"] == [0, 3]
    assert out["windows_reused"] == [1, 2, 4, 5]
    w3 = out["windows"][3]
    assert (w3["start"], w3["end"]) == (old["start"], old["end"])
    assert w3["labelled"] > old["labelled"] and w3["served"] == old["served"]
    assert w3 != {**old, "age": 3}
    full = _run(c, clock, "r2-full", reuse=False)
    _same(reused, full)
    # The window's result follows its rows: its metric is the labelled rows' (a sample of
    # them), computed independently here from the log when it is read whole.
    rows = queries.window_rows(c["ledger"], "elec2", start, start + DAY, features=False)
    assert int(rows["label"].notna().sum()) == w3["labelled"]


def test_a_new_period_refits_the_calibration_and_a_new_champion_refits_at_once(
    champion: dict[str, Any], tmp_path: Path
) -> None:
    c = champion
    _run(c, T0, "r0")
    _log(c["ledger"], T0, 25, "b", 3)
    _label(c["ledger"], T0 - DAY, T0, 0.7, 5)
    # The next day: a new period, so a new calibration; every window with an estimate is
    # computed again (its calibration changed).
    nxt = _run(c, T0 + DAY + HOUR, "r1")["out"]
    assert nxt["calibration"]["fitted_at"] == (T0 + DAY).isoformat()
    assert nxt["windows_recomputed"] == list(range(DAYS))
    again = _run(c, T0 + DAY + 2 * HOUR, "r2")["out"]
    assert again["calibration"] == {**_key(nxt["calibration"]), "fit_in_run": _row_id(c, "r1")}
    assert again["windows_recomputed"] == [0]
    # A new champion version: fitted at once, nothing reused (the windows' version changed).
    reg = StepContext(c["cfg"], c["settings"]).registry
    path = h.train(h.weeks(4, 7), tmp_path / "m2", "v2", rounds=10)
    v2 = h.register(reg, path, "cache-2", h.weeks(4, 7), 55.0)
    reg.move_champion("elec2", "1", v2)
    new = _run(c, T0 + DAY + 3 * HOUR, "r3")["out"]
    assert new["champion_version"] == v2 and new["windows_reused"] == []
    assert new["calibration"] is None  # v2 served nothing yet: no labelled rows to fit


def test_the_fit_is_stored_once_and_survives_a_rerun_or_is_refitted_when_gone(
    champion: dict[str, Any],
) -> None:
    """The calibration's fit is kept in the run that fitted it; the runs after it in the same
    period name that run. An Airflow rerun of the fitting run (its row written again) keeps the
    fit; when the fitting run's row is gone, the next run fits again, on the same rows."""
    c = champion
    first = _run(c, T0, "r0")["stored"]["calibration"]
    assert set(first) == {"version", "fitted_at", "rows", "fit"}
    r0 = _row_id(c, "r0")
    _log(c["ledger"], T0, 1, "b", 3)
    later = _run(c, T0 + HOUR, "r1")["stored"]
    assert later["calibration"] == {**_key(first), "fit_in_run": r0}
    assert '"fit":' not in json.dumps(later)  # no copy of the fit anywhere in the hourly run

    # The fitting run is cleared and runs again (same run id, same clock): its row keeps a fit.
    ctx = StepContext(c["cfg"], c["settings"], run_id="r0", clock=T0)
    run_monitor(ctx)
    (rerun,) = [r for r in ledger_mod.monitor_history(c["ledger"], "elec2") if r["id"] == r0]
    assert rerun["details"]["calibration"] == first
    nxt = _run(c, T0 + 2 * HOUR, "r2")
    assert nxt["stored"]["calibration"] == {**_key(first), "fit_in_run": r0}
    assert nxt["out"]["windows_recomputed"] == [0]  # same calibration: closed windows reused

    # The fitting run's row is gone (pruned by hand): the next run fits again and keeps that
    # fit; the run after it names the new fitting run.
    with c["ledger"].engine.begin() as conn:
        conn.execute(ledger_mod.monitor_runs.delete().where(ledger_mod.monitor_runs.c.id == r0))
    refit = _run(c, T0 + 2 * HOUR, "r3")["stored"]
    assert set(refit["calibration"]) == {"version", "fitted_at", "rows", "fit"}
    assert refit["calibration"]["fitted_at"] == first["fitted_at"]
    estimates = [w["estimate"] for w in refit["windows"] if w.get("estimate")]
    assert estimates and all(np.isfinite(e["points"]) for e in estimates)
    after = _run(c, T0 + 3 * HOUR, "r4")["stored"]
    assert after["calibration"] == {**_key(refit["calibration"]), "fit_in_run": _row_id(c, "r3")}
