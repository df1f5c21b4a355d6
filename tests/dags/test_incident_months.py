"""The silent-degradation incident over months, with the ``retrain`` action, and the prediction
log as the retrain DAG's source of batches (``data.batches_from: prediction_log``).

Champion v2 was trained on Elec2 weeks 4-7 (its reference: the AUC on week 8); v1 (weeks
0-3) is previous_champion. One real `costaware serve` process (ledger on PostgreSQL) serves
the following months, week by week (each week in one ``POST /predict``, each row at its
event time); labels are posted one week late (``POST /labels``); ``monitor_elec2`` runs at
the end of each week (``dag.test()``) with ``on_degradation: retrain``. When it condemns the
champion it emits the retrain Asset event; ``retrain_elec2`` (``dag.test()``, scheduled on
that Asset only) then runs as the scheduler and its backlog drain would run it — one
prediction-log interval per run, oldest first — and passes the cost checkpoint like any
other run. What it trains on is the logged, labelled predictions.

The timeline (decay began in hindsight, label-free alert, labelled alert, action) is printed
as a table (``pytest -rP``) and is the README's ("The live loop").
"""

from __future__ import annotations

import contextlib
import datetime as dt
import importlib.util
import time
from pathlib import Path
from typing import Any

import httpx
import pandas as pd
import pytest
import yaml
from sklearn.metrics import roc_auc_score

from costaware.app.replay import run_dag_once
from costaware.decide.performance import metric_points
from costaware.models.registry import BORN_TAG, CHAMPION, POINTS_TAG, REFERENCE_TAG, Registry
from costaware.models.scoring import load_model_file, score
from costaware.settings import Settings
from costaware.store import ledger as ledger_mod
from costaware.store.ledger import Ledger

from ..conftest import ROOT, pg_database
from ..serve import helpers as h
from ..support.servers import free_port

pytestmark = pytest.mark.slow

START = dt.datetime(1996, 5, 7)  # elec2.yaml's data.time.start: week k starts START + k weeks
WEEK = dt.timedelta(days=7)
FIRST, LAST = 9, 30  # the weeks served
TOLERANCE = 2.0
MONITOR = {
    "window_hours": 168,
    "history_windows": 4,
    "tolerance_points": TOLERANCE,
    "on_degradation": "retrain",
    "schedule": "@weekly",
    # Weekly windows that start when Elec2's weeks do (Tuesdays), not on ISO Mondays.
    "window_origin": START.isoformat(),
}
MAX_RETRAIN_RUNS = 4  # per request: the drain's runs this test plays (each takes one week)


def _end(week: int) -> dt.datetime:
    return START + WEEK * (week + 1)


def _load(file: str, dag_id: str) -> Any:
    spec = importlib.util.spec_from_file_location(f"dags_{dag_id}", ROOT / "dags" / file)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return getattr(module, dag_id)


def _models(folder: Path) -> Path:
    """Elec2 with the monitor asking for retrains, the retrain DAG on that Asset only (no
    cron; retries off so a failure shows at once) and batches from the prediction log."""
    h.models_dir(folder, monitor=MONITOR, serving={"alias_poll_seconds": 1})
    path = folder / "elec2.yaml"
    cfg = yaml.safe_load(path.read_text())
    cfg["data"]["batches_from"] = "prediction_log"
    cfg["airflow"] = {"schedule": None, "retries": 0}
    path.write_text(yaml.safe_dump(cfg))
    return folder


def _serve_week(client: httpx.Client, week: int) -> list[dict[str, Any]]:
    frame = h.weeks(week, week)
    rows = [
        {**feats, "event_time": t.isoformat()}
        for feats, t in zip(h.rows(frame), frame["event_time"], strict=True)
    ]
    r = client.post("/predict", json={"rows": rows})
    assert r.status_code == 200, r.text
    return list(r.json()["predictions"])


def _post_labels(client: httpx.Client, week: int, served: list[dict[str, Any]]) -> None:
    frame = h.weeks(week, week)
    labels = [
        {"id": p["id"], "label": int(v)}
        for p, v in zip(served, frame[h.CFG.target.name], strict=True)
    ]
    out = client.post("/labels", json={"labels": labels}).json()
    assert (out["stored"], out["unknown"]) == (len(served), [])


