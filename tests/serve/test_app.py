"""`costaware serve elec2` as a real process: uvicorn, the PostgreSQL ledger, an MLflow server.

One server per module (starting one costs seconds); each test reads what it needs from it.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from costaware.models.registry import CHALLENGER, Registry
from costaware.models.scoring import load_model_file, score

from ..conftest import pg_database
from ..support.servers import free_port, mlflow_server
from . import helpers as h

TOKEN = "test-admin-token"


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    folder = tmp_path_factory.mktemp("serve")
    train = h.weeks(0, 3)
    later = h.weeks(4, 7)
    m1 = h.train(train, folder / "m", "v1")
    m2 = h.train(later, folder / "m", "v2")
    with pg_database("costaware_serve") as db_url, mlflow_server(folder / "mlflow") as ml:
        reg = Registry(ml, folder / "unused")
        v1 = h.register(reg, m1, "run-1", train, 70.0)
        v2 = h.register(reg, m2, "run-2", later, 75.0)
        h.champion(reg, v1)
        env = {
            "COSTAWARE_HOME": str(folder / "home"),
            "COSTAWARE_DB_URL": db_url,
            "COSTAWARE_MLFLOW_URI": ml,
            "COSTAWARE_MODELS_DIR": str(
                h.models_dir(folder / "models", serving={"alias_poll_seconds": 1})
            ),
            "COSTAWARE_SERVE_TOKEN": TOKEN,
        }
        port = free_port()
        with h.serve_process(env, port, folder / "serve.log") as proc:
            with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
                yield {
                    "client": client,
                    "reg": reg,
                    "v1": v1,
                    "v2": v2,
                    "m1": m1,
                    "m2": m2,
                    "db": db_url,
                    "proc": proc,
                    "rows": later,
                }


def _count(db: str) -> int:
    engine = sa.create_engine(db)
    try:
        with engine.connect() as conn:
            return int(conn.execute(sa.text("SELECT count(*) FROM predictions")).scalar())
    finally:
        engine.dispose()


def test_predict_scores_with_the_champion_and_logs_every_row(live: dict[str, Any]) -> None:
    c = live["client"]
    frame = live["rows"].iloc[:50]
    one = c.post("/predict", json=h.rows(frame.iloc[:1])[0])
    assert one.status_code == 200, one.text
    batch = c.post("/predict", json={"rows": h.rows(frame)})
    assert batch.status_code == 200, batch.text
    got = batch.json()["predictions"]
    assert len(got) == 50 and len({p["id"] for p in got}) == 50
    assert {p["version"] for p in got} == {live["v1"]}
    # The same scores as the model file scored here, outside the server.
    expected = score(load_model_file(live["m1"]), frame, h.FEATURES)
    assert [p["score"] for p in got] == pytest.approx(list(expected), abs=1e-6)
    assert one.json()["predictions"][0]["score"] == pytest.approx(expected[0], abs=1e-6)
    # Logged off the request path, soon after.
    engine = sa.create_engine(live["db"])
    ids = [p["id"] for p in got]
    try:
        h.wait_until(lambda: _count(live["db"]) >= 51)
        with engine.connect() as conn:
            logged = conn.execute(
                sa.text(
                    "SELECT request_id, score, version, alias, latency_ms, features "
                    "FROM predictions WHERE request_id = ANY(:ids)"
                ),
                {"ids": ids},
            ).all()
    finally:
        engine.dispose()
    by_id = {r[0]: r for r in logged}
    assert set(by_id) == set(ids)
    first = by_id[ids[0]]
    assert first[1] == pytest.approx(got[0]["score"]) and first[2] == live["v1"]
    assert first[3] == "champion" and first[4] > 0
    assert first[5] == h.rows(frame.iloc[:1])[0]


@pytest.mark.parametrize(
    ("mutate", "field"),
    [
        (lambda r: r.pop("vicprice"), "vicprice"),
        (lambda r: r.update(nswdemand="high"), "nswdemand"),
        (lambda r: r.update(colour=1.0), "colour"),
        (lambda r: r.update(transfer=None), "transfer"),
    ],
)
def test_a_bad_row_is_a_422_naming_the_field(live: dict[str, Any], mutate: Any, field: str) -> None:
    good = h.rows(live["rows"].iloc[:3])
    mutate(good[2])
    r = live["client"].post("/predict", json={"rows": good})
    assert r.status_code == 422, r.text
    detail = r.json()["detail"]
    assert detail[0]["loc"] == ["body", "rows", 2, field], detail


def test_labels_are_idempotent_and_unknown_ids_come_back(live: dict[str, Any]) -> None:
    c = live["client"]
    frame = live["rows"].iloc[100:110]
    ids = [p["id"] for p in c.post("/predict", json={"rows": h.rows(frame)}).json()["predictions"]]
    y = h.labels_of(frame)
    body = {"labels": [{"id": i, "label": int(v)} for i, v in zip(ids, y, strict=True)]}
    body["labels"].append({"id": "never-served", "label": 1})
    first = c.post("/labels", json=body).json()
    assert first == {"stored": 10, "unchanged": 0, "conflict": [], "unknown": ["never-served"]}
    again = c.post("/labels", json=body).json()
    assert again == {"stored": 0, "unchanged": 10, "conflict": [], "unknown": ["never-served"]}
    flipped = {"labels": [{"id": ids[0], "label": int(1 - y[0])}]}
    assert c.post("/labels", json=flipped).json()["conflict"] == [ids[0]]


def test_admin_needs_the_token_and_the_server_follows_the_aliases(live: dict[str, Any]) -> None:
    c, reg = live["client"], live["reg"]
    assert c.post("/admin/reload").status_code == 401
    assert (
        c.post("/admin/canary", json={"share": 1}, headers={"Authorization": "x"}).status_code
        == 401
    )
    row = h.rows(live["rows"].iloc[:1])[0]
    # A promotion in the registry is followed without a restart (the poller, 1 s here).
    h.champion(reg, live["v2"])
    h.wait_until(
        lambda: c.post("/predict", json=row).json()["predictions"][0]["version"] == live["v2"]
    )
    # A canary share of 1 sends every request to the challenger.
    reg.set_alias("elec2", CHALLENGER, live["v1"])
    auth = {"Authorization": f"Bearer {TOKEN}"}
    assert c.post("/admin/reload", headers=auth).json()["served"]["challenger"] == live["v1"]
    assert c.post("/admin/canary", json={"share": 1.0}, headers=auth).status_code == 200
    p = c.post("/predict", json=row).json()["predictions"][0]
    assert (p["alias"], p["version"]) == ("challenger", live["v1"])
    c.post("/admin/canary", json={"share": 0.0}, headers=auth)
    h.champion(reg, live["v1"])
    reg.delete_alias("elec2", CHALLENGER)
    c.post("/admin/reload", headers=auth)


def test_metrics_and_health(live: dict[str, Any]) -> None:
    c = live["client"]
    c.post("/predict", json=h.rows(live["rows"].iloc[:1])[0])
    text = c.get("/metrics").text
    assert 'costaware_serve_requests_total{endpoint="predict",status="200"}' in text
    assert 'costaware_serve_requests_total{endpoint="predict",status="422"}' in text
    assert "costaware_serve_latency_seconds_bucket" in text
    assert 'costaware_serve_score_bucket{alias="champion"' in text
    assert f'costaware_serve_model_version{{alias="champion",version="{live["v1"]}"}} 1.0' in text
    assert "costaware_serve_log_dropped_records 0.0" in text
    health = c.get("/healthz")
    assert health.status_code == 200
    assert health.json()["champion"] == live["v1"]
