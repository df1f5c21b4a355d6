"""Imported once by each Celery worker as it starts, so costaware's tasks start warm.

Airflow runs every task try in a process it forks from the Celery worker (``os.fork`` in the
Task SDK's supervisor). What the worker has imported, the task has; what it has not, the
task imports again, every try: Great Expectations and Evidently alone take 2–4 s each, paid
by ``validate_batch`` and ``measure_drift`` of every run. ``deploy/common.env`` (read by
``make stack`` and docker-compose.yaml) names this module in Celery's ``imports`` through
``AIRFLOW__CELERY__EXTRA_CELERY_CONFIG``; Celery imports it in the worker's main process
before it starts its pool. Only workers import it: the scheduler builds the same Celery app
but never starts a worker.

The list is the libraries costaware's task code imports inside its functions (kept lazy so
that the core and the DAG files import fast). A library that is not installed is skipped
with a warning; the cost is memory: about 470 MB resident in the worker, shared with the
processes it forks until they write to it. To turn it off, drop the setting.
"""

from __future__ import annotations

import importlib
import logging
import time

log = logging.getLogger(__name__)

PRELOAD = (
    "pandas",
    "pyarrow.parquet",
    "scipy.stats",
    "sklearn.metrics",
    "sklearn.isotonic",
    "xgboost",
    "great_expectations",
    "great_expectations.expectations",
    "evidently",
    "evidently.metrics",
    "mlflow",
    "mlflow.pyfunc",
    "costaware.steps.intake",
    "costaware.steps.measure",
    "costaware.steps.checkpoint",
    "costaware.steps.train",
    "costaware.steps.evaluate",
    "costaware.steps.promote",
    "costaware.steps.report",
    "costaware.batches.validation",
    "costaware.batches.drift",
    "costaware.models.registry",
)


def preload(names: tuple[str, ...] = PRELOAD) -> list[str]:
    """Import ``names``; the ones that could not be imported (each logged with its error)."""
    t0, missing = time.monotonic(), []
    for name in names:
        try:
            importlib.import_module(name)
        except Exception as exc:  # noqa: BLE001 - a worker must start even without one
            log.warning("costaware: not preloaded %s (%s: %s)", name, type(exc).__name__, exc)
            missing.append(name)
    log.info(
        "costaware: preloaded %d of %d modules for tasks in %.1f s",
        len(names) - len(missing),
        len(names),
        time.monotonic() - t0,
    )
    return missing


MISSING = preload()
