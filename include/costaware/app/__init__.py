"""Entry points: the CLI, the replay, and the glue that points Airflow at costaware's state."""
