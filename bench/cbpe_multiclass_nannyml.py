"""costaware's multiclass CBPE against NannyML's, on the real NOAA storms stream (9 classes).

NannyML does not install beside the pinned set (bench/cbpe_nannyml.py says why), so it runs
in a virtualenv of its own: ``python3 -m venv /tmp/nannyml && /tmp/nannyml/bin/pip install
nannyml==0.13.1 statsmodels``, then::

    COSTAWARE_NANNYML_PYTHON=/tmp/nannyml/bin/python \
        .venv/bin/python bench/cbpe_multiclass_nannyml.py

An XGBoost softmax model is trained on storms batches 0-39 (200 rows each, in time order);
batches 40-69 (6 000 rows, scores + labels, every class present: NannyML requires it) are
the reference both estimators calibrate on; batches 70-96 are estimated without their
labels, one chunk per batch. Prints, per metric, the mean |costaware − NannyML| and the
largest, and costaware's mean error against the realized metric.

NannyML gets the scores as float64 columns, the numbers costaware fits on. XGBoost returns
float32, and scikit-learn's isotonic regression pools float32 scores closer than 1e-6 as
ties (costaware casts to float64 first), so a third run hands NannyML the float32 columns
as they come from the model, to show that difference on its own.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
METRICS = {"accuracy": "accuracy", "macro_f1": "f1", "roc_auc": "roc_auc"}  # ours: theirs

NANNY = """
import json, sys
import pandas as pd
import nannyml as nml
import nannyml.performance_estimation.confidence_based.cbpe as nml_cbpe
ref = pd.read_parquet(sys.argv[1]); ana = pd.read_parquet(sys.argv[2])
k = int(sys.argv[4])
if sys.argv[5] == "force":  # calibrate every class, as costaware does
    nml_cbpe.needs_calibration = lambda *a, **kw: True
proba = {str(c): f"p{c}" for c in range(k)}
est = nml.CBPE(y_pred_proba=proba, y_pred="y_pred", y_true="y_true",
               metrics=["accuracy", "f1", "roc_auc"], chunk_size=int(sys.argv[3]),
               problem_type="classification_multiclass")
est.fit(ref)
df = est.estimate(ana).filter(period="analysis").to_df()
print(json.dumps({m: [float(v) for v in df[(m, "value")]] for m in ["accuracy", "f1", "roc_auc"]}))
"""


def _frame(probs: np.ndarray, y: np.ndarray | None, dtype: str = "float64") -> pd.DataFrame:
    f = pd.DataFrame({f"p{c}": probs[:, c].astype(dtype) for c in range(probs.shape[1])})
    f["y_pred"] = probs.argmax(axis=1).astype(str)
    if y is not None:
        f["y_true"] = y.astype(int).astype(str)
    return f


def main() -> None:
    import xgboost as xgb

    from costaware.app.replay import load_source, split_batches
    from costaware.config import get_model
    from costaware.decide.performance import metric_points
    from costaware.monitor import cbpe
    from costaware.monitor.run import read_labels

    cfg = get_model(ROOT / "examples" / "models", "storms")
    parts = [p for _, p in split_batches(cfg, load_source(cfg, ROOT))]
    feats = cfg.feature_names

    def xy(first: int, last: int) -> tuple[pd.DataFrame, np.ndarray]:
        f = pd.concat(parts[first : last + 1], ignore_index=True)
        return f[feats], read_labels(cfg.target, f[cfg.target.name].astype(str))

    k = len(cfg.target.classes or [])
    x_train, y_train = xy(0, 39)
    params = {"objective": "multi:softprob", "num_class": k, "nthread": 1, "seed": 0}
    booster = xgb.train(params, xgb.DMatrix(x_train, label=y_train), 60)
    x_ref, y_ref = xy(40, 69)
    ref_p = booster.predict(xgb.DMatrix(x_ref))
    cal = cbpe.calibrate_multiclass(ref_p, y_ref.astype(int))
    ours: dict[str, list[float]] = {m: [] for m in METRICS}
    real: dict[str, list[float]] = {m: [] for m in METRICS}
    chunk_probs: list[np.ndarray] = []
    for b in range(70, len(parts)):
        x, y = xy(b, b)
        p = booster.predict(xgb.DMatrix(x))
        chunk_probs.append(p)
        for m in METRICS:
            real[m].append(metric_points(y, p, m))
            if m == "macro_f1":  # NannyML's form (the monitor reports the mean over draws)
                ours[m].append(100 * cbpe.expected_macro_f1(cal(p), p.argmax(axis=1), k))
                continue
            ours[m].append(cbpe.estimate_multiclass(cal, p, m).points)
    drawn = [cbpe.estimate_multiclass(cal, c, "macro_f1").points for c in chunk_probs]
    python = os.environ.get("COSTAWARE_NANNYML_PYTHON")
    if not python:
        raise SystemExit("set COSTAWARE_NANNYML_PYTHON to a python with nannyml==0.13.1")
    n = len(chunk_probs)
    print(f"storms: {n} chunks of 200 rows; reference {len(y_ref)} rows; {k} classes")
    runs = {
        ("float64", "default"): "NannyML as shipped (skips a class's calibration when "
        "cross-validated ECE does not improve), float64 scores",
        ("float64", "force"): "NannyML calibrating every class (costaware's rule), float64 scores",
        ("float32", "default"): "NannyML as shipped, on the model's float32 scores as they come",
    }
    for (dtype, mode), title in runs.items():
        with tempfile.TemporaryDirectory() as tmp:
            _frame(ref_p, y_ref, dtype).to_parquet(Path(tmp, "ref.parquet"))
            ana = [_frame(p, None, dtype) for p in chunk_probs]
            pd.concat(ana, ignore_index=True).to_parquet(Path(tmp, "ana.parquet"))
            args = [str(Path(tmp, "ref.parquet")), str(Path(tmp, "ana.parquet")), "200", str(k)]
            out = subprocess.run([python, "-c", NANNY, *args, mode], capture_output=True, text=True)
            if out.returncode:
                raise SystemExit(f"NannyML failed:\n{out.stderr[-3000:]}")
            got = json.loads(out.stdout.strip().splitlines()[-1])
            theirs = {m: [100 * v for v in got[t]] for m, t in METRICS.items()}
        print(title)
        print("  metric     mean|ours-nannyml|  max|ours-nannyml|  mean|ours-realized|  chunks")
        for m in METRICS:
            o, t, r = np.array(ours[m]), np.array(theirs[m]), np.array(real[m])
            ok = np.isfinite(o) & np.isfinite(t)
            ok_r = ok & np.isfinite(r)
            err = f"{np.abs(o - r)[ok_r].mean():19.2f}" if ok_r.any() else f"{'-':>19}"
            print(
                f"  {m:<9}  {np.abs(o - t)[ok].mean():18.5f}  {np.abs(o - t)[ok].max():17.5f}  "
                f"{err}  {int(ok.sum())} ({int(ok_r.sum())} with a realized value)"
            )
    r = np.array(real["macro_f1"])
    print(
        "macro F1 as the monitor reports it (mean over label draws): mean |estimate - realized| "
        f"{np.abs(np.array(drawn) - r).mean():.2f} points; NannyML's form (F1 of expected "
        f"counts, every class): {np.abs(np.array(ours['macro_f1']) - r).mean():.2f}"
    )


if __name__ == "__main__":
    main()
