"""``costaware serve MODEL``: the FastAPI app, and uvicorn running it.

Environment (besides costaware's own ``COSTAWARE_*`` state settings):

* ``COSTAWARE_SERVE_TOKEN`` — the bearer token of the admin endpoints (reload, canary share),
  and of ``/predict`` and ``/labels`` when the model's ``serving.protect_predictions`` is
  true. Unset: admin endpoints answer 403 and say to set it.
* ``COSTAWARE_SERVE_SPOOL`` — the spool folder (default ``COSTAWARE_HOME/spool/<model>``);
  keep it on a disk that outlives the process.
* ``COSTAWARE_SERVE_CLIENT_TIME=1`` — accept a row's ``event_time`` as the logged time
  (replays of historical traffic only; live traffic is logged at the server's clock).
* ``OTEL_EXPORTER_OTLP_ENDPOINT`` — see ``serve/tracing.py``.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import os
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from costaware.config import ModelConfig, get_model
from costaware.models.registry import Registry
from costaware.serve.live import LiveModels
from costaware.serve.logbook import PredictionLog
from costaware.serve.metrics import ServeMetrics
from costaware.settings import Settings
from costaware.store import ledger as ledger_mod
from costaware.store.ledger import Ledger

log = logging.getLogger(__name__)


@dataclass
class Service:
    """Everything a request needs; built by ``build_service``, started by the app's lifespan."""

    cfg: ModelConfig
    settings: Settings
    live: LiveModels
    log: PredictionLog
    metrics: ServeMetrics
    ledger: Ledger
    token: str | None
    client_time: bool
    tracer: Any = None
    tracer_provider: Any = None  # flushed at shutdown

    @property
    def model(self) -> str:
        return self.cfg.name


def build_service(
    model: str, settings: Settings | None = None, env: dict[str, str] | None = None
) -> Service:
    settings = settings or Settings.from_env()
    env = dict(os.environ if env is None else env)
    cfg = get_model(settings.models_dir, model)
    ledger = Ledger(_bounded(settings.db_url))
    spool = Path(env.get("COSTAWARE_SERVE_SPOOL") or settings.home / "spool" / model)
    s = cfg.serving

    def write(records: list[dict[str, Any]]) -> int:
        rows = [{**r, "ts": dt.datetime.fromisoformat(r["ts"])} for r in records]
        return ledger_mod.log_predictions(ledger, rows)

    plog = PredictionLog(
        spool,
        write,
        flush_interval=s.flush_interval_seconds,
        batch_records=s.batch_records,
        spool_max_bytes=int(s.spool_max_mb * (1 << 20)),
        max_pending=s.max_pending_records,
    )
    registry = Registry(settings.mlflow_uri, settings.mlflow_artifacts)
    live = LiveModels(registry, model, s.canary_share, s.alias_poll_seconds)
    metrics = ServeMetrics.create(
        depth=lambda: plog.depth, dropped=lambda: plog.dropped, logged=lambda: plog.shipped
    )
    from costaware.serve.tracing import make_tracer

    tracer, provider = make_tracer(f"costaware-serve-{model}", env)
    return Service(
        cfg=cfg,
        settings=settings,
        live=live,
        log=plog,
        metrics=metrics,
        ledger=ledger,
        token=env.get("COSTAWARE_SERVE_TOKEN") or None,
        client_time=env.get("COSTAWARE_SERVE_CLIENT_TIME") == "1",
        tracer=tracer,
        tracer_provider=provider,
    )


def _bounded(url: str) -> str:
    """A PostgreSQL URL whose connections give up after 5 s and statements after 30 s: a
    ledger that hangs must not hold the shipper (or a shutdown) forever; its records wait
    in the spool and the shipper tries again."""
    from sqlalchemy.engine import make_url

    u = make_url(url)
    if not u.drivername.startswith("postgresql"):
        return url
    query = dict(u.query)
    query.setdefault("connect_timeout", "5")
    query.setdefault("options", "-c statement_timeout=30000")
    return u.set(query=query).render_as_string(hide_password=False)


def create_app(service: Service) -> Any:
    from fastapi import FastAPI

    from costaware.serve.routes import router

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # Logging first: a spool left by an earlier run starts shipping at once, and no
        # request is scored before the log can take its records.
        try:  # the ledger's schema, migrated now rather than by the first write
            service.ledger.engine  # noqa: B018
        except Exception as exc:  # down: the spool keeps records until it is back
            log.warning("the ledger is not reachable at start: %s", exc)
        service.log.start()
        service.live.start()
        service.metrics.set_versions(_served(service))
        try:
            yield
        finally:  # uvicorn runs this on SIGTERM/SIGINT, after the open requests finished
            service.live.stop()
            service.log.close(deadline_s=10.0)
            if service.tracer_provider is not None:
                service.tracer_provider.shutdown()  # exports the spans still batched

    app = FastAPI(
        title=f"costaware serve {service.model}",
        description=f"The champion of {service.model}, logged for the monitor.",
        lifespan=lifespan,
    )
    app.state.service = service
    app.include_router(router)
    return app


def _served(service: Service) -> dict[str, str | None]:
    live = service.live
    return {
        "champion": live.champion.version if live.champion else None,
        "challenger": live.challenger.version if live.challenger else None,
    }


def new_id() -> str:
    return uuid.uuid4().hex


def serve(model: str, host: str = "127.0.0.1", port: int = 8000, log_level: str = "info") -> None:
    """Run the app under uvicorn until SIGTERM/SIGINT (then the log is flushed)."""
    import uvicorn

    app = create_app(build_service(model))
    # No access log: a line per request would cost more than the prediction log does.
    uvicorn.run(
        app,
        host=host,
        port=port,
        log_level=log_level,
        access_log=False,
        timeout_graceful_shutdown=20,
    )
