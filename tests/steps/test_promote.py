"""Promotion is compare-and-set, and a retried promotion or rollback moves the aliases once.

Each test states what the code before the trust fixes (35cc885: ``champion.py`` and
``registry.py``) did, and asserts what it got wrong.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from costaware.errors import ChampionMoved
from costaware.models.registry import CHAMPION, POINTS_TAG, PREVIOUS
from costaware.settings import Settings
from costaware.steps.promote import promote_or_reject, rollback

from .. import factories
from ..conftest import make_settings
from .helpers import MODEL, fork_safe, install_registry, killed_at, make_ctx

RUN = "scheduled__2024-03-15T12:00:00+00:00"


@pytest.fixture(autouse=True)
def _fork_safe(monkeypatch: pytest.MonkeyPatch) -> None:
    fork_safe(monkeypatch)


def _evaluation(challenger: str, champion: str | None) -> dict[str, Any]:
    return {
        "challenger_version": challenger,
        "champion_version": champion,
        "verdict": "promote",
        "reason": "challenger +4.00 pts, 80% interval [+1.00, +7.00] > 0 and ≥ 0.5 pts",
        "metric": "roc_auc",
        "champion_points": 70.0,
        "challenger_points": 74.0,
        "gain": 4.0,
        "interval": [1.0, 7.0],
        "rows": 336,
        "holdout_batches": ["b0003"],
    }


def _record_decision(settings: Settings, run_id: str = RUN) -> None:
    ctx = make_ctx(factories.model(MODEL), settings, run_id)
    ctx.ledger.record_decision(
        model=MODEL,
        run_id=run_id,
        batch_id="b0003",
        action="retrain",
        reason="worth it",
        details={},
        dry_run=False,
        outcome=None,
        data_time=None,
    )
    ctx.ledger.dispose()


def test_promotion_against_a_moved_champion_is_refused(settings: Settings) -> None:
    """v3 was evaluated against champion v1; meanwhile a rollback made v2 champion.

    Old code: ``registry.promote(model, version)`` read whatever champion there was and moved
    champion → v3, previous_champion → v2: a model never compared with v2 replaced it. Now the
    move is refused, nothing moves, the audit row says "aborted" and the decision "stale"."""
    reg = install_registry(settings)
    reg.set_alias(MODEL, CHAMPION, "1")
    reg.move_champion(MODEL, "1", "2")  # another run (a rollback) moved it meanwhile
    assert reg.aliases(MODEL) == {CHAMPION: "2", PREVIOUS: "1"}
    _record_decision(settings)
    ctx = make_ctx(factories.model(MODEL), settings, RUN)

    with pytest.raises(ChampionMoved, match=r"made against champion v1.*champion is now v2"):
        promote_or_reject(ctx, _evaluation("3", "1"))

    assert reg.aliases(MODEL) == {CHAMPION: "2", PREVIOUS: "1"}
    rows = ctx.ledger.audit(MODEL)
    assert [(r["run_id"], r["action"], r["status"]) for r in rows] == [(RUN, "promote", "aborted")]
    decision = ctx.ledger.decision(MODEL, RUN)
    assert decision is not None and decision["outcome"] == "stale"


@pytest.mark.parametrize("point", ["move_champion.previous_set", "promote_or_reject.aliases_moved"])
def test_promotion_killed_midway_completes_once(
    settings: Settings, tmp_path: Path, point: str
) -> None:
    """The task dies between the alias moves, or right after them; Airflow retries it.

    At ``promote_or_reject.aliases_moved`` the old code's retry re-read the champion (now v3)
    as the one replaced: ``from_v = prev if prev != version else None`` wrote an audit row
    "promoted v3 from nothing", and the previous champion was lost from the trail. At
    ``move_champion.previous_set`` (champion v1, previous_champion already v1) the old code
    happened to redo the move correctly; the case guards the compare-and-set, which must
    not take its own half-done move for another run's and abort the promotion. Either way:
    champion v3, previous_champion v1, one audit row, done, from v1 to v3."""
    reg = install_registry(settings)
    reg.set_alias(MODEL, CHAMPION, "1")
    _record_decision(settings)
    cfg = factories.model(MODEL)
    evaluation = _evaluation("3", "1")

    killed_at(
        point,
        tmp_path / "faults",
        lambda: promote_or_reject(make_ctx(cfg, settings, RUN), evaluation),
    )
    if point == "move_champion.previous_set":  # half-moved: the state a retry must repair
        assert reg.aliases(MODEL) == {CHAMPION: "1", PREVIOUS: "1"}

    ctx = make_ctx(cfg, settings, RUN)
    out = promote_or_reject(ctx, evaluation)

    assert out["champion"] == "3" and out["previous_champion"] == "1"
    assert reg.aliases(MODEL) == {CHAMPION: "3", PREVIOUS: "1"}
    assert reg.version_tags(MODEL, "3")[POINTS_TAG] == "74.0"
    rows = ctx.ledger.audit(MODEL)
    assert [(r["action"], r["status"], r["from_version"], r["to_version"]) for r in rows] == [
        ("promote", "done", "1", "3")
    ]
    decision = ctx.ledger.decision(MODEL, RUN)
    assert decision is not None and decision["outcome"] == "promoted"


def test_retried_rollback_does_not_undo_itself(db_url: str, tmp_path: Path) -> None:
    """Champion v2 (previous v1) is rolled back; the task dies right after the alias move.

    Old code: the audit row was written after the move, so the retry found none, rolled
    back again (champion v2 ← previous_champion, which the first try had set to v2) and left
    the model where it started, with two "rollbacks" in effect. Now the run id is the
    operation's id: the retry finishes the same rollback. A second, different rollback run
    does roll back again."""
    settings = make_settings(tmp_path / "home", db_url)
    reg = install_registry(settings)
    reg.set_alias(MODEL, CHAMPION, "1")
    reg.move_champion(MODEL, "1", "2")
    cfg = factories.model(MODEL)

    killed_at(
        "rollback.aliases_moved",
        tmp_path / "faults",
        lambda: rollback(make_ctx(cfg, settings, "rollback-1"), reason="v2 worse on labels"),
    )
    assert reg.aliases(MODEL) == {CHAMPION: "1", PREVIOUS: "2"}

    ctx = make_ctx(cfg, settings, "rollback-1")
    out = rollback(ctx, reason="v2 worse on labels")
    assert (out["from"], out["to"]) == ("2", "1")
    assert reg.aliases(MODEL) == {CHAMPION: "1", PREVIOUS: "2"}
    rows = ctx.ledger.audit(MODEL)
    assert [(r["run_id"], r["status"], r["from_version"], r["to_version"]) for r in rows] == [
        ("rollback-1", "done", "2", "1")
    ]
    ctx.ledger.dispose()

    # Another operation (another run id) is a new rollback: it moves the champion again.
    again = make_ctx(cfg, settings, "rollback-2")
    assert (rollback(again)["from"], reg.alias(MODEL, CHAMPION)) == ("1", "2")
    rows = again.ledger.audit(MODEL)
    assert [(r["run_id"], r["status"], r["from_version"], r["to_version"]) for r in rows] == [
        ("rollback-1", "done", "2", "1"),
        ("rollback-2", "done", "1", "2"),
    ]
    again.ledger.dispose()


def test_rollback_resumed_after_another_move_is_refused(settings: Settings, tmp_path: Path) -> None:
    """A rollback v2 → v1 recorded its intent and died; before its retry, a promotion made v3
    champion. The retry must not apply the stale move (old code: no intent was recorded, so
    the retry rolled back from whatever was champion — v3 → v2 — a move nobody decided)."""
    reg = install_registry(settings)
    reg.set_alias(MODEL, CHAMPION, "1")
    reg.move_champion(MODEL, "1", "2")
    cfg = factories.model(MODEL)
    killed_at(
        "rollback.intent_recorded",
        tmp_path / "faults",
        lambda: rollback(make_ctx(cfg, settings, "rollback-1")),
    )
    reg.move_champion(MODEL, "2", "3")  # another run promoted v3 meanwhile

    ctx = make_ctx(cfg, settings, "rollback-1")
    with pytest.raises(ChampionMoved, match=r"champion v2, but the champion is now v3"):
        rollback(ctx)
    assert reg.aliases(MODEL) == {CHAMPION: "3", PREVIOUS: "2"}
    rows = ctx.ledger.audit(MODEL)
    assert [(r["run_id"], r["status"], r["from_version"], r["to_version"]) for r in rows] == [
        ("rollback-1", "aborted", "2", "1")
    ]
