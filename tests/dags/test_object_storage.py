"""The whole retrain flow with every file on S3 and MLflow as a server, as deployed.

``COSTAWARE_STORAGE=s3://<bucket>/state`` on moto's server (a bucket this test makes; boto3
and s3fs over real HTTP), credentials only in an Airflow connection (no ``AWS_*`` variable in
this process), the ledger on PostgreSQL, and the registry an ``mlflow server`` with a
PostgreSQL backend store and ``--artifacts-destination s3://<bucket>/mlflow``. Elec2 weeks go
through the real DAG (``dag.test()``) exactly as ``costaware replay`` runs them. The
assertions read the bucket, the ledger and the registry; a fresh process with no S3
credentials loads the champion through the server, as any worker would.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pandas as pd
import pytest

from costaware.models.registry import REFERENCE_TAG
from costaware.settings import Settings
from costaware.store import storage

from ..conftest import moto_server, pg_database
from ..support.servers import mlflow_server
from .harness import WEEKS, Harness

pytestmark = [pytest.mark.airflow, pytest.mark.postgres, pytest.mark.slow]
CONN_ID = "costaware_s3_test"  # its own connection id: Airflow caches filesystems per id
KEYS = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}


class S3Harness(Harness):
    s3: Any
    bucket: str

    def keys(self, prefix: str) -> list[str]:
        pages = self.s3.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix)
        return sorted(o["Key"] for page in pages for o in page.get("Contents", []))

    def get(self, key: str) -> bytes:
        return bytes(self.s3.get_object(Bucket=self.bucket, Key=key)["Body"].read())


@pytest.fixture(scope="module")
def moto() -> Iterator[str]:
    with moto_server() as url:
        yield url


@pytest.fixture(scope="module")
def harness(airflow_home: Path, tmp_path_factory: Any, moto: str) -> Iterator[S3Harness]:
    home = tmp_path_factory.mktemp("s3-state")
    bucket = f"costaware-{uuid.uuid4().hex[:8]}"
    s3 = boto3.client("s3", endpoint_url=moto, region_name="us-east-1", **KEYS)
    s3.create_bucket(Bucket=bucket)
    server_env = {
        "MLFLOW_S3_ENDPOINT_URL": moto,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }
    mp = pytest.MonkeyPatch()
    for var in list(os.environ):
        if var.startswith("AWS_"):
            mp.delenv(var)
    conn = {"conn_type": "aws", "login": "testing", "password": "testing"}
    conn["extra"] = {"endpoint_url": moto, "region_name": "us-east-1"}  # type: ignore[assignment]
    mp.setenv(f"AIRFLOW_CONN_{CONN_ID.upper()}", json.dumps(conn))
    with (
        pg_database("costaware_s3_ledger") as ledger_url,
        pg_database("costaware_s3_mlflow") as mlflow_db,
        mlflow_server(
            home / "mlflow-server",
            backend_uri=mlflow_db,
            artifacts_destination=f"s3://{bucket}/mlflow",
            env=server_env,
        ) as mlflow_url,
    ):
        mp.setenv("COSTAWARE_HOME", str(home / "home"))
        mp.setenv("COSTAWARE_STORAGE", f"s3://{bucket}/state")
        mp.setenv("COSTAWARE_STORAGE_CONN_ID", CONN_ID)
        mp.setenv("COSTAWARE_DB_URL", ledger_url)
        mp.setenv("COSTAWARE_MLFLOW_URI", mlflow_url)
        h = S3Harness(Settings.from_env())
        h.s3, h.bucket = s3, bucket
        # Weeks 0-4 as `costaware replay elec2` runs them: labels arrive, a first model
        # (week 3), a week measured against it (drift from the reference in the bucket).
        for i in range(5):
            assert h.week(i) == "success", f"week {i}"
        yield h
    mp.undo()


def test_settings_point_at_the_bucket(harness: S3Harness) -> None:
    root = harness.settings.storage
    assert not storage.is_local(root) and harness.settings.remote
    assert storage.text(root) == f"s3://{CONN_ID}@{harness.bucket}/state"


def test_batches_labels_reports_and_training_files_are_in_the_bucket(harness: S3Harness) -> None:
    keys = harness.keys("state/")
    for name, _ in WEEKS[:5]:
        assert f"state/data/elec2/batches/{name}.parquet" in keys
        assert f"state/reports/elec2/{name}/index.html" in keys
        assert f"state/reports/elec2/{name}/validation.json" in keys
    # The landing zone was emptied: every batch and label file was taken in.
    assert not [k for k in keys if k.startswith("state/landing/")]
    assert [k for k in keys if k.startswith("state/data/elec2/labels/")]
    assert [k for k in keys if k.startswith("state/data/elec2/probes/")]
    # Week 4 compared against the first champion: its drift report sits beside the others.
    assert f"state/reports/elec2/{WEEKS[4][0]}/drift.html" in keys
    # Each training job's folder is mirrored: its data, checkpoints, attempts and model.
    jobs = {k.split("/")[3] for k in keys if k.startswith("state/work/elec2/")}
    assert len(jobs) >= 1
    for job in jobs:
        files = {k.rsplit("/", 1)[1] for k in keys if k.startswith(f"state/work/elec2/{job}/")}
        assert {"train.parquet", "attempts.json", "summary.json", "model.done"} <= files, files
        assert any(f.startswith("checkpoint_") for f in files), files
        attempts = json.loads(harness.get(f"state/work/elec2/{job}/attempts.json"))
        assert attempts and all(a["status"] == "final" for a in attempts)
    # The accepted batch in the bucket is the batch that landed, row for row.
    name, part = WEEKS[4]
    stored = pd.read_parquet(io.BytesIO(harness.get(f"state/data/elec2/batches/{name}.parquet")))
    assert stored["event_id"].tolist() == part["event_id"].tolist()


def test_the_ledger_and_registry_point_into_the_bucket(harness: S3Harness) -> None:
    ctx = harness.ctx
    rows = ctx.ledger.accepted_batches("elec2")
    assert len(rows) == 5
    assert all(r["path"].startswith(f"s3://{CONN_ID}@{harness.bucket}/state/") for r in rows)
    d = harness.decision(3)
    assert d is not None and d["outcome"] == "promoted", d
    champion = harness.champion()
    tags = ctx.registry.version_tags("elec2", champion)
    assert tags[REFERENCE_TAG].startswith(f"s3://{CONN_ID}@{harness.bucket}/state/data/")
    # MLflow's artifacts went to the bucket through the server, not to a local folder.
    assert harness.keys("mlflow/")
    home = Path(os.environ["COSTAWARE_HOME"])
    # cache/ holds parsed model YAMLs (a machine's own, derived): not data.
    local = [p for p in home.rglob("*") if p.is_file() and p.relative_to(home).parts[0] != "cache"]
    assert not [p for p in local if p.suffix in (".parquet", ".html", ".ubj", ".json")], local


def test_a_bad_batch_is_quarantined_in_the_bucket_byte_for_byte(harness: S3Harness) -> None:
    raw = b"event_id,event_time,nswprice\n1,not a time,oops\n"
    harness.s3.put_object(Bucket=harness.bucket, Key="state/landing/elec2/broken.csv", Body=raw)
    assert harness.run() == "failed"  # validation fails the run: the batch is quarantined
    keys = harness.keys("state/quarantine/elec2/batches/broken/")
    assert keys == [
        "state/quarantine/elec2/batches/broken/broken.csv",
        "state/quarantine/elec2/batches/broken/validation.json",
    ]
    assert harness.get(keys[0]) == raw
    assert not harness.keys("state/landing/elec2/broken")
    row = harness.ctx.ledger.batch("elec2", "broken")
    assert row["status"] == "quarantined"


def test_any_process_loads_the_champion_from_the_server_without_s3_keys(
    harness: S3Harness, tmp_path: Path
) -> None:
    """A fresh interpreter, as on another worker: no AWS variable, no shared disk."""
    code = (
        "import sys\n"
        "from costaware.models.registry import Registry\n"
        f"r = Registry(sys.argv[1], {str(tmp_path / 'unused')!r})\n"
        "m = r.load('elec2', r.alias('elec2', 'champion'))\n"
        "print(type(m).__name__)\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "AIRFLOW_CONN_"))}
    done = subprocess.run(
        [sys.executable, "-c", code, harness.settings.mlflow_uri],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    # costaware's Model: the fitted XGBoost booster with the input encoding it was trained on.
    assert done.stdout.strip().splitlines()[-1] == "Model", done.stdout