def _asset_events(run_id: str) -> list[Any]:
    from airflow.models.asset import AssetEvent, AssetModel
    from airflow.utils.session import create_session

    with create_session() as session:
        rows = (
            session.query(AssetEvent, AssetModel.name)
            .join(AssetModel, AssetModel.id == AssetEvent.asset_id)
            .filter(AssetEvent.source_run_id == run_id)
            .all()
        )
        return [(e.source_dag_id, e.source_task_id, name) for e, name in rows]


def _hindsight(
    served: dict[int, list[dict[str, Any]]], references: dict[str, float]
) -> list[dict[str, Any]]:
    """Each week's AUC of the version that served it, from the logged scores and Elec2's
    labels (sklearn), and whether it is below that version's reference minus the tolerance."""
    out = []
    for week, preds in served.items():
        y = h.labels_of(h.weeks(week, week))
        scores = [p["score"] for p in preds]
        (version,) = {p["version"] for p in preds}
        auc = 100 * roc_auc_score(y, scores)
        ref = references.get(version)
        below = ref is not None and auc < ref - TOLERANCE
        out.append({"week": week, "version": version, "auc": auc, "ref": ref, "below": below})
    return out


def test_months_of_serving_decay_retrain_request_and_training_on_the_log(
    airflow_home: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    request: pytest.FixtureRequest,
) -> None:
    timings: dict[str, float] = {"monitor": 0.0, "retrain": 0.0, "serve": 0.0}
    t_start, cpu_start, children_start = time.monotonic(), time.process_time(), _children_cpu()
    with pg_database("costaware_months") as db_url:
        home, models = tmp_path / "home", _models(tmp_path / "models")
        monkeypatch.setenv("COSTAWARE_HOME", str(home))
        monkeypatch.setenv("COSTAWARE_DB_URL", db_url)
        monkeypatch.setenv("COSTAWARE_MODELS_DIR", str(models))
        settings = Settings.from_env()
        reg = Registry(settings.mlflow_uri, settings.mlflow_artifacts)
        ledger = Ledger(settings.db_url)
        p1 = h.train(h.weeks(0, 3), tmp_path / "m", "v1")
        p2 = h.train(h.weeks(4, 7), tmp_path / "m", "v2")
        held_out = h.weeks(8, 8)
        reference = metric_points(
            h.labels_of(held_out), score(load_model_file(p2), held_out, h.FEATURES), "roc_auc"
        )
        v1 = h.register(reg, p1, "run-1", h.weeks(0, 3), 60.0)
        v2 = h.register(reg, p2, "run-2", h.weeks(4, 7), reference)
        reg.move_champion("elec2", None, v1)
        reg.move_champion("elec2", v1, v2)
        port = free_port()
        env = {
            "COSTAWARE_HOME": str(home),
            "COSTAWARE_DB_URL": db_url,
            "COSTAWARE_MODELS_DIR": str(models),
            "COSTAWARE_SERVE_CLIENT_TIME": "1",  # a replay: rows are logged at event time
        }
        stack = contextlib.ExitStack()
        request.addfinalizer(stack.close)  # the server stops even when an assert fails
        stack.enter_context(h.serve_process(env, port, tmp_path / "serve.log"))
        client = stack.enter_context(httpx.Client(base_url=f"http://127.0.0.1:{port}"))
        monitor = _load("costaware_monitor.py", "monitor_elec2")
        timings["setup"] = time.monotonic() - t_start

        served: dict[int, list[dict[str, Any]]] = {}
        runs: list[dict[str, Any]] = []  # one per monitor run
        requests: list[dict[str, Any]] = []  # one per retrain request (Asset event)
        forced: dict[str, Any] | None = None  # a person's forced run, if one was needed
        for week in range(FIRST, LAST + 1):
            t = time.monotonic()
            champion = reg.alias("elec2", CHAMPION)
            # The server follows a promotion within its alias poll (1 s).
            h.wait_until(lambda c=champion: _served_champion(client) == c)
            served[week] = _serve_week(client, week)
            if week - 1 in served:
                _post_labels(client, week - 1, served[week - 1])
            h.wait_until(lambda: client.get("/healthz").json()["log"]["pending"] == 0)
            timings["serve"] += time.monotonic() - t

            t = time.monotonic()
            clock = _end(week).replace(tzinfo=dt.UTC)
            assert run_dag_once(monitor, logical_date=clock) == "success"
            timings["monitor"] += time.monotonic() - t
            row = ledger_mod.monitor_history(ledger, "elec2")[-1]
            runs.append({"week": week, **row})
            t = time.monotonic()
            if row["action"] == "retrain":
                # The run that condemned the champion emitted the retrain Asset event.
                assert _asset_events(row["run_id"]) == [
                    ("monitor_elec2", "request_retrain", "costaware_retrain_request_elec2")
                ]
                most = MAX_RETRAIN_RUNS if not requests else 1
                requests.append(_retrain_runs(ledger, reg, week, clock, row["run_id"], most))
            elif requests and forced is None and all(q["trained"] is None for q in requests):
                # Every requested run was skipped by the checkpoint and the monitor stopped
                # asking (the champion changed or recovered); a person reads the alert and
                # the skips and forces one run a week later (the trigger form's "Force
                # retrain").
                forced = _retrain_runs(ledger, reg, week, clock, row["run_id"], 1, force=True)
            timings["retrain"] += time.monotonic() - t
        _post_labels(client, LAST, served[LAST])  # every label, for the hindsight view
        assert client.get("/healthz").status_code == 200  # health stayed green throughout

        refs = {}
        for v in _versions(served):
            tags = reg.version_tags("elec2", v)
            if POINTS_TAG in tags:
                refs[v] = float(tags[POINTS_TAG])
        hindsight = _hindsight(served, refs)
        timeline = _timeline(runs, requests, forced, hindsight)
        stack.close()  # the server stops: its CPU time is counted below
        timings["cpu: this process"] = time.process_time() - cpu_start
        timings["cpu: server and other children"] = _children_cpu() - children_start
        print(_table(timeline, runs, hindsight, timings, time.monotonic() - t_start))

        # -- the first incident: v2 decays, the labels show it a week later, a retrain -----
        first = timeline[0]
        assert first["version"] == v2
        alert = first["labelled_alert"]
        assert alert is not None and alert["verdict"] == "degraded"
        # The monitor's "began" is where the weeks below the line (sklearn's AUC of the
        # logged scores, in hindsight) began, back from the week its alert condemned; that
        # alert came one week after that week's end: the labels' delay.
        assert alert["details"]["began"] == (START + WEEK * first["began_week"]).isoformat()
        assert alert["week"] == first["condemned_week"] + 1
        assert requests[0]["monitor_run"] == alert["run_id"]
        # While v2 stays degraded the monitor asks again once per window (a skipped or
        # rejected retrain leaves the decay in place): one request per later monitor run
        # that still condemned v2.
        still = [r for r in runs if r["champion_version"] == v2 and r["verdict"] == "degraded"]
        assert [q["monitor_run"] for q in requests][: len(still)] == [r["run_id"] for r in still]
        # Each retrain run passed the cost checkpoint: a decision row per run in the ledger,
        # each taking the next week of the prediction log, oldest first.
        decisions = {d["run_id"]: d for d in ledger.decisions("elec2")}
        played = [r for q in requests for r in q["runs"]] + (forced or {}).get("runs", [])
        taken = [decisions[r]["batch_id"] for r in played]
        assert taken == [_batch(FIRST + i) for i in range(len(taken))]
        trained = next((q["trained"] for q in requests if q["trained"]), None) or (
            forced or {}
        ).get("trained")
        assert trained is not None, f"no retrain run trained: {requests} {forced}"
        assert decisions[trained["run_id"]]["action"] == "retrain"
        # What it trained on: the logged, labelled predictions of the weeks before its
        # held-out week (the newest), as served: the version's drift reference is its
        # training data's features.
        tags = reg.version_tags("elec2", trained["version"])
        train_batches = tags["costaware.train_batches"].split(",")
        assert train_batches == [_batch(w) for w in range(FIRST, FIRST + len(train_batches))]
        assert tags["costaware.holdout_batches"] == trained["batch_id"]
        ref_rows = pd.read_parquet(tags[REFERENCE_TAG])[h.FEATURES]
        expected = h.weeks(FIRST, FIRST + len(train_batches) - 1)[h.FEATURES]
        pd.testing.assert_frame_equal(
            ref_rows.reset_index(drop=True), expected.reset_index(drop=True)
        )
        # A batch from the log keeps its rows' event times and says who scored them.
        week9 = ledger.batch("elec2", _batch(FIRST))
        assert (week9["status"], week9["rows"]) == ("accepted", 336)
        assert (week9["start_ts"], week9["end_ts"]) == (
            START + WEEK * FIRST,
            START + WEEK * (FIRST + 1) - dt.timedelta(minutes=30),
        )
        rows9 = pd.read_parquet(week9["path"])
        assert set(rows9["served_version"]) == {v2} and set(rows9["served_alias"]) == {"champion"}
        assert sorted(rows9["event_id"]) == sorted(p["id"] for p in served[FIRST])
        if trained["outcome"] == "promoted":
            # The server followed the promotion: the next week was scored by the new version.
            assert {p["version"] for p in served[trained["week"] + 1]} == {trained["version"]}
        ledger.dispose()


