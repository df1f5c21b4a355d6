"""Data that no retry can fix fails the retrain DAG's task at once (no Airflow retries)."""

from __future__ import annotations

import importlib.util

import pytest

from costaware.errors import DataError, RegistryUnavailable

from ..conftest import ROOT


def _dag_module():
    spec = importlib.util.spec_from_file_location(
        "retrain_dags_data_errors", ROOT / "dags" / "costaware_retrain.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_data_error_fails_without_retry_and_others_stay_retryable() -> None:
    from airflow.sdk.exceptions import AirflowFailException

    no_retry = _dag_module()._no_retry

    def bad_data() -> None:
        raise DataError("column 'vicprice' holds 2 value(s) that are not numbers")

    def registry_down() -> None:
        raise RegistryUnavailable("the model registry could not answer")

    with pytest.raises(AirflowFailException, match="'vicprice'"):
        no_retry(bad_data)
    with pytest.raises(RegistryUnavailable):  # a retry can fix this one: Airflow retries it
        no_retry(registry_down)
    assert no_retry(lambda a, b: a + b, 2, 3) == 5
