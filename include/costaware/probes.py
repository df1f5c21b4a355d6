"""The probe-curve estimator's memory between runs: probe models and regret curves.

Each run trains a cheap *probe* (``gain.fit_probe``) on the labelled window without the
newest labelled batch, keyed by that batch, and scores it and the probes of the previous
``PROBE_AGES`` labelled batches on the newest batch; the difference is the regret curve
(``gain.regret_curve``). Probes and curves are files under ``data/<model>/probes/`` so a
retried task finds what its first try computed, and only the last probes are kept.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np


class ProbeStore:
    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder)

    def _path(self, batch_id: str) -> Path:
        return self.folder / f"{batch_id}.ubj"

    def fit_or_load(self, batch_id: str, x: Any, y: Any, params: dict[str, Any]) -> Any:
        import xgboost as xgb

        from costaware.gain import fit_probe

        path = self._path(batch_id)
        if path.exists():
            booster = xgb.Booster()
            booster.load_model(str(path))
            return booster
        booster = fit_probe(x, y, params)
        self.folder.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.stem + ".tmp.ubj")
        booster.save_model(str(tmp))
        tmp.replace(path)
        return booster

    def older(self, labelled_batches: list[str], ages: int) -> list[Any | None]:
        """Probes of the ``ages`` labelled batches before the newest one, newest first."""
        import xgboost as xgb

        out: list[Any | None] = []
        for batch_id in labelled_batches[:-1][::-1][:ages]:
            path = self._path(batch_id)
            if path.exists():
                booster = xgb.Booster()
                booster.load_model(str(path))
                out.append(booster)
            else:
                out.append(None)
        out += [None] * (ages - len(out))
        return out

    def _curves_file(self) -> Path:
        return self.folder / "curves.json"

    def curves(self) -> dict[str, list[float | None]]:
        f = self._curves_file()
        return json.loads(f.read_text()) if f.exists() else {}

    def save_curve(self, batch_id: str, curve: list[float | None]) -> list[list[float | None]]:
        """Store this batch's curve (replacing a retried run's) and return all, oldest first."""
        curves = self.curves()
        curves[batch_id] = curve
        self.folder.mkdir(parents=True, exist_ok=True)
        tmp = self._curves_file().with_suffix(".tmp")
        tmp.write_text(json.dumps(curves))
        tmp.replace(self._curves_file())
        return [curves[k] for k in sorted(curves)]

    def prune(self, labelled_batches: list[str], keep: int) -> None:
        wanted = {f"{b}.ubj" for b in labelled_batches[-keep:]}
        for p in self.folder.glob("*.ubj"):
            if p.name not in wanted:
                p.unlink(missing_ok=True)


def probe_scores(booster: Any | None, frame: Any, features: list[str]) -> np.ndarray | None:
    if booster is None:
        return None
    import xgboost as xgb

    return np.asarray(booster.predict(xgb.DMatrix(frame[features])))
