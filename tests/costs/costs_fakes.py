"""One small HTTP server speaking the documented REST paths the cost sources call:

- Cloud Billing catalog: ``GET /v1/services/{service}/skus`` (paged by ``pageToken``);
- BigQuery: ``POST /bigquery/v2/projects/{p}/queries`` (jobs.query) and
  ``GET /bigquery/v2/projects/{p}/queries/{jobId}`` (jobs.getQueryResults, paged);
- AWS Pricing (JSON 1.1, ``X-Amz-Target: AWSPriceListService.GetProducts``), which moto lacks;
- an OAuth 2.0 token endpoint, ``POST /token``, where a service-account key's signed assertion
  is exchanged for ``ACCESS_TOKEN`` (set a key's ``token_uri`` to ``{url}/token``).

It records every request (its ``Authorization`` header too) so tests can assert on the SQL,
parameters and credentials that were sent. BigQuery answers come from
``bq_answer(sql, params) -> (schema fields, rows)``, set by the test.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, parse_qsl, urlparse

ACCESS_TOKEN = "ya29.fake-token-from-costs-fakes"
BqAnswer = Callable[[str, dict[str, Any]], tuple[list[dict[str, str]], list[list[Any]]]]


class FakeCloudServer:
    def __init__(self) -> None:
        self.httpd: ThreadingHTTPServer | None = None
        self.reset()

    def reset(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.skus: dict[str, list[dict[str, Any]]] = {}
        self.sku_page_size = 2
        self.price_list: list[str] = []
        self.bq_answer: BqAnswer | None = None
        self.bq_page_size = 3
        self.fail: dict[str, int] = {}  # path kind -> HTTP status for the next such call
        self._jobs: dict[str, tuple[list[dict[str, str]], list[list[Any]]]] = {}

    @property
    def url(self) -> str:
        assert self.httpd is not None
        host, port = self.httpd.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> None:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:  # keep test output quiet
                pass

            def _send(self, status: int, body: Any) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _body(self) -> Any:
                n = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(n) if n else b""
                if self.headers.get("Content-Type", "").startswith(
                    "application/x-www-form-urlencoded"
                ):
                    return dict(parse_qsl(raw.decode()))
                return json.loads(raw) if raw else {}

            def do_GET(self) -> None:
                fake._route(self, "GET", None)

            def do_POST(self) -> None:
                fake._route(self, "POST", self._body())

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def stop(self) -> None:
        if self.httpd is not None:
            self.httpd.shutdown()
            self.httpd.server_close()

    # -- routing -------------------------------------------------------------------------
    def _route(self, h: Any, method: str, body: Any) -> None:
        url = urlparse(h.path)
        query = {k: v[-1] for k, v in parse_qs(url.query).items()}
        parts = [p for p in url.path.split("/") if p]
        target = h.headers.get("X-Amz-Target", "")
        self.requests.append(
            {
                "method": method,
                "path": url.path,
                "query": query,
                "body": body,
                "target": target,
                "authorization": h.headers.get("Authorization"),
            }
        )
        if parts == ["token"]:
            return h._send(
                200, {"access_token": ACCESS_TOKEN, "expires_in": 3600, "token_type": "Bearer"}
            )
        if target:
            kind = "pricing"
        elif parts[:1] == ["services"]:
            kind = "webhook"  # a Slack incoming webhook: /services/T…/B…/…
        elif parts[:2] == ["v1", "services"]:
            kind = "skus"
        elif method == "POST" and parts[-1:] == ["queries"]:
            kind = "bq_query"
        elif "queries" in parts:
            kind = "bq_results"
        elif method == "GET" and "jobs" in parts:
            kind = "bq_job"
        else:
            kind = "unknown"
        if kind in self.fail:
            status = self.fail.pop(kind)
            err = {
                "error": {
                    "code": status,
                    "message": f"injected failure on {kind}",
                    "status": "UNAVAILABLE" if status >= 500 else "RESOURCE_EXHAUSTED",
                }
            }
            if kind == "pricing":
                err = {"__type": "ThrottlingException", "message": "Rate exceeded"}
            return h._send(status, err)
        if kind == "webhook":
            return h._send(200, {"ok": True})
        if kind == "pricing":
            return h._send(200, {"FormatVersion": "aws_v1", "PriceList": self.price_list})
        if kind == "skus":
            return h._send(200, self._skus(parts[2], query))
        if kind == "bq_query":
            return h._send(200, self._bq_query(parts[3], body))
        if kind == "bq_results":
            return h._send(200, self._bq_page(parts[3], parts[-1], query.get("pageToken")))
        if kind == "bq_job":
            return h._send(200, self._bq_job(parts[3], parts[-1]))
        return h._send(404, {"error": {"code": 404, "message": f"no route for {url.path}"}})

    def _skus(self, service: str, query: dict[str, str]) -> dict[str, Any]:
        skus = self.skus.get(service, [])
        start = int(query.get("pageToken") or 0)
        size = int(query.get("pageSize") or self.sku_page_size)
        size = min(size, self.sku_page_size)
        nxt = start + size
        return {"skus": skus[start:nxt], "nextPageToken": str(nxt) if nxt < len(skus) else ""}

    def _bq_query(self, project: str, body: dict[str, Any]) -> dict[str, Any]:
        assert self.bq_answer is not None, "test did not set bq_answer"
        params = {p["name"]: _param_value(p) for p in body.get("queryParameters", [])}
        fields, rows = self.bq_answer(body["query"], params)
        job_id = f"job_{len(self._jobs) + 1}"
        self._jobs[job_id] = (fields, rows)
        return {"kind": "bigquery#queryResponse", **self._bq_page(project, job_id, None)}

    def _bq_job(self, project: str, job_id: str) -> dict[str, Any]:
        # jobs.get: the client looks the finished query job up before paging its results.
        ref = {"projectId": project, "jobId": job_id, "location": "US"}
        return {
            "kind": "bigquery#job",
            "id": f"{project}:US.{job_id}",
            "jobReference": ref,
            "configuration": {"jobType": "QUERY", "query": {"query": "", "useLegacySql": False}},
            "status": {"state": "DONE"},
            "statistics": {"creationTime": "1763625600000", "query": {}},
        }

    def _bq_page(self, project: str, job_id: str, token: str | None) -> dict[str, Any]:
        fields, rows = self._jobs[job_id]
        start = int(token or 0)
        nxt = start + self.bq_page_size
        out: dict[str, Any] = {
            "kind": "bigquery#getQueryResultsResponse",
            "jobReference": {"projectId": project, "jobId": job_id, "location": "US"},
            "schema": {"fields": [{**f, "mode": "NULLABLE"} for f in fields]},
            "totalRows": str(len(rows)),
            "rows": [{"f": [{"v": _cell(v)} for v in row]} for row in rows[start:nxt]],
            "jobComplete": True,
            "cacheHit": False,
        }
        if nxt < len(rows):
            out["pageToken"] = str(nxt)
        return out


def _cell(v: Any) -> Any:
    return None if v is None else str(v).lower() if isinstance(v, bool) else str(v)


def _param_value(p: dict[str, Any]) -> Any:
    value = p.get("parameterValue", {})
    if "arrayValues" in value:
        return [a.get("value") for a in value["arrayValues"]]
    return value.get("value")
