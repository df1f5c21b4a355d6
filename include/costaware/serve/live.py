"""The models being served: whatever the registry aliases ``champion`` (and, for a canary,
``challenger``) name, followed without a restart.

A poller re-reads the aliases every ``alias_poll_seconds``; a changed alias loads the new
version first and then swaps it in, so requests are always scored by a whole loaded model.
A registry that cannot answer keeps the models already loaded (and says so in ``error``);
only a server that never loaded a champion refuses to score.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from dataclasses import dataclass
from typing import Any

from costaware.errors import CostawareError
from costaware.models.registry import CHALLENGER, CHAMPION, Registry

log = logging.getLogger(__name__)


class NoChampion(CostawareError):
    """The registry has no champion for the model (yet): nothing to serve."""


@dataclass(frozen=True)
class Loaded:
    alias: str
    version: str
    model: Any


class LiveModels:
    def __init__(
        self, registry: Registry, model: str, canary_share: float = 0.0, poll_s: float = 10.0
    ) -> None:
        self.registry = registry
        self.model = model
        self.canary_share = canary_share
        self.poll_s = poll_s
        self.champion: Loaded | None = None
        self.challenger: Loaded | None = None
        self.error = ""
        self.reloads = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self.refresh()
        self._stop.clear()
        self._thread = threading.Thread(target=self._poll, name="costaware-aliases", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)

    def _poll(self) -> None:
        while not self._stop.wait(self.poll_s):
            try:
                self.refresh()
            except Exception as exc:  # the registry is down: keep serving what is loaded
                self.error = f"{type(exc).__name__}: {exc}"[:300]
                log.warning("could not re-read the aliases of %s: %s", self.model, self.error)

    def refresh(self) -> dict[str, str | None]:
        """Re-read the aliases; load any version that changed. Returns alias → version."""
        with self._lock:  # one refresh at a time (poller and /admin/reload)
            aliases = self.registry.aliases(self.model)
            champ, chall = aliases.get(CHAMPION), aliases.get(CHALLENGER)
            if champ is not None and (self.champion is None or self.champion.version != champ):
                self.champion = Loaded(CHAMPION, champ, self.registry.load(self.model, champ))
                self.reloads += 1
                log.info("%s: serving champion v%s", self.model, champ)
            if chall is None:
                self.challenger = None
            elif self.challenger is None or self.challenger.version != chall:
                self.challenger = Loaded(CHALLENGER, chall, self.registry.load(self.model, chall))
            self.error = ""
            return {CHAMPION: champ, CHALLENGER: chall}

    def pick(self, request_id: str) -> Loaded:
        """The model that scores this request: the challenger for a ``canary_share`` of
        request ids (by a hash of the id, so a retried request is scored by the same alias),
        else the champion."""
        champion, challenger = self.champion, self.challenger
        if champion is None:
            raise NoChampion(
                f"model {self.model!r} has no champion in the registry "
                f"{self.registry.tracking_uri}{'; ' + self.error if self.error else ''}"
            )
        if challenger is not None and self.canary_share > 0:
            h = int.from_bytes(hashlib.sha256(request_id.encode()).digest()[:8], "big")
            if h / 2**64 < self.canary_share:
                return challenger
        return champion
