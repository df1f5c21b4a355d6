"""The backtest engine (``costaware.decide.backtest``) and ``costaware backtest`` on real data.

Books are built on short real slices (Elec2's first weeks, the hotel-rates regression stream)
with the real fitting and scoring; the checks recompute what the engine reports with
scikit-learn or NumPy on the models' own scores, and the oracle against brute force. The
realized return of costaware's retrains is checked against ``decide.realized.summarize`` on
batch gains rebuilt with scikit-learn, and on a kit whose retrains never pay.
"""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from costaware.app.backtest import RealKit, load_stream, make_book
from costaware.app.cli import main
from costaware.config import get_model
from costaware.decide.backtest import PolicySpec, first_champion, oracle, run
from costaware.decide.book import Book
from costaware.decide.gain import regret_se
from costaware.decide.realized import BatchGain, Outcome, summarize
from costaware.errors import ConfigError

from ..conftest import ROOT


@pytest.fixture(scope="module")
def elec2_book():
    cfg = get_model(ROOT / "include" / "models", "elec2")
    return make_book(load_stream(cfg, ROOT, max_batches=22)).build()


@pytest.fixture(scope="module")
def hotel_book():
    cfg = get_model(ROOT / "examples" / "models", "hotel_rates")
    return make_book(load_stream(cfg, ROOT, max_batches=16)).build()


def _auc_shortfall(book, served: list[int], start: int) -> float:
    """100 − ROC AUC × 100 of the served model on each batch, by scikit-learn."""
    total = 0.0
    for i, s in enumerate(served):
        t = start + i
        total += 100 - 100 * roc_auc_score(book.y(t), book.scores(s, [t]))
    return total


def test_a_rejected_challenger_costs_a_retrain_and_changes_nothing(elec2_book):
    book = elec2_book
    res = run(book, PolicySpec("periodic", 1))
    start, _ = first_champion(book)
    rejected = [e.step for e in res.events if e.verdict == "reject" and e.step > start]
    promoted = [e.step for e in res.events if e.verdict == "promote" and e.step > start]
    assert rejected and promoted, "the slice must hold both outcomes"
    # Every step retrains (periodic:1) and every retrain is paid, rejected ones included.
    assert res.retrains == book.n - 1 - start == len(rejected) + len(promoted)
    assert res.retrain_usd == pytest.approx(res.retrains * book.usd)
    for t in rejected:  # the champion stays what it was
        assert res.served[t - start] == res.served[t - start - 1] != t
    for t in promoted:
        assert res.served[t - start] == t
    # What it lost is the served models' AUC shortfall, recomputed with scikit-learn.
    assert res.shortfall == pytest.approx(_auc_shortfall(book, res.served, start), rel=1e-4)


def test_the_oracle_is_optimal_and_bounds_every_policy(elec2_book):
    book = elec2_book
    start, _ = first_champion(book)
    for limit in (book.usd / 0.5, book.usd / 20):  # κ = 0.005 and 0.2
        best = oracle(book, limit)
        for policy in ("never", "periodic:1", "periodic:3", "drift", "costaware"):
            res = run(book, PolicySpec.parse(policy), limit)
            assert res.total() >= best.total() - 1e-9, policy
        # Brute force over the last 10 steps' keep / deploy choices, the earlier ones as the
        # oracle chose them: none is cheaper.
        split = book.n - 10
        head = best.served[: split - start]
        auc = {
            (s, t): 100 - 100 * roc_auc_score(book.y(t), book.scores(s, [t]))
            for t in range(split, book.n)
            for s in [*set(head), *range(split, t + 1)]
        }
        paid = len(set(head)) - 1
        cost_head = (
            sum(
                100 - 100 * roc_auc_score(book.y(t), book.scores(s, [t]))
                for t, s in zip(range(start, split), head, strict=True)
            )
            * limit
            + paid * book.usd
        )
        cheapest = np.inf
        for plan in itertools.product([False, True], repeat=book.n - split):
            s, cost = head[-1], cost_head
            for t, deploy in zip(range(split, book.n), plan, strict=True):
                if deploy:
                    s, cost = t, cost + book.usd
                cost += auc[(s, t)] * limit
            cheapest = min(cheapest, cost)
        assert best.total() <= cheapest + 1e-6


