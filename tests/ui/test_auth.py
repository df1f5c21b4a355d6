"""The plugin inside Airflow's own API app: every route of the Costaware page requires Airflow's
login, and the plugin's registrations are what Airflow's UI reads.

Airflow's app is built in process (``create_app(apps="core")``, plugins loaded from
``plugins/`` as the API server does); tokens are minted by Airflow's own auth manager."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from costaware.store import storage
from costaware.store.ledger import Ledger

from ..conftest import make_settings

RUN = "manual__1996-05-14T00:00:00+00:00"
BATCH = "b0001_1996-05-07"
ROUTES = [
    "/costaware/",
    "/costaware/models/elec2",
    "/costaware/api/models",
    "/costaware/api/models/elec2",
    f"/costaware/reports/elec2/{BATCH}/index.html",
    f"/costaware/reports/elec2/{BATCH}/validation.json",
    f"/costaware/runs/elec2/{RUN}",
    "/costaware/metrics",
    "/costaware/reports/elec2/b9999/index.html",  # refused before saying it does not exist
]


@pytest.fixture(scope="module")
def airflow(airflow_home: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    from airflow.api_fastapi.app import create_app, get_auth_manager
    from airflow.api_fastapi.auth.managers.simple.user import SimpleAuthManagerUser
    from fastapi.testclient import TestClient

    home = tmp_path_factory.mktemp("ui-auth")
    mp = pytest.MonkeyPatch()
    mp.setenv("COSTAWARE_HOME", str(home))  # read by the plugin when a request comes in
    mp.delenv("COSTAWARE_DB_URL", raising=False)
    settings = make_settings(home)
    led = Ledger(settings.db_url)
    led.record_decision(
        model="elec2",
        run_id=RUN,
        batch_id=BATCH,
        action="skip",
        reason="waiting for labels",
        details={},
        dry_run=False,
        outcome="skipped",
        data_time=dt.datetime(1996, 5, 13),
    )
    storage.write_text(settings.reports("elec2") / BATCH / "index.html", "<h1>decision</h1>")
    storage.write_json(settings.reports("elec2") / BATCH / "validation.json", {"success": True})
    client = TestClient(create_app(apps="core"), follow_redirects=False)
    token = get_auth_manager().generate_jwt(SimpleAuthManagerUser(username="bob", role="admin"))
    try:
        yield client, token
    finally:
        mp.undo()


@pytest.mark.parametrize("path", ROUTES)
def test_every_route_refuses_anonymous_and_bad_tokens(airflow, path: str) -> None:
    client, token = airflow
    assert client.get(path).status_code == 401
    forged = token[:-4] + ("AAAA" if not token.endswith("AAAA") else "BBBB")
    for bad in ("not-a-jwt", forged):
        assert client.get(path, headers={"Authorization": f"Bearer {bad}"}).status_code == 403
        client.cookies.set("_token", bad)
        try:
            assert client.get(path).status_code == 403
        finally:
            client.cookies.clear()


@pytest.mark.parametrize("path", ROUTES[:-1])  # the last one is a 404 for the logged in
def test_every_route_answers_the_logged_in_user(airflow, path: str) -> None:
    client, token = airflow
    for how in ("header", "cookie"):  # the API's bearer token, and the UI's session cookie
        if how == "header":
            resp = client.get(path, headers={"Authorization": f"Bearer {token}"})
        else:
            client.cookies.set("_token", token)
            try:
                resp = client.get(path)
            finally:
                client.cookies.clear()
        assert resp.status_code in (200, 303), (path, how, resp.text[:300])


def test_run_link_leads_to_the_runs_report(airflow) -> None:
    client, token = airflow
    auth = {"Authorization": f"Bearer {token}"}
    resp = client.get(f"/costaware/runs/elec2/{RUN}", headers=auth)
    assert resp.status_code == 303
    report = client.get(resp.headers["location"], headers=auth)
    assert report.status_code == 200 and report.text == "<h1>decision</h1>"
    assert "sandbox" in report.headers["content-security-policy"]
    missing = client.get("/costaware/runs/elec2/manual__nope", headers=auth)
    assert missing.status_code == 404 and "no decision or batch" in missing.json()["detail"]


@pytest.mark.parametrize(
    "path, status, says",
    [
        ("/costaware/reports/elec2/..db/index.html", 400, "not a plain name"),
        (f"/costaware/reports/elec2/{BATCH}/notes.txt", 404, "not a report file"),
        ("/costaware/reports/elec2/b9999/index.html", 404, "no index.html"),
        ("/costaware/models/nosuch", 404, "unknown model 'nosuch'; available: ['elec2'"),
    ],
)
def test_bad_paths_say_what_was_wrong(airflow, path: str, status: int, says: str) -> None:
    client, token = airflow
    resp = client.get(path, headers={"Authorization": f"Bearer {token}"})
    assert resp.status_code == status and says in resp.json()["detail"], resp.text


def test_airflow_lists_the_page_and_the_extra_link(airflow) -> None:
    client, token = airflow
    got = client.get("/api/v2/plugins", headers={"Authorization": f"Bearer {token}"}).json()
    plugin = next(p for p in got["plugins"] if p["name"] == "costaware")
    assert plugin["fastapi_apps"][0]["url_prefix"] == "/costaware"
    view = plugin["external_views"][0]
    assert (view["name"], view["href"], view["url_route"]) == (
        "Costaware",
        "/costaware/",
        "costaware",
    )
    assert any("CostawareReportLink" in x for x in plugin["global_operator_extra_links"])


def test_report_link_only_on_a_retrain_checkpoint() -> None:
    from costaware.app.ui.links import report_link

    assert report_link("retrain_elec2", "cost_checkpoint", "manual__a+b") == (
        "/costaware/runs/elec2/manual__a%2Bb"
    )
    assert report_link("retrain_elec2", "train_challenger", "r") == ""
    assert report_link("rollback_elec2", "cost_checkpoint", "r") == ""
