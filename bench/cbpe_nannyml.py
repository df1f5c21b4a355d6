"""costaware's CBPE against NannyML's, on the same Elec2 scores, weekly chunks.

NannyML does not install beside the pinned set (it needs xgboost < 3), so it runs in a
virtualenv of its own, like the FOCUS validator: ``python3 -m venv .venv-nannyml &&
.venv-nannyml/bin/pip install nannyml==0.13.1 statsmodels``, then::

    COSTAWARE_NANNYML_PYTHON=.venv-nannyml/bin/python .venv/bin/python bench/cbpe_nannyml.py

A model trained on weeks 0-3 is the champion; weeks 4-5 (scores + labels) are the reference
both estimators calibrate on; weeks 6-39 are estimated without labels. Prints, per week,
the realized ROC AUC, costaware's estimate and NannyML's, and the summary.
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

NANNY = """
import json, sys
import pandas as pd
import nannyml as nml
ref = pd.read_parquet(sys.argv[1]); ana = pd.read_parquet(sys.argv[2])
est = nml.CBPE(y_pred_proba="y_pred_proba", y_pred="y_pred", y_true="y_true",
               metrics=["roc_auc"], chunk_size=int(sys.argv[3]),
               problem_type="classification_binary")
est.fit(ref)
df = est.estimate(ana).filter(period="analysis").to_df()
print(json.dumps([float(v) for v in df[("roc_auc", "value")]]))
"""


def main() -> None:
    from costaware.decide.performance import metric_points
    from costaware.models.scoring import load_model_file, score
    from costaware.monitor import cbpe
    from tests.serve import helpers as h

    python = os.environ.get("COSTAWARE_NANNYML_PYTHON")
    with tempfile.TemporaryDirectory() as tmp:
        model = load_model_file(h.train(h.weeks(0, 3), Path(tmp), "v1"))
        ref = h.weeks(4, 5)
        ref_s = score(model, ref, h.FEATURES)
        cal = cbpe.calibrate(ref_s, h.labels_of(ref))
        rows, ana_parts = [], []
        for w in range(6, 40):
            f = h.weeks(w, w)
            s, y = score(model, f, h.FEATURES), h.labels_of(f)
            rows.append(
                (w, metric_points(y, s, "roc_auc"), cbpe.estimate(cal, s, "roc_auc").points)
            )
            ana_parts.append(pd.DataFrame({"y_pred_proba": s, "y_pred": (s >= 0.5).astype(int)}))
        nanny = [float("nan")] * len(rows)
        if python:
            ref_df = pd.DataFrame(
                {
                    "y_pred_proba": ref_s,
                    "y_pred": (ref_s >= 0.5).astype(int),
                    "y_true": h.labels_of(ref),
                }
            )
            ref_df.to_parquet(Path(tmp, "ref.parquet"))
            pd.concat(ana_parts, ignore_index=True).to_parquet(Path(tmp, "ana.parquet"))
            out = subprocess.run(
                [
                    python,
                    "-c",
                    NANNY,
                    str(Path(tmp, "ref.parquet")),
                    str(Path(tmp, "ana.parquet")),
                    "336",
                ],
                capture_output=True,
                text=True,
                check=True,
            )
            nanny = [100 * v for v in json.loads(out.stdout.strip().splitlines()[-1])]
    print("week  realized  costaware  nannyml  |costaware-nannyml|")
    for (w, real, ours), theirs in zip(rows, nanny, strict=True):
        print(f"{w:>4}  {real:8.2f}  {ours:9.2f}  {theirs:7.2f}  {abs(ours - theirs):8.2f}")
    real = np.array([r[1] for r in rows])
    ours = np.array([r[2] for r in rows])
    theirs = np.array(nanny)
    print(f"mean |costaware - realized| {np.abs(ours - real).mean():.2f} points")
    print(f"mean |nannyml - realized|   {np.abs(theirs - real).mean():.2f} points")
    print(f"mean |costaware - nannyml|  {np.abs(ours - theirs).mean():.2f} points")
    print(f"max  |costaware - nannyml|  {np.abs(ours - theirs).max():.6f} points")


if __name__ == "__main__":
    main()
