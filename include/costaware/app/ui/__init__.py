"""The Costaware page in the Airflow UI: data, page, charts, the plugin app, the extra link."""
