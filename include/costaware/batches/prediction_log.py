"""The prediction log as a source of batches (``data.batches_from: prediction_log``).

``costaware serve`` logs every prediction (``predictions``) and takes delayed labels by
request id (``prediction_labels``). Here the labelled predictions of one interval become one
batch, written into the landing zone as a batch file plus a label file, so the batch takes
the same path as a landed one: labels taken in and checked, Great Expectations, drift,
performance, the cost checkpoint, training.

* Interval k is ``[origin + k·width, origin + (k+1)·width)`` of the time each row was served
  (``ts``; a replay logs the event's own time), origin = ``data.time.start``, width =
  ``data.prediction_log.interval_hours`` (default ``batch_rows × time.freq``: one batch of
  the landing zone). Rows keep that time as their ``event_time`` and their request id as
  ``event_id``.
* An interval is taken once ``label_wait_hours`` (default ``label_delay_batches`` intervals)
  have passed since it ended, with the rows labelled by then; labels that come later are not
  taken (the log line says how many rows were left unlabelled).
* Taken means: its batch file is waiting in the landing zone, or the ledger has recorded the
  batch (accepted, warned or quarantined). Intervals are taken in time order and never
  twice; a retry or rerun finds the file it wrote, so it takes the same rows. The label file
  is written before the batch file: a crash between the two leaves no batch without labels.
* Which version scored a row stays with it (``served_version``, ``served_alias``,
  ``served_score`` columns). Only rows scored by ``data.prediction_log.aliases`` are taken
  (default ``champion``): the canary's challenger rows are left out unless listed, and the
  log says how many were.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
from dataclasses import asdict, dataclass
from typing import Any

import sqlalchemy as sa

from costaware.batches.data import BATCH_SUFFIXES, ID_COLUMN, TIME_COLUMN
from costaware.config import ModelConfig
from costaware.errors import BatchError, ConfigError
from costaware.settings import Settings
from costaware.store import storage
from costaware.store.ledger import Ledger, prediction_labels, predictions

log = logging.getLogger(__name__)

PREFIX = "predlog-"  # batch ids (and file stems) of batches taken from the prediction log


@dataclass(frozen=True)
class LogBatch:
    """One interval written into the landing zone: what was taken and what was left."""

    batch_id: str
    start: str
    end: str
    served: int  # every prediction logged in the interval
    taken: int  # labelled rows of the allowed aliases: the batch
    unlabelled: int  # rows of the allowed aliases without a label when it was taken
    other_aliases: int  # rows scored by an alias not in data.prediction_log.aliases
    versions: dict[str, int]  # "champion v2": rows taken

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def line(self) -> str:
        by = ", ".join(f"{k}: {n}" for k, n in self.versions.items()) or "none"
        return (
            f"{self.batch_id} [{self.start} → {self.end}): {self.taken} labelled rows taken "
            f"({by}); {self.unlabelled} without a label yet left out; "
            f"{self.other_aliases} scored by other aliases left out; {self.served} served"
        )


def interval(cfg: ModelConfig) -> dt.timedelta:
    """One batch's interval: ``data.prediction_log.interval_hours``, or the landing zone's
    batch (``batch_rows`` rows of ``time.freq``)."""
    import pandas as pd

    hours = cfg.data.prediction_log.interval_hours
    if hours is not None:
        return dt.timedelta(hours=hours)
    try:
        step = pd.Timedelta(cfg.data.time.freq).to_pytimedelta()
    except ValueError as exc:
        raise ConfigError(
            f"{cfg.name}: data.time.freq {cfg.data.time.freq!r} is not a fixed duration, so the "
            "prediction log's batch interval cannot be derived from it; set "
            "data.prediction_log.interval_hours"
        ) from exc
    return step * cfg.data.batch_rows


def label_wait(cfg: ModelConfig) -> dt.timedelta:
    hours = cfg.data.prediction_log.label_wait_hours
    if hours is not None:
        return dt.timedelta(hours=hours)
    return interval(cfg) * cfg.data.label_delay_batches


def origin(cfg: ModelConfig) -> dt.datetime:
    return dt.datetime.fromisoformat(cfg.data.time.start).replace(tzinfo=None)


def batch_id(start: dt.datetime) -> str:
    return f"{PREFIX}{start:%Y%m%dT%H%M%S}"


def take_ready(
    settings: Settings, cfg: ModelConfig, ledger: Ledger, clock: dt.datetime
) -> list[LogBatch]:
    """Write every interval that is ready and not taken yet into the landing zone (label
    file, then batch file), oldest first; what was written. An interval whose rows have no
    label at all is passed over (nothing to train on) and not taken later."""
    model = cfg.name
    if cfg.data.batches_from != "prediction_log":
        raise ConfigError(
            f"{model}: data.batches_from is {cfg.data.batches_from!r}; batches come from the "
            "prediction log only with data.batches_from: prediction_log"
        )
    width, wait, start0 = interval(cfg), label_wait(cfg), origin(cfg)
    first_logged = _first_ts(ledger, model, None)
    if first_logged is None:
        raise BatchError(_empty_log(ledger, model))
    waiting = {p.stem for p in storage.files(settings.landing(model), BATCH_SUFFIXES)}
    recorded = {r["batch_id"] for r in ledger.batches(model)}
    taken = sorted(b for b in waiting | recorded if b.startswith(PREFIX))
    # From the end of the newest interval taken: intervals are taken in time order.
    cursor = _start_of(taken[-1]) + width if taken else None
    out: list[LogBatch] = []
    while True:
        first = _first_ts(ledger, model, cursor)
        if first is None:
            break
        k = math.floor((first - start0) / width)
        start = start0 + k * width
        end = start + width
        if end + wait > clock:  # not ready yet: its labels may still come
            break
        cursor = end
        bid = batch_id(start)
        if bid in waiting or bid in recorded:
            continue
        found = _write_interval(settings, cfg, ledger, bid, start, end)
        if found is not None:
            out.append(found)
    return out


def _write_interval(
    settings: Settings,
    cfg: ModelConfig,
    ledger: Ledger,
    bid: str,
    start: dt.datetime,
    end: dt.datetime,
) -> LogBatch | None:
    import pandas as pd

    model = cfg.name
    rows = _interval_rows(ledger, model, start, end)
    allowed = rows["alias"].isin(cfg.data.prediction_log.aliases)
    labelled = rows["label"].notna()
    part = rows[allowed & labelled]
    versions = part.groupby(["alias", "version"], sort=True).size()
    found = LogBatch(
        batch_id=bid,
        start=start.isoformat(),
        end=end.isoformat(),
        served=len(rows),
        taken=len(part),
        unlabelled=int((allowed & ~labelled).sum()),
        other_aliases=int((~allowed).sum()),
        versions={f"{a} v{v}": int(n) for (a, v), n in versions.items()},
    )
    if part.empty:
        log.warning("%s: interval passed over, nothing labelled to take: %s", model, found.line())
        return None
    feats = pd.DataFrame.from_records(list(part["features"]), index=part.index)
    missing = [f for f in cfg.feature_names if f not in feats.columns]
    if missing:
        raise BatchError(
            f"{model}: logged predictions of {bid} lack feature(s) {missing} (logged: "
            f"{sorted(feats.columns)}); the server logged another model config's features — "
            f"restart `costaware serve {model}` with this config"
        )
    batch = pd.DataFrame(
        {
            ID_COLUMN: part["request_id"].astype(str).to_numpy(),
            TIME_COLUMN: pd.to_datetime(part["ts"]).to_numpy(),
        }
    )
    for f in cfg.feature_names:
        batch[f] = feats[f].to_numpy()
    batch["served_version"] = part["version"].astype(str).to_numpy()
    batch["served_alias"] = part["alias"].astype(str).to_numpy()
    batch["served_score"] = part["score"].astype(float).to_numpy()
    labels = pd.DataFrame(
        {ID_COLUMN: batch[ID_COLUMN], cfg.target.name: part["label"].astype(str).to_numpy()}
    )
    # Labels first: the batch file is what marks the interval taken.
    storage.write_parquet(settings.labels_landing(model) / f"{bid}.parquet", labels)
    storage.write_parquet(settings.landing(model) / f"{bid}.parquet", batch)
    log.info("%s: from the prediction log: %s", model, found.line())
    return found


def _interval_rows(ledger: Ledger, model: str, start: dt.datetime, end: dt.datetime) -> Any:
    import pandas as pd

    p, lab = predictions, prediction_labels
    cols = [p.c.request_id, p.c.ts, p.c.features, p.c.score, p.c.version, p.c.alias, lab.c.label]
    joined = p.outerjoin(lab, sa.and_(lab.c.model == p.c.model, lab.c.request_id == p.c.request_id))
    stmt = (
        sa.select(*cols)
        .select_from(joined)
        .where(p.c.model == model, p.c.ts >= start, p.c.ts < end)
        .order_by(p.c.ts, p.c.id)
    )
    with ledger.engine.connect() as conn:
        found = conn.execute(stmt).all()
    return pd.DataFrame(found, columns=[c.name for c in cols])


def _first_ts(ledger: Ledger, model: str, after: dt.datetime | None) -> dt.datetime | None:
    p = predictions
    stmt = sa.select(sa.func.min(p.c.ts)).where(p.c.model == model)
    if after is not None:
        stmt = stmt.where(p.c.ts >= after)
    with ledger.engine.connect() as conn:
        found = conn.execute(stmt).scalar()
    return found  # type: ignore[no-any-return]


def _start_of(bid: str) -> dt.datetime:
    return dt.datetime.strptime(bid.removeprefix(PREFIX), "%Y%m%dT%H%M%S")


def _empty_log(ledger: Ledger, model: str) -> str:
    url = ledger.engine.url
    where = url.render_as_string(hide_password=True)
    hint = (
        "`costaware serve` must log to this same ledger: start it with the same "
        "COSTAWARE_DB_URL as the Airflow workers"
    )
    if url.get_backend_name() == "sqlite":
        hint += (
            " (this is a SQLite file: a server on another machine, or with another "
            "COSTAWARE_HOME, writes to its own file; use PostgreSQL to share the log)"
        )
    return (
        f"{model}: data.batches_from is prediction_log, but the prediction log in the ledger "
        f"{where} holds no prediction of {model}; {hint}, or set data.batches_from: landing "
        "to take batches from the landing zone"
    )
