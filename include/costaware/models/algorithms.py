"""The one place that turns a frame into model input and fits and scores models of every kind.

Every step that fits or scores (the probe, the training worker, evaluation, drift's
prediction column, the registry) goes through here, so a feature is encoded the same way
everywhere and the encoding travels *inside* the model:

* numeric features become float64 (NaN where missing);
* categorical features become pandas ``category`` columns whose categories are fixed at
  training time (the declared ``categories``, else the values seen in the training window)
  and saved in the ``Model``; at scoring time a value outside them becomes missing, which
  XGBoost and LightGBM handle natively (``enable_categorical``) and a scikit-learn
  pipeline's own encoder sees as NaN.

Scores by target kind: ``binary`` → P(positive) per row, shape (n,); ``multiclass`` → one
probability per class of ``target.classes``, shape (n, K); ``regression`` → the prediction,
shape (n,). Targets are encoded as 0/1, the class's index in ``target.classes``, or float.

Data that no retry can fix raises ``DataError`` with the column, example values and what
the config declares (``check_frame``).
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from costaware.config import ALGORITHMS, INCREMENTAL_ALGORITHMS, ModelConfig, category_text
from costaware.errors import ConfigError, DataError, TrainingError

if TYPE_CHECKING:
    import pandas as pd

PROBE_ROUNDS = 50  # the probe's boosting rounds (README: "cheap probe ... 50 rounds")
EXAMPLES = 5  # example values shown in a data error


def text(value: Any) -> str:
    """A category value as text (``config.category_text``; numpy scalars too)."""
    return category_text(value.item() if isinstance(value, np.generic) else value)


def _texts(series: pd.Series) -> pd.Series:
    return series.map(lambda v: v if _missing(v) else text(v))


def _missing(v: Any) -> bool:
    try:
        return bool(v is None or v != v)
    except (TypeError, ValueError):
        return False


def _examples(values: Any) -> list[Any]:
    out: list[Any] = []
    for v in values:
        if v not in out:
            out.append(v.item() if hasattr(v, "item") else v)
        if len(out) == EXAMPLES:
            break
    return out


def _where(cfg: ModelConfig) -> str:
    return cfg.source_file or f"model {cfg.name!r}"


def check_frame(frame: pd.DataFrame, cfg: ModelConfig, stage: str = "training") -> None:
    """Refuse data no retry can fix: a missing feature, a value that is not a number in a
    numeric feature, a null in a feature not declared ``nullable``, and (``stage``
    "training") a category outside a declared ``categories`` list. Raises ``DataError``."""
    import pandas as pd

    missing = [c for c in cfg.feature_names if c not in frame.columns]
    if missing:
        raise DataError(
            f"{stage} data of {cfg.name!r} lacks feature column(s) {missing}; "
            f"columns present: {list(frame.columns)[:20]} ({_where(cfg)} declares them)"
        )
    for f in cfg.features:
        col = frame[f.name]
        if f.type == "numeric":
            if not pd.api.types.is_numeric_dtype(col) or pd.api.types.is_bool_dtype(col):
                num = pd.to_numeric(col, errors="coerce")
                bad = col[col.notna() & num.isna()]
                if len(bad) or pd.api.types.is_bool_dtype(col):
                    raise DataError(
                        f"column {f.name!r} of the {stage} data holds {len(bad)} value(s) that "
                        f"are not numbers, e.g. {_examples(bad)}; {_where(cfg)} declares "
                        f"{f.name!r} as type: numeric. Fix the feed, or declare the feature "
                        "type: categorical"
                    )
        elif f.categories is not None and stage == "training":
            allowed = {text(c) for c in f.categories}
            vals = _texts(col.dropna())
            bad = vals[~vals.isin(allowed)]
            if len(bad):
                raise DataError(
                    f"column {f.name!r} of the training data holds {len(bad)} value(s) "
                    f"outside its declared categories, e.g. {_examples(bad)}; {_where(cfg)} "
                    f"declares categories {list(f.categories)}. Add them to categories, or "
                    "remove the list to learn the categories from the training window"
                )
        if not f.nullable and col.isna().any():
            raise DataError(
                f"column {f.name!r} of the {stage} data holds {int(col.isna().sum())} missing "
                f"value(s) (e.g. rows {list(col.index[col.isna()][:EXAMPLES])}), but "
                f"{_where(cfg)} does not declare it nullable: true"
            )


def encode_target(series: pd.Series, cfg: ModelConfig) -> np.ndarray:
    """Labels as the models see them: 0/1 (binary), the class's index in ``target.classes``
    (multiclass), float (regression). A label no class matches raises ``DataError``."""
    import pandas as pd

    t = cfg.target
    if t.kind == "binary":
        return np.asarray(series == t.positive, dtype=int)
    if t.kind == "multiclass":
        assert t.classes is not None
        index = {text(c): i for i, c in enumerate(t.classes)}
        keys = _texts(series)
        codes = keys.map(index)
        bad = series[codes.isna()]
        if len(bad):
            raise DataError(
                f"target {t.name!r} holds {len(bad)} label(s) outside target.classes, e.g. "
                f"{_examples(bad)}; {_where(cfg)} declares classes {list(t.classes)}"
            )
        return codes.to_numpy(dtype=int)
    y = pd.to_numeric(series, errors="coerce")
    bad = series[series.notna() & y.isna()]
    if len(bad) or y.isna().any():
        raise DataError(
            f"target {t.name!r} of a regression model holds {len(bad)} value(s) that are not "
            f"numbers and {int(series.isna().sum())} missing, e.g. {_examples(bad)}; "
            f"{_where(cfg)} declares kind: regression"
        )
    return y.to_numpy(dtype=float)


def training_categories(frame: pd.DataFrame, cfg: ModelConfig) -> dict[str, list[str]]:
    """Each categorical feature's categories, fixed for the model's life: the declared list,
    else the values of the training frame (sorted, as text)."""
    out = {}
    for f in cfg.features:
        if f.type != "categorical":
            continue
        if f.categories is not None:
            out[f.name] = [text(c) for c in f.categories]
        else:
            out[f.name] = sorted(set(_texts(frame[f.name].dropna())))
    return out


def to_input(
    frame: pd.DataFrame, cfg: ModelConfig, categories: dict[str, list[str]]
) -> pd.DataFrame:
    """The model's input: the features in config order, numeric as float64, categorical as
    ``category`` with the training categories (a value outside them becomes missing)."""
    import pandas as pd

    cols = {}
    for f in cfg.features:
        col = frame[f.name]
        if f.type == "categorical":
            cols[f.name] = pd.Categorical(_texts(col), categories=categories[f.name])
        else:
            num = pd.to_numeric(col, errors="coerce")
            if (col.notna() & num.isna()).any():  # scoring: the same error as training
                check_frame(frame, cfg, "scoring")
            cols[f.name] = num.astype("float64")
    return pd.DataFrame(cols, index=frame.index)


def unseen_counts(
    frame: pd.DataFrame, cfg: ModelConfig, categories: dict[str, list[str]]
) -> dict[str, dict[str, int]]:
    """Per categorical feature, the values outside the training categories and their counts
    (what scoring maps to missing)."""
    out = {}
    for name, known in categories.items():
        vals = _texts(frame[name].dropna())
        bad = vals[~vals.isin(set(known))]
        if len(bad):
            out[name] = {str(k): int(v) for k, v in bad.value_counts().items()}
    return out


def model_spec(cfg: ModelConfig) -> dict[str, Any]:
    """What a fitted model keeps of its config: everything that defines its input and output
    (features, target, training), not where the YAML lay or how Airflow retries its tasks —
    the same model must pickle to the same bytes whichever deployment trained it."""
    return cfg.model_dump(mode="json", exclude={"airflow", "source_file"})


@dataclass
class Model:
    """A fitted model with its input encoding: picklable, scikit-learn-style
    (``predict_proba`` for classification, ``predict``), and ``scores`` by kind."""

    config: dict[str, Any]  # the ModelConfig it was trained for (JSON)
    categories: dict[str, list[str]]
    estimator: Any
    algorithm: str

    @property
    def cfg(self) -> ModelConfig:
        return ModelConfig.model_validate(self.config)

    @property
    def kind(self) -> str:
        return str(self.config["target"].get("kind", "binary"))

    @property
    def features(self) -> list[str]:
        return [f["name"] for f in self.config["features"]]

    def __getstate__(self) -> dict[str, Any]:
        # An XGBoost booster pickles its run-time configuration too (nthread: how many cores
        # the process that trained it had), so the same model pickled in two processes gave
        # two different files. Its saved model (trees and learner) is the model alone.
        state = dict(self.__dict__)
        if self.algorithm == "xgboost" and hasattr(self.estimator, "save_raw"):
            state["estimator"] = ("xgboost-ubj", bytes(self.estimator.save_raw("ubj")))
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        est = state.get("estimator")
        if isinstance(est, tuple) and len(est) == 2 and est[0] == "xgboost-ubj":
            import xgboost as xgb

            booster = xgb.Booster()
            booster.load_model(bytearray(est[1]))
            state = {**state, "estimator": booster}
        self.__dict__.update(state)

    def scores(self, frame: pd.DataFrame) -> np.ndarray:
        x = to_input(frame, self.cfg, self.categories)
        return _predict(self.estimator, self.algorithm, x, self.kind, self._n_classes())

    def _n_classes(self) -> int:
        classes = self.config["target"].get("classes")
        return len(classes) if classes else 2

    def predict_proba(self, frame: pd.DataFrame) -> np.ndarray:
        s = self.scores(frame)
        if self.kind == "regression":
            raise AttributeError("a regression model has no predict_proba; use predict")
        return s if s.ndim == 2 else np.column_stack([1 - s, s])

    def predict(self, frame: pd.DataFrame) -> np.ndarray:
        s = self.scores(frame)
        if self.kind == "regression":
            return s
        return s.argmax(axis=1) if s.ndim == 2 else (s >= 0.5).astype(int)


def _predict(est: Any, algorithm: str, x: pd.DataFrame, kind: str, k: int) -> np.ndarray:
    if algorithm == "xgboost":
        import xgboost as xgb

        return np.asarray(est.predict(xgb.DMatrix(x, enable_categorical=True)), dtype=float)
    if algorithm == "lightgbm":
        return np.asarray(est.predict(x), dtype=float)
    if kind == "regression":
        return np.asarray(est.predict(x), dtype=float).ravel()
    proba = np.asarray(est.predict_proba(x), dtype=float)
    # Columns follow the estimator's classes_ (a class absent from training has none).
    known = [int(c) for c in getattr(est, "classes_", range(proba.shape[1]))]
    full = np.zeros((len(x), k))
    full[:, known] = proba
    return full[:, 1] if kind == "binary" else full


def import_path(path: str, what: str) -> Any:
    """``package.module:function`` or ``package.module.Name``, imported; a clear error if not."""
    module, _, name = path.partition(":") if ":" in path else path.rpartition(".")
    try:
        return getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError) as exc:
        raise ConfigError(
            f"{what} {path!r} cannot be imported: {type(exc).__name__}: {exc}; it must name "
            "an importable module and an attribute in it"
        ) from exc


def _objective(algorithm: str, kind: str, k: int) -> dict[str, Any]:
    table: dict[str, dict[str, Any]]
    if algorithm == "xgboost":
        table = {
            "binary": {"objective": "binary:logistic"},
            "multiclass": {"objective": "multi:softprob", "num_class": k},
            "regression": {"objective": "reg:squarederror"},
        }
    else:
        table = {
            "binary": {"objective": "binary"},
            "multiclass": {"objective": "multiclass", "num_class": k},
            "regression": {"objective": "regression"},
        }
    return table[kind]


def fit_chunk(
    cfg: ModelConfig,
    x: pd.DataFrame,
    y: np.ndarray,
    state: Any,
    rounds: int,
    seed: int,
    params: dict[str, Any] | None = None,
) -> Any:
    """Train ``rounds`` more rounds on top of ``state`` (None: from scratch) and return the
    estimator. Algorithms that cannot continue (``INCREMENTAL_ALGORITHMS`` lacks them) fit
    whole, once."""
    algorithm, kind = cfg.training.algorithm, cfg.target.kind
    params = dict(cfg.training.params if params is None else params)
    k = len(cfg.target.classes or [0, 1])
    if algorithm == "xgboost":
        import xgboost as xgb

        full = {
            **_objective(algorithm, kind, k),
            "nthread": 1,
            "tree_method": "hist",
            "verbosity": 0,
            **params,
            "seed": seed,
        }
        dm = xgb.DMatrix(x, label=y, enable_categorical=True)
        return xgb.train(full, dm, num_boost_round=rounds, xgb_model=state)
    if algorithm == "lightgbm":
        import lightgbm as lgb

        full = {
            **_objective(algorithm, kind, k),
            "num_threads": 1,
            "verbose": -1,
            "deterministic": True,
            **params,
            "seed": seed,
        }
        ds = lgb.Dataset(x, label=y, categorical_feature="auto", free_raw_data=False)
        return lgb.train(full, ds, num_boost_round=rounds, init_model=state)
    if algorithm == "sklearn_hgb":
        from sklearn.ensemble import HistGradientBoostingClassifier

        model = state or HistGradientBoostingClassifier(
            warm_start=True,
            max_iter=0,
            early_stopping=False,
            **{k: v for k, v in params.items() if k != "max_iter"},
        )
        model.set_params(max_iter=model.max_iter + rounds, random_state=seed)
        return model.fit(x, y)
    if algorithm == "sklearn_logreg":
        from sklearn.linear_model import LogisticRegression

        return LogisticRegression(max_iter=1000, **params).fit(x, y)
    if algorithm == "sklearn":
        assert cfg.training.estimator is not None
        factory = import_path(cfg.training.estimator, "training.estimator")
        return _checked(factory(**params).fit(x, y), cfg, "training.estimator")
    if algorithm == "custom":
        assert cfg.training.entry_point is not None
        fn = import_path(cfg.training.entry_point, "training.entry_point")
        frame = x.copy()
        frame[cfg.target.name] = y
        return _checked(fn(frame, cfg), cfg, "training.entry_point")
    raise ConfigError(f"unknown algorithm {algorithm!r}; allowed: {list(ALGORITHMS)}")


def _checked(model: Any, cfg: ModelConfig, key: str) -> Any:
    need = "predict" if cfg.target.kind == "regression" else "predict_proba"
    if not callable(getattr(model, need, None)):
        raise TrainingError(
            f"{key} {getattr(cfg.training, key.split('.')[1])!r} returned "
            f"{type(model).__name__}, which has no {need}(); a {cfg.target.kind} model must "
            f"have scikit-learn's {need} (README, Model kinds)"
        )
    return model


def chunks(cfg: ModelConfig) -> int:
    """How many chunks training takes: rounds / chunk_rounds, or 1 when it cannot continue."""
    t = cfg.training
    if t.algorithm not in INCREMENTAL_ALGORITHMS:
        return 1
    return -(-t.num_boost_round // t.chunk_rounds)


def prepare(
    frame: pd.DataFrame, cfg: ModelConfig, encoded: bool = False
) -> tuple[pd.DataFrame, np.ndarray, dict[str, list[str]]]:
    """Check a training frame and return (input, encoded target, categories). ``encoded``:
    the target column already holds ``encode_target``'s values (the training job's data)."""
    check_frame(frame, cfg, "training")
    categories = training_categories(frame, cfg)
    col = frame[cfg.target.name]
    if encoded:
        y = col.to_numpy(dtype=float if cfg.target.kind == "regression" else int)
    else:
        y = encode_target(col, cfg)
    return to_input(frame, cfg, categories), y, categories


def fit(frame: pd.DataFrame, cfg: ModelConfig, seed: int = 0) -> Model:
    """Fit the model's algorithm on ``frame`` in one go (chunk by chunk when incremental,
    each chunk's seed ``seed + i``, as the training worker does)."""
    x, y, categories = prepare(frame, cfg)
    state = None
    t = cfg.training
    for i in range(chunks(cfg)):
        rounds = min(t.chunk_rounds, t.num_boost_round - i * t.chunk_rounds)
        state = fit_chunk(cfg, x, y, state, rounds, seed + i)
    return Model(model_spec(cfg), categories, state, t.algorithm)


def fit_probe(frame: pd.DataFrame, cfg: ModelConfig, seed: int = 0) -> Model:
    """The cheap probe: boosted trees with the model's own parameters and ``PROBE_ROUNDS``
    rounds in one chunk; an algorithm without rounds (sklearn, custom) fits as it trains."""
    x, y, categories = prepare(frame, cfg)
    t = cfg.training
    rounds = PROBE_ROUNDS if t.algorithm in INCREMENTAL_ALGORITHMS else 1
    state = fit_chunk(cfg, x, y, None, rounds, seed)
    return Model(model_spec(cfg), categories, state, t.algorithm)


def default_config(features: list[str], target: str, algorithm: str) -> ModelConfig:
    """A minimal binary, numeric config: for training jobs written before model specs."""
    return ModelConfig.model_validate(
        {
            "name": "job",
            "data": {"source": "-", "batch_rows": 1},
            "features": [{"name": f} for f in features],
            "target": {"name": target, "positive": 1},
            "validation_suite": "-",
            "training": {"algorithm": algorithm},
            "cost_policy": {
                "max_usd_per_point_batch": 1,
                "auto_approve_usd": 0,
                "monthly_budget_usd": 1,
            },
            "tags": {"model": "job", "team": "-"},
        }
    )
