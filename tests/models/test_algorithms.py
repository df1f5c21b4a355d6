"""Fitting and scoring every target kind with every algorithm, on real Elec2 rows with string
categories and missing values; unseen categories; fail-fast data errors; chunked training
with exact resume; the MLflow round trip."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn import metrics as skm

from costaware.errors import DataError, TrainingError
from costaware.models import algorithms as alg

from . import kinds_data as kd

ALGORITHMS = {
    "xgboost": {},
    "lightgbm": {},
    "sklearn": {"estimator": "tests.models.kinds_data.pipeline"},
    "custom": {"entry_point": "tests.models.kinds_data:custom_model"},
}
KINDS = ("binary", "multiclass", "regression")


# A random 2000 / 600 split of the same 2600 rows: these tests check fitting and scoring,
# not drift (the next weeks' prices move, which the DAG tests are about).
_ROWS = kd.frame(2600).sample(frac=1.0, random_state=0)


@pytest.fixture(scope="module")
def train() -> pd.DataFrame:
    return _ROWS.iloc[:2000].reset_index(drop=True)


@pytest.fixture(scope="module")
def test() -> pd.DataFrame:
    return _ROWS.iloc[2000:].reset_index(drop=True)


def _config(kind: str, algorithm: str) -> object:
    extra = dict(ALGORITHMS[algorithm])
    if algorithm == "sklearn" and kind == "regression":
        extra = {"estimator": "sklearn.ensemble.HistGradientBoostingRegressor"}
    return kd.config(kind, algorithm, **extra)


def _chance(kind: str, y_train: np.ndarray, y: np.ndarray) -> float:
    """What a constant from the training window scores (scikit-learn)."""
    if kind == "binary":
        return 0.5  # ROC AUC of a constant
    return skm.root_mean_squared_error(y, np.full(len(y), y_train.mean()))


@pytest.mark.parametrize("algorithm", sorted(ALGORITHMS))
@pytest.mark.parametrize("kind", KINDS)
def test_fit_and_score_every_kind(
    kind: str, algorithm: str, train: pd.DataFrame, test: pd.DataFrame
) -> None:
    cfg = _config(kind, algorithm)
    model = alg.fit(train, cfg)
    # Round trip through pickle (how the worker and the probe store keep it).
    model = pickle.loads(pickle.dumps(model))
    s = model.scores(test)
    y = alg.encode_target(test[cfg.target.name], cfg)
    y_train = alg.encode_target(train[cfg.target.name], cfg)
    assert np.isfinite(s).all()
    if kind == "binary":
        assert s.shape == (600,)
        assert skm.roc_auc_score(y, s) > _chance(kind, y_train, y) + 0.05
        np.testing.assert_allclose(model.predict_proba(test)[:, 1], s)
    elif kind == "multiclass":
        assert s.shape == (600, 3)
        np.testing.assert_allclose(s.sum(axis=1), 1.0, rtol=1e-5)
        # Prices a week ahead are hard and the class shares drift: ranking above chance.
        assert skm.roc_auc_score(y, s, multi_class="ovr") > 0.55
        np.testing.assert_array_equal(model.predict(test), s.argmax(axis=1))
    else:
        assert s.shape == (600,)
        assert skm.root_mean_squared_error(y, s) < _chance(kind, y_train, y)
        with pytest.raises(AttributeError, match="no predict_proba"):
            model.predict_proba(test)


@pytest.mark.parametrize("algorithm", ["xgboost", "lightgbm", "sklearn"])
def test_unseen_category_is_scored_as_missing(
    algorithm: str, train: pd.DataFrame, test: pd.DataFrame
) -> None:
    cfg = _config("binary", algorithm)
    model = alg.fit(train, cfg)
    assert model.categories["demand_band"] == ["high", "low", "mid"]  # learned, sorted
    assert model.categories["day_part"] == ["night", "morning", "afternoon", "evening"]
    unseen, missing = test.copy(), test.copy()
    unseen["demand_band"] = "brand-new"
    missing["demand_band"] = None
    np.testing.assert_array_equal(model.scores(unseen), model.scores(missing))
    assert alg.unseen_counts(unseen, cfg, model.categories) == {"demand_band": {"brand-new": 600}}
    # And the categories are the model's, not the batch's: one row alone scores the same.
    one = test.iloc[[5]]
    assert model.scores(one)[0] == pytest.approx(model.scores(test)[5])


def test_integer_categories_match_their_float_form(train: pd.DataFrame) -> None:
    """A categorical column of integers read with a missing value becomes floats (3.0):
    still the category "3"."""
    cfg = kd.config(
        "binary",
        features=[
            {"name": "period", "min": 0, "max": 1},
            {"name": "hour", "type": "categorical", "nullable": True},
        ],
    )
    frame = train.assign(hour=(train["period"] * 24).astype(int))
    model = alg.fit(frame, cfg)
    as_float = frame.assign(hour=frame["hour"].astype(float))
    np.testing.assert_array_equal(model.scores(frame), model.scores(as_float))


def test_string_in_a_numeric_feature_fails_fast(train: pd.DataFrame) -> None:
    bad = train.copy()
    bad["vicprice"] = bad["vicprice"].astype(object)
    bad.loc[[3, 9], "vicprice"] = ["n/a", "0,003"]
    cfg = kd.config("binary")
    with pytest.raises(DataError) as err:
        alg.fit(bad, cfg)
    msg = str(err.value)
    assert "'vicprice'" in msg and "'n/a'" in msg and "'0,003'" in msg
    assert "2 value(s) that are not numbers" in msg and "type: numeric" in msg


def test_category_outside_declared_set_fails_fast(train: pd.DataFrame) -> None:
    bad = train.copy()
    bad.loc[[0, 1], "day_part"] = ["dusk", "dusk"]
    with pytest.raises(DataError) as err:
        alg.fit(bad, kd.config("binary"))
    msg = str(err.value)
    assert "'day_part'" in msg and "['dusk']" in msg
    assert "categories ['night', 'morning', 'afternoon', 'evening']" in msg


def test_null_in_a_feature_not_nullable_fails_fast(train: pd.DataFrame) -> None:
    bad = train.copy()
    bad.loc[7, "transfer"] = np.nan
    with pytest.raises(DataError, match=r"'transfer'.*1 missing.*rows \[7\].*nullable: true"):
        alg.fit(bad, kd.config("binary"))


def test_label_outside_classes_fails_fast(train: pd.DataFrame) -> None:
    bad = train.copy()
    bad.loc[4, "price_band"] = "extreme"
    with pytest.raises(DataError, match=r"'price_band'.*\['extreme'\].*\['low', 'mid', 'high'\]"):
        alg.encode_target(bad["price_band"], kd.config("multiclass"))


def test_custom_entry_point_without_the_api_is_refused(train: pd.DataFrame) -> None:
    cfg = kd.config("binary", "custom", entry_point="tests.models.kinds_data:not_a_model")
    with pytest.raises(TrainingError, match="returned str, which has no predict_proba"):
        alg.fit(train, cfg)


def test_probe_of_every_kind(tmp_path: Path, train: pd.DataFrame, test: pd.DataFrame) -> None:
    from costaware.store.probes import ProbeStore, probe_scores

    for kind in KINDS:
        cfg = kd.config(kind, "lightgbm")
        probe = alg.fit_probe(train, cfg)
        trees = alg.PROBE_ROUNDS * (3 if kind == "multiclass" else 1)
        assert probe.estimator.num_trees() == trees
        store = ProbeStore(str(tmp_path / kind))
        store.put("b1", probe)
        np.testing.assert_array_equal(
            probe_scores(store.load("b1"), test, cfg.feature_names), probe.scores(test)
        )


# ---------------------------------------------------------------- worker and registry


@pytest.mark.slow
@pytest.mark.parametrize(
    # XGBoost's exact resume is tests/models/training/test_local_backend.py's; here the
    # algorithm new to the worker, on a non-binary target with categorical features.
    ("kind", "algorithm"),
    [("regression", "lightgbm")],
)
def test_worker_resumes_exactly(
    kind: str, algorithm: str, tmp_path: Path, train: pd.DataFrame, test: pd.DataFrame
) -> None:
    """Chunks with subsampling, two real SIGTERM interruptions: the same model as an
    uninterrupted run, and as ``algorithms.fit`` in this process."""
    from costaware.models.scoring import load_model_file, predict_scores
    from costaware.models.training import TrainingJob, run_to_end

    from .training.jobs import make_backend

    cfg = kd.config(kind, algorithm)
    sub = (
        {"subsample": 0.7, "colsample_bytree": 0.8, "max_depth": 4}
        if algorithm == "xgboost"
        else {"bagging_fraction": 0.7, "bagging_freq": 1, "feature_fraction": 0.8}
    )
    cfg = type(cfg).model_validate(
        {**cfg.model_dump(), "training": {**cfg.training.model_dump(), "params": sub}}
    )
    frame = train.copy()
    frame[cfg.target.name] = alg.encode_target(frame[cfg.target.name], cfg)
    path = tmp_path / "train.parquet"
    frame.to_parquet(path)

    def job(name: str) -> TrainingJob:
        return TrainingJob(
            job_id=name,
            algorithm=algorithm,
            train_path=str(path),
            features=cfg.feature_names,
            target=cfg.target.name,
            params=dict(cfg.training.params),
            num_boost_round=cfg.training.num_boost_round,
            chunk_rounds=cfg.training.chunk_rounds,
            seed=3,
            workdir=str(tmp_path / name),
            model_spec=cfg.model_dump(mode="json"),
        )

    plain = run_to_end(make_backend(0.0, overhead_min=0), job("plain"))
    hit = run_to_end(make_backend(1.0, max_interruptions=2, overhead_min=0), job("hit"))
    assert hit.interruptions == 2
    a = predict_scores(load_model_file(plain.model_path), test, cfg.feature_names)
    b = predict_scores(load_model_file(hit.model_path), test, cfg.feature_names)
    np.testing.assert_array_equal(a, b)
    here = alg.fit(train, cfg, seed=3).scores(test)
    np.testing.assert_allclose(a, here, rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize(
    ("kind", "algorithm"),
    [("multiclass", "custom"), ("regression", "lightgbm")],
)
def test_registry_round_trip(
    kind: str, algorithm: str, tmp_path: Path, train: pd.DataFrame, test: pd.DataFrame
) -> None:
    import mlflow

    from costaware.models.registry import FLAVOR_TAG, Registry

    cfg = _config(kind, algorithm)
    model = alg.fit(train, cfg)
    path = tmp_path / "model.pkl"
    path.write_bytes(pickle.dumps(model))
    reg = Registry(f"sqlite:///{tmp_path / 'mlflow.db'}", tmp_path / "artifacts")
    version = reg.register(
        cfg.name, path, algorithm, "run-1", params={}, metrics={}, tags={"k": kind}
    )
    assert reg.version_tags(cfg.name, version)[FLAVOR_TAG] == "pyfunc"
    loaded = reg.load(cfg.name, version)
    np.testing.assert_array_equal(loaded.scores(test), model.scores(test))
    # Any MLflow client serves it as a pyfunc on the raw feature frame.
    served = mlflow.pyfunc.load_model(f"models:/{cfg.name}/{version}").predict(
        test[cfg.feature_names]
    )
    np.testing.assert_array_equal(np.asarray(served), model.scores(test))


def test_a_pickled_xgboost_model_does_not_depend_on_the_process_that_trained_it() -> None:
    """Probes and registered models are pickles compared byte for byte after a fault: an
    XGBoost booster pickled with its run-time config (nthread) differed between a process
    with one core allowed and one with two, for the same trees."""
    import xgboost as xgb

    x = pd.read_csv(Path(__file__).resolve().parents[2] / "data" / "elec2.csv", nrows=672)
    cols = ["nswdemand", "vicdemand"]
    y = x["class"]
    cfg = {"features": [{"name": c} for c in cols], "target": {"name": "class"}}

    def fit(threads: int) -> alg.Model:
        booster = xgb.train(
            {"nthread": threads, "max_depth": 3, "seed": 1}, xgb.DMatrix(x[cols], label=y), 10
        )
        return alg.Model(cfg, {}, booster, "xgboost")

    one, two = fit(1), fit(2)
    assert pickle.dumps(one) == pickle.dumps(two)
    back = pickle.loads(pickle.dumps(two))
    d = xgb.DMatrix(x[cols])
    assert np.array_equal(back.estimator.predict(d), two.estimator.predict(d))


def test_a_model_does_not_carry_where_its_config_lay_or_how_airflow_retries() -> None:
    """The same probe trained from the same YAML in two deployments (another models folder,
    another retry delay) pickles to the same bytes: a probe trained under Airflow and one
    trained in a test harness differed by the config's path and `airflow:` section."""
    from costaware.config import load_model_config

    root = Path(__file__).resolve().parents[2]
    cfg = load_model_config(root / "include" / "models" / "elec2.yaml")
    other = cfg.model_copy(
        update={
            "source_file": "/elsewhere/models/elec2.yaml",
            "airflow": cfg.airflow.model_copy(update={"retry_delay_seconds": 1.0}),
        }
    )
    frame = pd.read_csv(root / "data" / "elec2.csv", nrows=672)
    one, two = alg.fit_probe(frame, cfg, seed=3), alg.fit_probe(frame, other, seed=3)
    assert pickle.dumps(one) == pickle.dumps(two)
    assert "source_file" not in one.config and "airflow" not in one.config
