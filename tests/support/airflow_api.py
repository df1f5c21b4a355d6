"""Airflow's REST API (``/api/v2``) as a user of the UI would reach it, for the tests that run
real Airflow components (``airflow standalone``, the Celery stack)."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from typing import Any


class AirflowApi:
    def __init__(self, base: str) -> None:
        self.base, self.token, self.password = base, "", ""

    def login(self, user: str, password: str) -> AirflowApi:
        status, body = self.call("POST", "/auth/token", {"username": user, "password": password})
        assert status in (200, 201), body
        self.token, self.password = body["access_token"], password
        return self

    def call(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        req = urllib.request.Request(
            self.base + path,
            method=method,
            data=None if body is None else json.dumps(body).encode(),
            headers={
                "Content-Type": "application/json",
                **({"Authorization": f"Bearer {self.token}"} if self.token else {}),
            },
        )
        try:
            with urllib.request.urlopen(req, timeout=30) as resp:
                return resp.status, json.loads(resp.read() or b"null")
        except urllib.error.HTTPError as err:
            return err.code, json.loads(err.read() or b"null")

    def wait_for_run(self, dag: str, run_id: str, timeout: float) -> dict[str, Any]:
        """The run once it has finished; fails with every task's state when it did not
        succeed."""
        deadline, run = time.monotonic() + timeout, {"state": "queued"}
        while run["state"] not in ("success", "failed") and time.monotonic() < deadline:
            time.sleep(2)
            status, run = self.call("GET", f"/api/v2/dags/{dag}/dagRuns/{run_id}")
            assert status == 200, run
        _, tis = self.call("GET", f"/api/v2/dags/{dag}/dagRuns/{run_id}/taskInstances")
        states = {t["task_id"]: t["state"] for t in tis["task_instances"]}
        assert run["state"] == "success", f"run {run_id} is {run['state']}: {states}"
        return run


class InProcessApi:
    """Airflow's public REST API served in this process (its FastAPI app, as the UI calls
    it), logged in as ``username``, for the runs of ``dag_id`` that ``dag.test()`` makes."""

    def __init__(self, username: str, dag_id: str) -> None:
        from airflow.api_fastapi.app import create_app, get_auth_manager
        from airflow.api_fastapi.auth.managers.simple.user import SimpleAuthManagerUser
        from fastapi.testclient import TestClient

        self.dag_id = dag_id
        self.client = TestClient(create_app(apps="core"))
        token = get_auth_manager().generate_jwt(
            SimpleAuthManagerUser(username=username, role="admin")
        )
        self.client.headers["Authorization"] = f"Bearer {token}"

    def get(self, path: str, **params: Any) -> Any:
        resp = self.client.get("/api/v2" + path, params=params)
        assert resp.status_code == 200, resp.text
        return resp.json()

    def patch(self, path: str, body: dict[str, Any]) -> Any:
        resp = self.client.patch("/api/v2" + path, json=body)
        assert resp.status_code == 200, resp.text
        return resp.json()

    def task_states(self, run_id: str) -> dict[str, str]:
        got = self.get(f"/dags/{self.dag_id}/dagRuns/{run_id}/taskInstances")
        return {t["task_id"]: t["state"] for t in got["task_instances"]}

    def open_request(self) -> dict[str, Any] | None:
        """The approval waiting for an answer, once its task is parked (as the UI lists it)."""
        found = self.get(f"/dags/{self.dag_id}/dagRuns/~/hitlDetails", response_received=False)
        for d in found["hitl_details"]:
            if d["task_instance"]["state"] == "awaiting_input":
                return d  # type: ignore[no-any-return]
        return None

    def answer(self, request: dict[str, Any], option: str) -> None:
        """Answer ``request`` (from ``open_request``) as a person does in the UI."""
        ti = request["task_instance"]
        self.patch(
            f"/dags/{self.dag_id}/dagRuns/{ti['dag_run_id']}/taskInstances/"
            f"{ti['task_id']}/{ti['map_index']}/hitlDetails",
            {"chosen_options": [option], "params_input": {}},
        )

    def hitl(self, run_id: str, task_id: str) -> dict[str, Any]:
        return self.get(  # type: ignore[no-any-return]
            f"/dags/{self.dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/-1/hitlDetails"
        )