def _children_cpu() -> float:
    import resource

    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def _batch(week: int) -> str:
    return f"predlog-{START + WEEK * week:%Y%m%dT%H%M%S}"


def _served_champion(client: httpx.Client) -> str | None:
    return client.get("/healthz").json().get("champion")


def _versions(served: dict[int, list[dict[str, Any]]]) -> set[str]:
    return {p["version"] for preds in served.values() for p in preds}


def _run_retrain(clock: dt.datetime, conf: dict[str, Any]) -> str:
    """One ``dag.test()`` run of retrain_elec2 on a freshly parsed DAG (as each deployment's
    task process parses it)."""
    return run_dag_once(_load("costaware_retrain.py", "retrain_elec2"), conf, logical_date=clock)


def _retrain_runs(
    ledger: Ledger,
    reg: Registry,
    week: int,
    clock: dt.datetime,
    monitor_run: str,
    most: int,
    force: bool = False,
) -> dict[str, Any]:
    """The asset-triggered run of retrain_elec2 (or a person's forced run) and the drain's
    runs after it, one minute apart, until one trains, nothing waits, or ``most`` runs."""
    out: dict[str, Any] = {"week": week, "monitor_run": monitor_run, "runs": [], "force": force}
    out["trained"] = None
    for i in range(most):
        before = {d["run_id"] for d in ledger.decisions("elec2")}
        state = _run_retrain(clock + dt.timedelta(minutes=i + 1), {"force": force})
        new = [d for d in ledger.decisions("elec2") if d["run_id"] not in before]
        assert state == "success", (state, new)
        if not new:  # nothing was waiting: the run short-circuited before the checkpoint
            break
        (decision,) = new
        out["runs"].append(decision["run_id"])
        out.setdefault("decisions", []).append(
            {k: decision[k] for k in ("batch_id", "action", "reason", "outcome")}
        )
        if decision["action"] == "retrain":
            born = [
                v
                for v in reg.versions("elec2")
                if reg.version_tags("elec2", v).get(BORN_TAG) == decision["batch_id"]
            ]
            audit = [a for a in ledger.audit("elec2") if a["run_id"] == decision["run_id"]]
            out["trained"] = {
                "evaluation": audit[0]["reason"] if audit else None,
                "week": week,
                "run_id": decision["run_id"],
                "batch_id": decision["batch_id"],
                "outcome": decision["outcome"],
                "version": born[-1] if born else None,
            }
            break
    return out