def test_a_regression_model_is_backtested_in_rmse(hotel_book):
    book = hotel_book
    assert book.cfg.target.kind == "regression" and book.metric == "rmse"
    start, _ = first_champion(book)
    best = oracle(book, book.usd / 2)
    for policy in ("costaware", "periodic:2", "never"):
        res = run(book, PolicySpec.parse(policy), book.usd / 2)
        assert res.total() >= best.total() - 1e-9
        # Shortfall from a perfect RMSE of 0 is the RMSE itself, in EUR, batch by batch.
        rmse = [
            np.sqrt(np.mean((book.scores(s, [start + i]) - book.y(start + i)) ** 2))
            for i, s in enumerate(res.served)
        ]
        assert res.shortfall == pytest.approx(sum(rmse), rel=1e-4)
        assert res.mean_points == pytest.approx(-np.mean(rmse), rel=1e-4)


def test_policy_names_are_checked():
    assert PolicySpec.parse("periodic:4") == PolicySpec("periodic", 4)
    with pytest.raises(ConfigError, match=r"allowed: \['costaware', 'periodic:K'"):
        PolicySpec.parse("weekly")
    with pytest.raises(ConfigError, match="whole number of batches"):
        PolicySpec.parse("periodic:0")


def test_cli_backtests_from_a_fresh_home(tmp_path: Path, monkeypatch, capsys):
    monkeypatch.setenv("COSTAWARE_HOME", str(tmp_path / "fresh"))
    monkeypatch.setenv("COSTAWARE_PROJECT_ROOT", str(ROOT))
    monkeypatch.delenv("COSTAWARE_MODELS_DIR", raising=False)
    # A date picks the first batch whose data starts on or after it (weeks start on Tuesdays).
    args = ["backtest", "elec2", "--from", "1996-06-01", "--to", "b0012_1996-07-30"]
    assert main([*args, "--policy", "periodic:2"]) == 0
    out = capsys.readouterr().out
    assert "batches b0004_1996-06-04..b0012_1996-07-30" in out
    lines = {line[:40].strip(): line[40:].split() for line in out.splitlines()}
    assert "policy periodic:2" in out and "$0.0075 per point·batch" in out
    retrains, oracle_retrains = (int(v) for v in lines["retrains (each pays)"])
    promoted = int(lines["promoted by the gate"][0])
    rejected = int(lines["rejected by the gate"][0])
    assert retrains == promoted + rejected >= 1
    assert float(lines["total / oracle"][0]) >= 1.0

    assert main(["backtest", "elec2", "--from", "1996-13-01"]) == 2
    err = capsys.readouterr().err
    assert "--from '1996-13-01' is neither a batch index" in err and "b0000_1996-05-07" in err
    assert main(["backtest", "elec2", "--from", "2030-01-01"]) == 2
    assert "lies outside the data" in capsys.readouterr().err
    assert main(["backtest", "elec2", "--policy", "monthly"]) == 2
    assert "'monthly' is not a policy; allowed" in capsys.readouterr().err
    assert main(["backtest", "elec2", "--from", "20", "--to", "10"]) == 2
    assert "must come after --from" in capsys.readouterr().err


def test_realized_bookkeeping_matches_summarize_on_rebuilt_batch_gains(elec2_book):
    """Every costaware retrain through the gate is an outcome; a promoted one gains, batch by
    batch, the AUC difference over the model it replaced (scikit-learn) on the batches
    labelled after its own held-out window while it is champion, and nothing after; each
    checkpoint reads ``summarize`` of what was labelled by then."""
    book = elec2_book
    res = run(book, PolicySpec("costaware"), book.usd / 0.5)  # κ = 0.005: many retrains
    start, _ = first_champion(book)
    d, seed = book.d, book.cfg.evaluation.seed
    retrains = [e for e in res.events if e.step > start]
    assert [int(o.run_id) for o in res.outcomes] == [e.step for e in retrains]
    assert [o.promoted for o in res.outcomes] == [e.verdict == "promote" for e in retrains]
    assert any(o.promoted for o in res.outcomes) and not all(o.promoted for o in res.outcomes)

    def champion_before(t: int) -> int:  # the model serving when step t's checkpoint runs
        return res.served[t - 1 - start]

    rebuilt = []
    for o in res.outcomes:
        s = int(o.run_id)
        assert o.cost_usd == book.usd and o.expected > 0  # a retrain the estimator paid for
        batches: list[BatchGain] = []
        if o.promoted:
            old = champion_before(s)
            # Its last checkpoint as champion: the step that replaced it, or the last step.
            until = next(
                (t for t in range(s + 1, book.n) if res.served[t - start] != s), book.n - 1
            )
            for b in range(s + 1 - d, until - d + 1):  # after its held-out window s - d
                y, new_s, old_s = book.y(b), book.scores(s, [b]), book.scores(old, [b])
                gain = 100 * (roc_auc_score(y, new_s) - roc_auc_score(y, old_s))
                se = regret_se(y, new_s, [old_s], book.metric, seed=seed)[0]
                batches.append(BatchGain(str(b), gain, se))
            assert max((int(b.batch_id) for b in o.batches), default=-1) <= until - d
        else:
            assert o.batches == ()  # a rejected challenger changed nothing
        assert [b.batch_id for b in o.batches] == [b.batch_id for b in batches]
        for got, want in zip(o.batches, batches, strict=True):
            assert got.gain == pytest.approx(want.gain, abs=1e-6)
        rebuilt.append(
            Outcome(o.run_id, o.expected, o.horizon, o.cost_usd, o.promoted, tuple(batches))
        )

    # At each checkpoint: the retrains before it, each with what was labelled by then
    # (a promotion is pending until a batch after its held-out window is labelled).
    for t, ratio in res.ratios.items():
        then = [
            Outcome(
                o.run_id,
                o.expected,
                o.horizon,
                o.cost_usd,
                o.promoted,
                tuple(b for b in o.batches if int(b.batch_id) <= t - d),
            )
            for o in rebuilt
            if int(o.run_id) < t
        ]
        assert ratio == pytest.approx(summarize(then).ratio, abs=1e-9), t
    final = summarize(rebuilt)
    assert res.realized is not None
    assert res.realized["counted"] == final.counted > 0
    assert res.realized["pending"] == final.pending
    assert res.realized["ratio"] == pytest.approx(final.ratio, abs=1e-4)
    assert res.realized["realized_total"] == pytest.approx(final.realized_total, abs=1e-3)
    assert res.realized["expected_total"] == pytest.approx(final.expected_total, abs=1e-3)
    # Only costaware decides on gain: the other policies carry no realized figures.
    assert run(book, PolicySpec("periodic", 2)).realized is None


