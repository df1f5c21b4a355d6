"""The HTTP edge: /predict, /labels, /metrics, /healthz and the admin endpoints. HTTP errors
are made here only; below, functions return values or raise costaware's own errors."""

from __future__ import annotations

import contextlib
import datetime as dt
import hmac
import time
from collections.abc import Iterator
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Header, HTTPException, Request, Response

from costaware.serve.app import Service, _served, new_id
from costaware.serve.live import NoChampion
from costaware.serve.logbook import LogFull
from costaware.serve.schemas import CanaryIn, LabelsIn, RowError, parse_rows
from costaware.store import ledger as ledger_mod

router = APIRouter()


def get_service(request: Request) -> Service:
    return request.app.state.service  # type: ignore[no-any-return]


ServiceDep = Annotated[Service, Depends(get_service)]


def _check_token(service: Service, authorization: str | None) -> None:
    if service.token is None:
        raise HTTPException(
            403, "admin endpoints are off: set COSTAWARE_SERVE_TOKEN for the server to use them"
        )
    given = (authorization or "").removeprefix("Bearer ").strip()
    if not hmac.compare_digest(given.encode(), service.token.encode()):
        raise HTTPException(401, "missing or wrong token: send 'Authorization: Bearer <token>'")


def admin(service: ServiceDep, authorization: Annotated[str | None, Header()] = None) -> None:
    _check_token(service, authorization)


def client(service: ServiceDep, authorization: Annotated[str | None, Header()] = None) -> None:
    if service.cfg.serving.protect_predictions:
        _check_token(service, authorization)


@contextlib.contextmanager
def _span(service: Service, name: str, **attrs: Any) -> Iterator[None]:
    if service.tracer is None:
        yield
        return
    with service.tracer.start_as_current_span(name, attributes=attrs):
        yield


def _count(service: Service, endpoint: str, status: int) -> None:
    service.metrics.requests.labels(endpoint=endpoint, status=str(status)).inc()


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


@router.post("/predict", dependencies=[Depends(client)])
def predict(service: ServiceDep, body: Annotated[Any, Body()]) -> dict[str, Any]:
    """Score one row (an object of features) or a batch (``{"rows": [...]}``); every scored
    row is logged with its request id, which ``/labels`` takes later."""
    import pandas as pd

    from costaware.models.scoring import score

    t0 = time.perf_counter()
    cfg = service.cfg
    with _span(service, "predict", model=service.model):
        try:
            rows, times = _rows(service, body)
            ids = [new_id() for _ in rows]
            picks = [service.live.pick(i) for i in ids]
        except RowError as exc:
            _count(service, "predict", 422)
            raise HTTPException(422, exc.errors) from exc
        except NoChampion as exc:
            _count(service, "predict", 503)
            raise HTTPException(503, str(exc)) from exc
        with _span(service, "score", rows=len(rows)):
            frame = pd.DataFrame(rows, columns=cfg.feature_names)
            scores = [0.0] * len(rows)
            for loaded in {id(p): p for p in picks}.values():  # champion, maybe challenger
                idx = [i for i, p in enumerate(picks) if p is loaded]
                for i, s in zip(
                    idx, score(loaded.model, frame.iloc[idx], cfg.feature_names), strict=True
                ):
                    scores[i] = float(s)
        latency_ms = (time.perf_counter() - t0) * 1000
        now = _now().isoformat()
        records = [
            {
                "model": service.model,
                "request_id": rid,
                "ts": t or now,
                "features": row,
                "score": s,
                "version": p.version,
                "alias": p.alias,
                "latency_ms": latency_ms,
            }
            for rid, row, s, p, t in zip(ids, rows, scores, picks, times, strict=True)
        ]
        with _span(service, "log", records=len(records)):
            try:
                service.log.add(records)
            except LogFull as exc:
                _count(service, "predict", 503)
                raise HTTPException(503, f"not served: it could not be logged: {exc}") from exc
    m = service.metrics
    m.latency.observe(time.perf_counter() - t0)
    for s, p in zip(scores, picks, strict=True):
        m.scores.labels(alias=p.alias).observe(s)
    _count(service, "predict", 200)
    return {
        "model": service.model,
        "predictions": [
            {"id": rid, "score": s, "version": p.version, "alias": p.alias}
            for rid, s, p in zip(ids, scores, picks, strict=True)
        ],
    }


