"""The probe-curve estimator's memory between runs: probe models and regret curves.

Each run trains a cheap *probe* (``gain.fit_probe``) on the labelled window without the
newest labelled batch, keyed by that batch, and scores it and the probes of the previous
``PROBE_AGES`` labelled batches on the newest batch; the difference is the regret curve
(``gain.regret_curve``). Probes and curves are files under ``data/<model>/probes/`` so a
retried task finds what its first try computed, and only the last probes are kept.
"""

from __future__ import annotations

import pickle
from typing import Any

import numpy as np

from costaware.store import storage
from costaware.store.storage import Loc


class ProbeStore:
    def __init__(self, folder: str | Loc) -> None:
        self.folder = storage.location(folder) if isinstance(folder, str) else folder

    def _path(self, batch_id: str) -> Loc:
        return self.folder / f"{batch_id}.pkl"

    def load(self, batch_id: str) -> Any | None:
        """The probe stored for ``batch_id`` (a retried task finds its first try's), or None.
        A probe is a pickled ``costaware.models.algorithms.Model``; probes stored before
        model kinds were bare XGBoost boosters (``.ubj``) and still load."""
        path = self._path(batch_id)
        if path.exists():
            return pickle.loads(storage.read_bytes(path))  # noqa: S301 - our own probe file
        legacy = self.folder / f"{batch_id}.ubj"
        if not legacy.exists():
            return None
        import xgboost as xgb

        booster = xgb.Booster()
        booster.load_model(bytearray(storage.read_bytes(legacy)))
        return booster

    def put(self, batch_id: str, probe: Any) -> Any:
        """Store a probe atomically; returns it."""
        storage.write_bytes(self._path(batch_id), pickle.dumps(probe))
        return probe

    def older(self, labelled_batches: list[str], ages: int) -> list[Any | None]:
        """Probes of the ``ages`` labelled batches before the newest one, newest first."""

        out = [self.load(b) for b in labelled_batches[:-1][::-1][:ages]]
        out += [None] * (ages - len(out))
        return out

    def _series_file(self, kind: str) -> Loc:
        return self.folder / f"{kind}.json"

    def series(self, kind: str = "curves") -> dict[str, list[float | None]]:
        """A stored series by newest labelled batch: ``curves`` (regret per age), ``se``
        (their sampling errors), ``champion-<version>`` ([regret, se] of that champion)."""
        f = self._series_file(kind)
        return dict(storage.read_json(f)) if f.exists() else {}

    def save(
        self,
        batch_id: str,
        values: list[float | None],
        kind: str = "curves",
        order: list[str] | None = None,
    ) -> list[list[float | None]]:
        """Store this batch's values (replacing a retried run's); return all, oldest first in
        ``order`` (the labelled batches in event-time order)."""
        data = self.series(kind)
        data[batch_id] = values
        storage.write_json(self._series_file(kind), data)
        return [data[k] for k in in_order(data, order or [])]

    def prune(self, labelled_batches: list[str], keep: int) -> None:
        wanted = {f"{b}{ext}" for b in labelled_batches[-keep:] for ext in (".pkl", ".ubj")}
        for p in storage.files(self.folder, (".pkl", ".ubj")):
            if p.name not in wanted:
                p.unlink(missing_ok=True)


def in_order(keys: Any, order: list[str]) -> list[str]:
    """``keys`` in the event-time ``order`` of their batches; keys the order does not know
    (batches no longer among the labelled ones) come first, as the oldest."""
    rank = {b: i for i, b in enumerate(order)}
    return sorted(keys, key=lambda k: (k in rank, rank.get(k, 0), k))


def probe_scores(booster: Any | None, frame: Any, features: list[str]) -> np.ndarray | None:
    """A probe's scores on ``frame`` by target kind (``Model.scores``), None without a probe."""
    if booster is None:
        return None
    if hasattr(booster, "scores"):
        return np.asarray(booster.scores(frame))
    import xgboost as xgb

    return np.asarray(booster.predict(xgb.DMatrix(frame[features])))