def _timeline(
    runs: list[dict[str, Any]],
    requests: list[dict[str, Any]],
    forced: dict[str, Any] | None,
    hindsight: list[dict[str, Any]],
) -> list[dict[str, Any]]:
    """Per champion version: its first week below the line and where the decay its alert
    condemned began (both from the labels in hindsight), its first label-free alert, its
    first labelled alert, and the action."""
    out = []
    for version in dict.fromkeys(r["champion_version"] for r in runs):
        mine = [r for r in runs if r["champion_version"] == version]
        weeks = {w["week"]: w for w in hindsight if w["version"] == version}
        suspect = next((r for r in mine if r["verdict"] == "suspect"), None)
        degraded = next((r for r in mine if r["verdict"] == "degraded"), None)
        condemned = began = None
        if degraded is not None:
            condemned = degraded["week"] - 1  # its newest labelled window
            began = condemned
            while began - 1 in weeks and weeks[began - 1]["below"]:
                began -= 1
        condemning = {r["run_id"] for r in mine if r["verdict"] == "degraded"}
        actions = [q for q in requests if q["monitor_run"] in condemning]
        if forced is not None and forced["trained"] and not any(q["trained"] for q in actions):
            actions.append(forced)
        out.append(
            {
                "version": version,
                "first_below": next((w for w, x in sorted(weeks.items()) if x["below"]), None),
                "began_week": began,
                "condemned_week": condemned,
                "label_free_alert": suspect,
                "labelled_alert": degraded,
                "actions": actions,
            }
        )
    return out


