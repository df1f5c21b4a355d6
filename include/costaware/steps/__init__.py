"""The retraining DAG's steps as plain functions (one Airflow task each), and the report."""
