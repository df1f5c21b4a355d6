"""The champion's age is counted in event-time order, never by comparing batch names."""

from __future__ import annotations

from costaware.models.registry import BORN_TAG, CHAMPION
from costaware.settings import Settings
from costaware.steps.measure import measure_performance

from .. import factories
from .helpers import MODEL, accept_weeks, install_registry, make_ctx


def test_champion_age_counts_batches_served_in_event_time_order(settings: Settings) -> None:
    """Elec2's weeks 1-3 accepted as ``week-8``, ``week-9``, ``week-10``; the champion was born
    with ``week-9``, so it has served one batch since (``week-10``).

    Old code: ``age = sum(b > born for b in accepted)`` compared names, and neither "week-10"
    nor "week-8" sorts after "week-9", so the age came out 0: an aging champion looked brand
    new and the expected gain of a retrain was read at the wrong point of the regret curve."""
    cfg = factories.model(MODEL)
    reg = install_registry(settings)
    reg.set_alias(MODEL, CHAMPION, "1")
    reg.set_version_tag(MODEL, "1", BORN_TAG, "week-9")
    ctx = make_ctx(cfg, settings, "measure-1")
    accept_weeks(settings, ctx.ledger, ["week-8", "week-9", "week-10"])

    perf = measure_performance(ctx)

    assert perf["windows"] == {
        "train_batches": ["week-8", "week-9"],
        "holdout_batches": ["week-10"],
    }
    assert perf["champion_version"] == "1"
    assert perf["champion_age_batches"] == 1
