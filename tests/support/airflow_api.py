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
