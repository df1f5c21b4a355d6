"""The prediction log: off the request path, batched, and losing nothing.

A request only appends its records to an in-memory queue (``add``). Two threads do the rest:

* the **spooler** writes what is queued, every ``flush_interval`` seconds or ``batch_records``
  records, as one file in the spool folder (written beside its name, flushed to disk, then
  renamed: a file there is whole);
* the **shipper** inserts the spool's files into the ledger, oldest first, one transaction
  each, and removes a file only after its transaction committed. An insert ignores rows
  already there (``log_predictions``), so a crash between the commit and the removal
  duplicates nothing.

When the ledger is slow or down, files wait in the spool (bounded by ``spool_max_bytes``) and
the shipper retries with a growing pause; when it answers again they are replayed in order.
A server stopped with SIGTERM writes what is queued to the spool and ships what it can before
its deadline; what is left is shipped by the next start. When both the spool and the memory
queue are full, ``add`` refuses (the caller answers 503): a prediction nobody can log is not
served, so no served prediction is lost and ``dropped`` stays 0 (it counts only records a
failing disk would not take).
"""

from __future__ import annotations

import itertools
import json
import logging
import os
import threading
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)
SUFFIX = ".jsonl"


class LogFull(Exception):
    """The spool and the memory queue are both full: the prediction cannot be logged."""


class PredictionLog:
    def __init__(
        self,
        spool_dir: Path,
        write: Callable[[list[dict[str, Any]]], int],
        flush_interval: float = 0.2,
        batch_records: int = 500,
        spool_max_bytes: int = 256 << 20,
        max_pending: int = 100_000,
        fsync: bool = True,
    ) -> None:
        self.spool_dir = Path(spool_dir)
        self.write = write
        self.flush_interval = flush_interval
        self.batch_records = batch_records
        self.spool_max_bytes = spool_max_bytes
        self.max_pending = max_pending
        self.fsync = fsync
        self.queue: deque[dict[str, Any]] = deque()
        self.pending_ids: set[str] = set()  # queued or spooled, not yet in the ledger
        self.spooled_records = 0
        self.spooled_bytes = 0
        self.shipped = 0
        self.dropped = 0
        self.last_error: str = ""
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._ship_wake = threading.Event()
        self._stop = threading.Event()
        self._seq = itertools.count()
        self._threads: list[threading.Thread] = []

    # -- lifecycle -------------------------------------------------------------------------
    def start(self) -> None:
        self.spool_dir.mkdir(parents=True, exist_ok=True)
        for tmp in self.spool_dir.glob("*.tmp"):
            tmp.unlink()  # a write a crash interrupted: its records are still in no file
        for path in self._files():  # left by an earlier run: shipped first
            records = _read(path)
            self.spooled_records += len(records)
            self.spooled_bytes += path.stat().st_size
            self.pending_ids.update(r["request_id"] for r in records)
        self._stop.clear()
        self._threads = [
            threading.Thread(target=self._spool_loop, name="costaware-spooler", daemon=True),
            threading.Thread(target=self._ship_loop, name="costaware-shipper", daemon=True),
        ]
        for t in self._threads:
            t.start()

    def close(self, deadline_s: float = 10.0) -> None:
        """Spool everything queued, ship what the ledger takes within ``deadline_s``; the
        rest stays in the spool for the next start."""
        self._stop.set()
        self._wake.set()
        for t in self._threads:
            t.join(timeout=deadline_s + 5)
        self._spool_queued()  # whatever arrived while the threads were stopping
        end = time.monotonic() + deadline_s
        while self._files() and time.monotonic() < end:
            if not self._ship_one():
                time.sleep(0.2)
        left = self.spooled_records
        if left:
            log.warning("%d logged predictions stay in the spool %s", left, self.spool_dir)

    # -- the request path ------------------------------------------------------------------
    def add(self, records: list[dict[str, Any]]) -> None:
        with self._lock:
            if len(self.queue) + len(records) > self.max_pending:
                raise LogFull(
                    f"{len(self.queue)} predictions wait to be logged (limit "
                    f"{self.max_pending}) and the spool holds {self.spooled_bytes} bytes "
                    f"(limit {self.spool_max_bytes}); the ledger has not taken them: "
                    f"{self.last_error or 'slow'}"
                )
            self.queue.extend(records)
            self.pending_ids.update(r["request_id"] for r in records)
        if len(self.queue) >= self.batch_records:
            self._wake.set()

    @property
    def depth(self) -> int:
        """Records not yet in the ledger (queued in memory + in the spool)."""
        return len(self.queue) + self.spooled_records

    def is_pending(self, request_id: str) -> bool:
        return request_id in self.pending_ids

    # -- the spooler -----------------------------------------------------------------------
    def _spool_loop(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(self.flush_interval)
            self._wake.clear()
            self._spool_queued()

    def _spool_queued(self) -> None:
        while self.queue:
            if self.spooled_bytes >= self.spool_max_bytes:
                return  # full: records wait in memory (bounded by max_pending)
            with self._lock:
                n = min(len(self.queue), self.batch_records)
                batch = [self.queue.popleft() for _ in range(n)]
            try:
                self._spool(batch)
            except OSError as exc:  # the disk refused: these records are lost, counted
                self.dropped += len(batch)
                log.error("could not spool %d predictions: %s", len(batch), exc)

    def _spool(self, batch: list[dict[str, Any]]) -> None:
        name = f"{time.time_ns():020d}-{os.getpid()}-{next(self._seq):08d}"
        tmp = self.spool_dir / f"{name}.tmp"
        data = "".join(json.dumps(r, default=str) + "\n" for r in batch).encode()
        with tmp.open("wb") as f:
            f.write(data)
            if self.fsync:
                f.flush()
                os.fsync(f.fileno())
        tmp.rename(self.spool_dir / f"{name}{SUFFIX}")
        with self._lock:
            self.spooled_records += len(batch)
            self.spooled_bytes += len(data)
        self._ship_wake.set()

    # -- the shipper -----------------------------------------------------------------------
    def _ship_loop(self) -> None:
        pause = 0.0
        while not self._stop.is_set():
            if pause:
                self._stop.wait(pause)
            elif not self._files():
                self._ship_wake.wait(self.flush_interval)
                self._ship_wake.clear()
                continue
            shipped = self._ship_one()
            pause = 0.0 if shipped else min(max(pause * 2, 0.25), 5.0)

    def _files(self) -> list[Path]:
        return sorted(self.spool_dir.glob(f"*{SUFFIX}"))

    def _ship_one(self) -> bool:
        """Ship the oldest spool file; False when the ledger did not take it."""
        files = self._files()
        if not files:
            return True
        path = files[0]
        records = _read(path)
        size = path.stat().st_size
        try:
            self.write(records)
        except Exception as exc:  # down, slow (a timeout), restarting: retried later
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
            if first != self.last_error:
                log.warning("the ledger did not take %d predictions: %s", len(records), first)
            self.last_error = first
            return False
        path.unlink()
        with self._lock:
            self.spooled_records -= len(records)
            self.spooled_bytes -= size
            self.shipped += len(records)
            self.pending_ids.difference_update(r["request_id"] for r in records)
        self.last_error = ""
        return True


def _read(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line]
