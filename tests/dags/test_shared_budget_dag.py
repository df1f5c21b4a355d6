"""The real retrain DAG with a shared budget (``dag.test()``): a checkpoint whose window is
still open is rescheduled by Airflow — it frees its worker slot — and decides once the window
closes. weather shares the budget but has no run this week, so elec2's run waits
``wait_minutes`` (3 s here) and is then ranked alone; the budget cannot pay, so it skips.

The state before the run is seeded as the step tests do (Elec2 weeks 0-4 accepted and
labelled, a champion trained on them by the train step) so that one DAG run is enough."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from costaware.decide.shared_budget import window_key
from costaware.settings import Settings
from costaware.steps.context import StepContext
from costaware.steps.train import train_challenger
from costaware.store.ledger import Ledger, budget_window

from ..conftest import ROOT, make_settings
from ..steps.helpers import accept_weeks, install_registry
from .harness import WEEKS, Harness


@pytest.mark.slow
def test_an_open_window_reschedules_the_checkpoint_then_decides(
    airflow_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import sqlalchemy as sa
    from airflow.models.dagrun import DagRun
    from airflow.models.taskinstance import TaskInstance
    from airflow.models.taskreschedule import TaskReschedule
    from airflow.utils.session import create_session

    from costaware.app.replay import arrival_time, land_batch

    folder = tmp_path / "models"
    folder.mkdir()
    for name in ("elec2", "weather"):
        cfg = yaml.safe_load((ROOT / "include" / "models" / f"{name}.yaml").read_text())
        cfg["airflow"] = {"schedule": None, "retries": 0}
        (folder / f"{name}.yaml").write_text(yaml.safe_dump(cfg))
    (folder / "budgets.yaml").write_text(
        "budgets:\n  energy:\n    monthly_usd: 0.0001\n    models: [elec2, weather]\n"
        "    wait_minutes: 0.05\n"
    )
    monkeypatch.setenv("COSTAWARE_MODELS_DIR", str(folder))
    home = tmp_path / "home"
    monkeypatch.setenv("COSTAWARE_HOME", str(home))
    monkeypatch.delenv("COSTAWARE_DB_URL", raising=False)
    settings = Settings.from_env()
    accept_weeks(settings, Ledger(settings.db_url), [name for name, _ in WEEKS[:5]])
    install_registry(settings, "empty")
    h = Harness(make_settings(home))
    # On the clock week 4 arrived at, a week before the run (One clock: the cooldown follows it).
    when = arrival_time(h.cfg, WEEKS[4][1]).replace(tzinfo=None)
    seed = StepContext.for_model("elec2", "seed", settings=settings, clock=when)
    trained = train_challenger(seed, WEEKS[4][0])  # the real train step: the champion
    seed.registry.move_champion("elec2", None, trained["version"])
    land_batch(settings, h.cfg, *WEEKS[5])
    # A limit no gain misses: its own policy says retrain, so it asks the shared budget.
    assert h.week(5, {"max_usd_per_point_batch": 1000.0}, land=False) == "success"

    d = h.decision(5)
    assert d is not None and d["action"] == "skip", d
    assert d["details"]["checks"]["cost per pt·batch within limit"] is True
    assert d["details"]["checks"]["funded by the shared budget"] is False
    assert "left of shared budget energy's $0.0001 this month" in d["reason"]
    with create_session() as session:
        run = session.scalars(
            sa.select(DagRun).where(DagRun.dag_id == "retrain_elec2", DagRun.run_id == d["run_id"])
        ).one()
        window = window_key(run.logical_date.replace(tzinfo=None), "@weekly")
        rescheduled = session.scalars(
            sa.select(TaskReschedule)
            .join(TaskInstance, TaskInstance.id == TaskReschedule.ti_id)
            .where(
                TaskInstance.dag_id == "retrain_elec2",
                TaskInstance.run_id == d["run_id"],
                TaskInstance.task_id == "cost_checkpoint",
            )
        ).all()
    assert len(rescheduled) >= 1  # it waited up for reschedule, not in a worker slot
    rows = budget_window(h.ctx.ledger, "energy", window)
    assert [(r["model"], r["run_id"], r["verdict"]) for r in rows] == [
        ("elec2", d["run_id"], "short")
    ]