ID = "event_id"  # Elec2's row id


class _Stale:
    def __init__(self, base, answers: dict) -> None:
        self.base, self.answers = base, answers


class StaleKit(RealKit):
    """The real probes, but every retrain yields the first model trained. ``leak``: it also
    knows the labels of the held-out window it will be judged on, so the gate promotes it
    and it serves exactly as the model it replaced on every later batch."""

    def __init__(self, batches: list, leak: bool) -> None:
        self.batches, self.leak, self.base = batches, leak, None

    def fit(self, frame, cfg):
        if self.base is None:
            self.base = super().fit(frame, cfg)
        answers: dict = {}
        if self.leak:
            last = frame[ID].iloc[-1]
            k = next(i for i, b in enumerate(self.batches) if b[ID].iloc[-1] == last)
            for gate in self.batches[k + 1 : k + 1 + cfg.evaluation.holdout_batches]:
                answers.update(zip(gate[ID], gate[cfg.target.name].astype(float), strict=True))
        return _Stale(self.base, answers)

    def scores(self, model, frame):
        if not isinstance(model, _Stale):  # a probe
            return super().scores(model, frame)
        out = np.asarray(model.base.scores(frame), dtype=float)
        known = frame[ID].map(model.answers)
        hit = known.notna().to_numpy()
        out[hit] = known[hit].to_numpy()
        return out


@pytest.fixture(scope="module")
def elec2_stream():
    cfg = get_model(ROOT / "include" / "models", "elec2")
    return load_stream(cfg, ROOT, max_batches=50)


@pytest.mark.parametrize("leak", [False, True], ids=["rejected", "promoted"])
def test_a_model_whose_retrains_never_pay_learns_to_stop(elec2_stream, leak):
    stream = elec2_stream
    book = Book(stream.cfg, stream.batches, StaleKit(stream.batches, leak), 0.0247).build()
    limit = book.usd / 20  # κ = 0.2: a retrain is worth 20 AUC points × batches
    res = run(book, PolicySpec("costaware"), limit)
    raw = run(book, PolicySpec("costaware"), limit, correct=False)
    start, _ = first_champion(book)
    verdicts = {e.verdict for e in res.events if e.step > start}
    assert verdicts == ({"promote"} if leak else {"reject"})
    # The estimator keeps promising gain and no retrain delivers any.
    assert res.realized is not None and res.realized["counted"] >= 2
    assert res.realized["expected_total"] > 0 and res.realized["realized_total"] == 0
    # The ratio starts at the prior (nothing measured) and ends well below it.
    ratios = [res.ratios[t] for t in sorted(res.ratios)]
    assert ratios[0] == 1.0 and ratios[-1] < 0.5 and max(ratios[1:]) <= 1.0
    # With the correction the retrains stop: ten checkpoints or more skip to the end after
    # the last one, while the uncorrected estimate still retrains there; fewer in all.
    last = max(e.step for e in res.events)
    assert book.n - 1 - last >= 10
    assert [e for e in raw.events if e.step > last]
    assert res.retrains < raw.retrains
