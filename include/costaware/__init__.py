"""costaware: cost-aware retraining of production ML models.

The library never imports Airflow; the DAGs in ``dags/`` call into it.
"""

from __future__ import annotations

__version__ = "0.1.0"
