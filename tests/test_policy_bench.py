"""bench/policy.py: its variants are the configs they claim, and its goal column says the truth.

The replay itself is ``costaware.decide.backtest``, tested on real data in
tests/decide/test_backtest.py (the gate, the oracle, a regression model, the CLI).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))

import policy as bench  # noqa: E402


def _flat(d, prefix=""):
    out = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out |= _flat(v, f"{prefix}{k}.")
        else:
            out[f"{prefix}{k}"] = v
    return out


@pytest.mark.parametrize("variant", bench.VARIANTS, ids=lambda v: v.label)
def test_a_variant_changes_only_what_it_names(variant):
    from costaware.config import get_model

    base = get_model(bench.ROOT / variant.models_dir, variant.model).model_dump(mode="json")
    cfg = bench.variant_config(variant).model_dump(mode="json")
    changed = {k for k, v in _flat(cfg).items() if _flat(base).get(k) != v}
    wanted = {f"{section}.{key}" for section, keys in variant.changes.items() for key in keys}
    assert changed == wanted


def _result(label, ratios):
    rows = {
        name: {
            k: {"ratio": r, "retrains": 1, "rejections": 0, "k": "", "points": 70.0}
            for k in bench.KAPPAS
        }
        for name, r in ratios.items()
    }
    return {"label": label, "rows": rows}


def test_goals_say_where_costaware_is_beaten():
    res = _result("elec2", {"costaware": 1.04, "periodic:2": 1.03, "never": 1.3, bench.ORACLE: 1.0})
    notes = bench.goals(res)[0.02]
    assert notes == ["≤ all others: MISSED (periodic:2 1.030)", "≤ 1.05× oracle: met"]
    res = _result("weather", {"costaware": 1.03, "never": 1.2, bench.ORACLE: 1.0})
    assert bench.goals(res)[0.2] == ["≤ all others: met", "≤ 1.02× oracle: MISSED"]
    res = _result("storms", {"costaware": 1.1, "drift": 1.1, bench.ORACLE: 1.0})
    assert bench.goals(res)[0.005] == ["≤ all others: met"]  # a tie is "at or below"


def test_runs_made_apart_render_as_one_report(tmp_path):
    a = _result("weather", {"costaware": 1.01, "never": 1.2, bench.ORACLE: 1.0})
    b = _result("elec2", {"costaware": 1.06, "never": 1.4, bench.ORACLE: 1.0})
    for res in (a, b):
        res.update(
            kind="binary",
            metric="roc_auc",
            batches=10,
            batch_rows=30,
            delay=1,
            window=8,
            steps=8,
            retrain_usd=0.01,
            seconds=1.0,
        )
    files = []
    for name, res in (("one", a), ("two", b)):
        f = tmp_path / f"{name}.json"
        f.write_text(json.dumps([res]))  # κ keys become strings in JSON
        files.append(str(f))
    assert bench.main(["--render", *files, "--out", str(tmp_path)]) == 0
    text = (tmp_path / "policy.md").read_text()
    assert text.index("## elec2") < text.index("## weather")  # the VARIANTS order
    assert "| weather | 1.010: ≤ all others: met; ≤ 1.02× oracle: met" in text
    assert (tmp_path / "policy.png").stat().st_size > 0