def _rows(service: Service, body: Any) -> tuple[list[dict[str, Any]], list[str | None]]:
    """Validated feature rows and, for replays allowed to set it, each row's logged time."""
    times: list[str | None] = []
    if service.client_time:
        items = body.get("rows", [body]) if isinstance(body, dict) else []
        for item in items if isinstance(items, list) else []:
            t = item.pop("event_time", None) if isinstance(item, dict) else None
            try:
                times.append(None if t is None else dt.datetime.fromisoformat(str(t)).isoformat())
            except ValueError as exc:
                raise RowError(
                    [{"loc": ["body", "event_time"], "msg": f"not ISO 8601: {t!r}", "type": "v"}]
                ) from exc
    rows = parse_rows(body, service.cfg)
    return rows, times or [None] * len(rows)


@router.post("/labels", dependencies=[Depends(client)])
def labels(service: ServiceDep, body: LabelsIn) -> dict[str, Any]:
    """Delayed ground truth by request id. Posting the same labels again changes nothing;
    ids that no logged prediction has are reported back under ``unknown``."""
    given: dict[str, str] = {}
    for item in body.labels:
        value = item.label
        if isinstance(value, float) and value.is_integer():
            value = int(value)  # 1.0 is class 1, as the target's ``positive: 1`` reads
        label = str(value)
        if given.setdefault(item.id, label) != label:
            _count(service, "labels", 422)
            raise HTTPException(422, f"id {item.id!r} has two different labels in this request")
    ids = list(given)
    try:
        known = ledger_mod.known_request_ids(service.ledger, service.model, ids)
        known |= {i for i in ids if service.log.is_pending(i)}
        out = ledger_mod.record_labels(
            service.ledger, service.model, {i: given[i] for i in ids if i in known}, _now()
        )
    except Exception as exc:  # the ledger is down: the client retries (idempotent)
        _count(service, "labels", 503)
        raise HTTPException(503, f"labels not stored, retry later: {type(exc).__name__}") from exc
    _count(service, "labels", 200)
    return {
        "stored": len(out["stored"]),
        "unchanged": len(out["unchanged"]),
        "conflict": out["conflict"],
        "unknown": [i for i in ids if i not in known],
    }


@router.get("/metrics")
def metrics(service: ServiceDep) -> Response:
    service.metrics.set_versions(_served(service))
    return Response(service.metrics.render(), media_type="text/plain; version=0.0.4")


@router.get("/healthz")
def healthz(service: ServiceDep, response: Response) -> dict[str, Any]:
    served = _served(service)
    if served["champion"] is None:
        response.status_code = 503
    return {
        "status": "ok" if served["champion"] else "no champion",
        "model": service.model,
        **served,
        "canary_share": service.live.canary_share,
        "log": {
            "pending": service.log.depth,
            "dropped": service.log.dropped,
            "ledger": service.log.last_error or "ok",
        },
        "registry": service.live.error or "ok",
    }


@router.post("/admin/reload", dependencies=[Depends(admin)])
def reload(service: ServiceDep) -> dict[str, Any]:
    try:
        aliases = service.live.refresh()
    except Exception as exc:
        raise HTTPException(503, f"the registry could not answer: {exc}") from exc
    service.metrics.set_versions(_served(service))
    return {"aliases": aliases, "served": _served(service)}


@router.post("/admin/canary", dependencies=[Depends(admin)])
def canary(service: ServiceDep, body: CanaryIn) -> dict[str, Any]:
    service.live.canary_share = body.share
    return {"canary_share": body.share, "challenger": _served(service)["challenger"]}
