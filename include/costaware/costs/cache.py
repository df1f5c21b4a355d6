"""A cache of billed cloud API answers, kept in the ledger database.

Cost Explorer bills every request ($0.01) and throttles hard, while most of what it returns
never changes once the bill for a day is final. So an answer is kept in the ledger DB: a
*final* answer (every figure reconciled) forever, any other one for ``ttl``. The table lives
on its own ``MetaData`` so the ledger's schema is not touched, and it is created on first use.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError

from costaware.store.ledger import Ledger

cache_metadata = sa.MetaData()

api_cache = sa.Table(
    "cost_api_cache",
    cache_metadata,
    sa.Column("key", sa.String(64), primary_key=True),
    sa.Column("service", sa.String(40), nullable=False),
    sa.Column("request", sa.JSON, nullable=False),
    sa.Column("response", sa.JSON, nullable=False),
    # True when nothing in the answer can change any more (the bill for those days is final).
    sa.Column("final", sa.Boolean, nullable=False),
    sa.Column("fetched_at", sa.DateTime, nullable=False),
)


def cache_key(service: str, request: dict[str, Any]) -> str:
    body = json.dumps({"service": service, "request": request}, sort_keys=True, default=str)
    return hashlib.sha256(body.encode()).hexdigest()


class ResponseCache:
    """Get and put API answers by (service, request). ``now`` is naive UTC."""

    def __init__(self, ledger: Ledger, ttl: dt.timedelta = dt.timedelta(hours=12)) -> None:
        self.ledger = ledger
        self.ttl = ttl
        self._ready = False

    @property
    def engine(self) -> Engine:
        engine = self.ledger.engine
        if not self._ready:
            cache_metadata.create_all(engine, checkfirst=True)
            self._ready = True
        return engine

    def get(self, service: str, request: dict[str, Any], now: dt.datetime) -> Any | None:
        stmt = sa.select(api_cache).where(api_cache.c.key == cache_key(service, request))
        with self.engine.connect() as conn:
            row = conn.execute(stmt).first()
        if row is None:
            return None
        if row.final or now - row.fetched_at < self.ttl:
            return row.response
        return None

    def put(
        self,
        service: str,
        request: dict[str, Any],
        response: Any,
        final: bool,
        now: dt.datetime,
    ) -> None:
        key = cache_key(service, request)
        row = {
            "key": key,
            "service": service,
            "request": request,
            "response": response,
            "final": final,
            "fetched_at": now,
        }
        try:
            with self.engine.begin() as conn:
                conn.execute(api_cache.delete().where(api_cache.c.key == key))
                conn.execute(api_cache.insert().values(**row))
        except IntegrityError:
            # Another worker cached the same answer at the same moment: theirs is as good.
            pass

    def entries(self, service: str | None = None) -> int:
        stmt = sa.select(sa.func.count()).select_from(api_cache)
        if service is not None:
            stmt = stmt.where(api_cache.c.service == service)
        with self.engine.connect() as conn:
            return int(conn.execute(stmt).scalar_one())
