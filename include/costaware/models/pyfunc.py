"""A ``costaware.models.algorithms.Model`` as an MLflow pyfunc model.

The model travels with its input encoding (feature types, training categories, classes),
which no single MLflow flavor holds for every algorithm (XGBoost, LightGBM, scikit-learn,
a team's own code), so it is logged as a pyfunc: ``mlflow.pyfunc.load_model(uri)`` serves
it anywhere (``predict`` takes the raw feature frame and returns the scores by kind), and
``Registry.load`` unwraps the ``Model`` itself.
"""

from __future__ import annotations

from typing import Any

import mlflow.pyfunc


class CostawarePyfunc(mlflow.pyfunc.PythonModel):  # type: ignore[misc, name-defined]
    def __init__(self, model: Any) -> None:
        self.model = model

    # No type hints here on purpose: MLflow reads predict's hints as an input schema (and
    # warns that Any is not one); the input is the raw feature frame.
    def predict(self, context, model_input, params=None):  # type: ignore[no-untyped-def]  # noqa: ANN001
        return self.model.scores(model_input)
