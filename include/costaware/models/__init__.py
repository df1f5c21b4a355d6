"""Models: training backends, scoring and the MLflow registry (versions and aliases)."""
