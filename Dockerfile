# costaware on the official Airflow image: the same Airflow and Python as constraints.txt
# (tests/deploy/test_compose.py fails when they drift apart). Used by docker-compose.yaml for
# every Airflow component and for the MLflow server (so the server speaks the same MLflow
# version as the tasks, and has psycopg2 and boto3 for its PostgreSQL store and S3 artifacts).
FROM apache/airflow:3.3.2-python3.11

# Airflow's docker-stack docs: add Python packages as the `airflow` user, never as root.
USER airflow

# The library, installed with the pinned set. Naming apache-airflow==$AIRFLOW_VERSION (set by
# the base image) stops pip from ever replacing the Airflow the image was built for.
COPY --chown=airflow:root pyproject.toml README.md constraints.txt /tmp/costaware-src/
COPY --chown=airflow:root include/costaware/ /tmp/costaware-src/include/costaware/
RUN pip install --no-cache-dir -c /tmp/costaware-src/constraints.txt \
        "apache-airflow==${AIRFLOW_VERSION}" /tmp/costaware-src \
    && rm -rf /tmp/costaware-src

# The project files the package reads at run time, where Airflow expects DAGs and plugins
# (AIRFLOW_HOME=/opt/airflow). The library itself comes from site-packages, not include/.
COPY --chown=airflow:root dags/ /opt/airflow/dags/
COPY --chown=airflow:root plugins/ /opt/airflow/plugins/
COPY --chown=airflow:root include/models/ /opt/airflow/include/models/
COPY --chown=airflow:root great_expectations/ /opt/airflow/great_expectations/
COPY --chown=airflow:root data/ /opt/airflow/data/

# Installed into site-packages, costaware cannot find the project folder from its own path:
# name it. COSTAWARE_HOME is this container's scratch (the deployed state lives on object
# storage, PostgreSQL and the MLflow server; nothing here is shared between containers).
ENV COSTAWARE_PROJECT_ROOT=/opt/airflow \
    COSTAWARE_HOME=/opt/airflow/costaware \
    GX_ANALYTICS_ENABLED=false \
    MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR=false
# COSTAWARE_HOME, and the folders compose mounts named volumes on (made here, so a new volume
# takes the airflow user's ownership instead of root's).
RUN mkdir -p /opt/airflow/costaware /opt/airflow/auth /opt/airflow/logs
