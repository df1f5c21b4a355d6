"""
### Model configs that could not be loaded

No DAG here. Every model YAML is loaded on its own by the DAG files beside this one, so a
broken config only drops that model's `retrain_<model>` / `rollback_<model>` DAGs. This file
makes the broken ones visible: it fails to import with one error naming every bad file, the
key and what is allowed, shown in Airflow's UI under *DAG Import Errors* (and by
`costaware check`). It imports cleanly when every config is valid.
"""

from __future__ import annotations

from costaware.config import load_models_for_dags

# Nothing to build: this module only raises (Airflow records it as this file's import error).
load_models_for_dags().raise_errors()
