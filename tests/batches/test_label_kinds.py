"""Label files of multiclass and regression targets (the label checks were binary-only: a
regression's prices and a multiclass's class names were quarantined as "not whole numbers
like the positive class 1"). Configs: the reviewed examples in examples/models."""

from __future__ import annotations

import pandas as pd

from costaware.batches.label_checks import check_labels
from costaware.config import get_model

from ..conftest import ROOT

MODELS = ROOT / "examples" / "models"


def test_regression_labels_are_numbers() -> None:
    cfg = get_model(MODELS, "hotel_rates")
    frame = pd.DataFrame({"event_id": ["a", "b", "c"], "avg_price_per_room": [103.11, 0, "86.5"]})
    clean, fail, _ = check_labels(frame, cfg, {"a", "b", "c"})
    assert fail == [] and clean["avg_price_per_room"].tolist() == [103.11, 0.0, 86.5]
    bad = pd.DataFrame({"event_id": ["a", "b"], "avg_price_per_room": [12.5, "n/a"]})
    clean, fail, _ = check_labels(bad, cfg, {"a", "b"})
    assert clean is None and [(f.expectation, f.column) for f in fail] == [
        ("label_type", "avg_price_per_room")
    ]
    assert "1 label(s) that are not finite numbers (target kind regression) at row(s) 2" in (
        fail[0].detail
    )


def test_multiclass_labels_are_declared_classes() -> None:
    cfg = get_model(MODELS, "storms")
    frame = pd.DataFrame({"event_id": ["a", "b"], "status": ["hurricane", " tropical wave "]})
    clean, fail, _ = check_labels(frame, cfg, {"a", "b"})
    assert fail == [] and clean["status"].tolist() == ["hurricane", "tropical wave"]
    bad = pd.DataFrame({"event_id": ["a", "b"], "status": ["hurricane", "typhoon"]})
    clean, fail, _ = check_labels(bad, cfg, {"a", "b"})
    assert clean is None and fail[0].expectation == "label_classes"
    assert "1 label(s) outside target.classes" in fail[0].detail
    assert "at row(s) 2, e.g. ['typhoon']" in fail[0].detail