def _table(
    timeline: list[dict[str, Any]],
    runs: list[dict[str, Any]],
    hindsight: list[dict[str, Any]],
    timings: dict[str, float],
    total: float,
) -> str:
    nan = float("nan")
    lines = [
        "",
        "week  served by  ROC AUC in hindsight (↓ below reference − tolerance)  | monitor at "
        "the week's end: verdict, action, last week's labelled AUC, this week's estimate",
    ]
    by_week = {r["week"]: r for r in runs}
    for w in hindsight:
        r = by_week[w["week"]]
        windows = r["details"].get("windows") or [{}]
        labelled = next((x for x in windows if x.get("points") is not None), {})
        est = windows[0].get("estimate") or {}
        ref = nan if w["ref"] is None else w["ref"]
        lines.append(
            f"{w['week']:>4}  v{w['version']:<8} {w['auc']:6.2f} {'↓' if w['below'] else ' '} "
            f"(ref {ref:.2f})  | {r['verdict']:<8} {r['action']:<7} "
            f"{labelled.get('points', nan):6.2f} {est.get('points', nan):6.2f}"
        )
    lines += [
        "",
        "champion | first week below | decay began | label-free alert | labelled alert | action",
    ]
    for t in timeline:

        def wk(x: Any) -> str:
            return "none" if x is None else f"week {x}"

        free, lab = t["label_free_alert"], t["labelled_alert"]
        acts = []
        for q in t["actions"]:
            said = ", ".join(f"{d['batch_id'][8:16]} {d['action']}" for d in q.get("decisions", []))
            who = "forced by a person" if q["force"] else "Asset event"
            tr = q["trained"]
            done = "" if tr is None else f" → v{tr['version']} {tr['outcome']}"
            acts.append(f"end of week {q['week']}: {who}: {len(q['runs'])} run(s) [{said}]{done}")
        lines.append(
            f"v{t['version']} | {wk(t['first_below'])} | {wk(t['began_week'])} | "
            f"{'none' if free is None else 'end of week ' + str(free['week'])} | "
            f"{'none' if lab is None else 'end of week ' + str(lab['week'])} | "
            f"{'; '.join(acts) or 'none'}"
        )
    for t in timeline:
        for q in t["actions"]:
            if q["trained"] is not None:
                version, said = q["trained"]["version"], q["trained"]["evaluation"]
                lines.append(f"evaluation of v{version}: {said}")
    lines.append(
        "time: "
        + ", ".join(f"{k} {v:.0f} s" for k, v in timings.items())
        + f", total {total:.0f} s"
    )
    return "\n".join(lines)
