"""The Costaware page's FastAPI app, mounted by Airflow's API server (``plugins/costaware_ui.py``).

Airflow mounts a plugin's FastAPI app as is: without a dependency of its own, every route would
be open to anyone who can reach the server. The app therefore declares Airflow's user
dependency (``get_user``: the JWT from the ``Authorization: Bearer`` header, or the UI's
``_token`` cookie) on the app itself, so every route — page, JSON, report file — refuses an
anonymous request (401) and a bad token (403) exactly as ``/api/v2`` does.

Routes (under ``/costaware``):

* ``/`` and ``/models/{model}``: the page (embedded in Airflow's UI as the "Costaware" view);
* ``/api/models`` and ``/api/models/{model}``: the same data as JSON;
* ``/reports/{model}/{batch}/{file}``: a run's report files, read through the storage layer;
* ``/runs/{model}/{run_id}``: the report of one DAG run (the checkpoint task's extra link);
* ``/metrics``: costaware's numbers for Prometheus (``metrics.py``).

Actions (trigger, approve, roll back) are not routes here: the page calls Airflow's own REST API
as the logged-in user, so Airflow's permissions, validation and audit log apply unchanged.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import Any

from fastapi import Depends, FastAPI, HTTPException
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response

from costaware.app.ui import data, page
from costaware.config import get_model, load_models_for_dags
from costaware.settings import Settings
from costaware.store import storage
from costaware.store.ledger import Ledger

_MEDIA = {".html": "text/html; charset=utf-8", ".json": "application/json"}


def _models(settings: Settings) -> list[str]:
    return sorted(load_models_for_dags(settings).configs)


def _checked_model(settings: Settings, model: str) -> str:
    try:
        data.safe_name(model, "model")
    except ValueError as exc:
        raise HTTPException(400, str(exc)) from None
    models = _models(settings)
    if model not in models:
        raise HTTPException(404, f"unknown model {model!r}; available: {models}")
    return model


def _tag_key(settings: Settings, model: str) -> str:
    """Spend is grouped by the model's ``team`` tag (showback's default grouping)."""
    return "team"


def _jsonable(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        out = {f.name: _jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
        if hasattr(value, "label_coverage"):
            out["label_coverage"] = value.label_coverage
        if hasattr(value, "text") and callable(value.text):
            out["text"] = value.text()
        return out
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, dt.datetime):
        return value.isoformat()
    return value


def create_app(settings: Settings | None = None) -> FastAPI:
    """The plugin app. ``settings`` default: the environment, read when a request comes in (the
    API server may be configured after this module is imported)."""
    from airflow.api_fastapi.core_api.security import get_user

    app = FastAPI(
        title="costaware",
        dependencies=[Depends(get_user)],  # every route: Airflow's login
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
    )

    def cfg() -> Settings:
        return settings or Settings.from_env()

    def view(model: str) -> data.ModelView:
        s = cfg()
        model = _checked_model(s, model)
        metric = get_model(s.models_dir, model).metric
        return data.model_view(s, Ledger(s.db_url), model, _tag_key(s, model), metric)

    @app.get("/", response_class=HTMLResponse)
    def index() -> Response:
        models = _models(cfg())
        if len(models) == 1:
            return RedirectResponse(f"{page.PREFIX}/models/{models[0]}", status_code=303)
        return HTMLResponse(page.index_page(models))

    @app.get("/models/{model}", response_class=HTMLResponse)
    def model_page(model: str) -> HTMLResponse:
        return HTMLResponse(page.model_page(view(model), _models(cfg())))

    @app.get("/api/models")
    def list_models() -> dict[str, Any]:
        return {"models": _models(cfg())}

    @app.get("/api/models/{model}")
    def model_data(model: str) -> JSONResponse:
        return JSONResponse(_jsonable(view(model)))

    @app.get("/metrics")
    def prometheus_metrics() -> Response:
        from costaware.app.ui.metrics import render

        s = cfg()
        led = Ledger(s.db_url)
        views = []
        for model in _models(s):
            budget = get_model(s.models_dir, model).cost_policy.monthly_budget_usd
            views.append((data.model_view(s, led, model, _tag_key(s, model)), budget))
        return Response(render(views), media_type="text/plain; version=0.0.4; charset=utf-8")

    @app.get("/reports/{model}/{batch}/{name}")
    def report_file(model: str, batch: str, name: str) -> Response:
        s = cfg()
        model = _checked_model(s, model)
        try:
            data.safe_name(batch, "batch")
            data.safe_name(name, "report file")
        except ValueError as exc:
            raise HTTPException(400, str(exc)) from None
        if name not in data.REPORT_FILES:
            raise HTTPException(
                404, f"{name!r} is not a report file; served: {list(data.REPORT_FILES)}"
            )
        loc = s.reports(model) / batch / name
        if not loc.exists() and name == "validation.json":
            # A quarantined batch keeps its validation beside it in quarantine/ (the ledger
            # row says where).
            row = Ledger(s.db_url).batch(model, batch)
            if row is not None and str(row["report_path"] or "").endswith("/validation.json"):
                loc = storage.location(row["report_path"], s.storage_conn_id)
        if not loc.exists():
            raise HTTPException(404, f"no {name} for {model} batch {batch!r}")
        media = _MEDIA.get("." + name.rsplit(".", 1)[-1], "application/octet-stream")
        # Reports are static HTML written by costaware and Evidently; sandboxed so a value from
        # data that slipped through could not act as the logged-in user.
        headers = {"Content-Security-Policy": "sandbox allow-scripts allow-popups"}
        return Response(storage.read_bytes(loc), media_type=media, headers=headers)

    @app.get("/runs/{model}/{run_id}")
    def run_report(model: str, run_id: str) -> Response:
        s = cfg()
        model = _checked_model(s, model)
        found = data.run_for(Ledger(s.db_url), model, run_id)
        if found is None or not found["batch_id"]:
            raise HTTPException(
                404,
                f"run {run_id!r} of {model} has no decision or batch in the ledger yet "
                "(it took no batch, or has not reached the checkpoint)",
            )
        return RedirectResponse(
            page.report_url(model, found["batch_id"], "index.html"), status_code=303
        )

    return app
