"""The retrain DAG on ``training.backend: sagemaker``: a challenger trained by SageMaker is
registered, evaluated and promoted like a local one.

Elec2 weeks run through the real retrain DAG (``dag.test()``) with every file on S3 (moto's
server, through the storage connection) and SageMaker played by ``sagemaker_server.py``, a
local server speaking SageMaker's JSON protocol that runs each job as a script-mode
container does: channels from S3, costaware's entry point, ``model.tar.gz`` to the output
path, spot billing fields. ``dag.test()`` runs a deferred task's trigger in its own event
loop, as the triggerer would: the provider's ``SageMakerTrigger`` polls through aiobotocore
(seen in the server's log of calls) while the operator waits for its event. That the wait
holds no worker slot under the real triggerer is ``tests/dags/test_spot_cloud.py``'s test;
this one proves the DAG's wiring: prepare → deferred SageMaker job → register → evaluate →
promote, with the job's cost in the ledger.
"""

from __future__ import annotations

import io
import json
import os
import tarfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
import yaml

from costaware.models.registry import BORN_TAG, REFERENCE_TAG
from costaware.models.scoring import predict_scores
from costaware.settings import Settings

from ..conftest import ROOT, moto_server
from ..models.training import cloud
from ..models.training.sagemaker_server import KEYS, FakeSageMaker
from .harness import WEEKS, Harness

pytestmark = [pytest.mark.airflow, pytest.mark.slow]
S3_CONN = "costaware_s3_sagemaker_dag"  # its own id: Airflow caches filesystems per id
SM_CONN = "costaware_sagemaker_dag"
PRICE = 0.23  # $/h of ml.m5.xlarge in the model's price table below
IMAGE = "123456789012.dkr.ecr.us-east-1.amazonaws.com/costaware:test"


def _models(folder: Path) -> Path:
    raw = yaml.safe_load((ROOT / "include" / "models" / "elec2.yaml").read_text())
    raw["training"].update(
        # One labelled week (336 rows) to train on, one held out: the first model comes at
        # week 2 instead of week 3 (one DAG run fewer; nothing here depends on more rows).
        min_train_rows=300,
        backend="sagemaker",
        instance_type="ml.m5.xlarge",
        sagemaker={
            "role_arn": cloud.ROLE,
            "aws_conn_id": SM_CONN,
            "poll_seconds": 1,
            "image": IMAGE,
            "script": "costaware_train.py",
            "source": "s3://costaware-code/src.tar.gz",
        },
    )
    raw["cost_policy"]["price_source_options"] = {"table": {"ml.m5.xlarge": [PRICE, 0.069]}}
    folder.mkdir(parents=True)
    (folder / "elec2.yaml").write_text(yaml.safe_dump(raw))
    return folder


def _conn(endpoint: str) -> str:
    extra = {"endpoint_url": endpoint, "region_name": cloud.REGION}
    return json.dumps(
        {"conn_type": "aws", "login": "testing", "password": "testing", "extra": extra}
    )


@pytest.fixture(scope="module")
def run(airflow_home: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    home = tmp_path_factory.mktemp("sagemaker-dag")
    bucket = f"costaware-{uuid.uuid4().hex[:8]}"
    mp = pytest.MonkeyPatch()
    for var in list(os.environ):
        if var.startswith("AWS_"):
            mp.delenv(var)
    with moto_server() as moto:
        s3 = boto3.client("s3", endpoint_url=moto, region_name=cloud.REGION, **KEYS)
        s3.create_bucket(Bucket=bucket)
        fake = FakeSageMaker(moto).start()
        try:
            mp.setenv(f"AIRFLOW_CONN_{S3_CONN.upper()}", _conn(moto))
            mp.setenv(f"AIRFLOW_CONN_{SM_CONN.upper()}", _conn(fake.url))
            mp.setenv("COSTAWARE_HOME", str(home / "home"))
            mp.setenv("COSTAWARE_STORAGE", f"s3://{bucket}/state")
            mp.setenv("COSTAWARE_STORAGE_CONN_ID", S3_CONN)
            mp.setenv("COSTAWARE_MODELS_DIR", str(_models(home / "models")))
            mp.delenv("COSTAWARE_DB_URL", raising=False)
            mp.delenv("COSTAWARE_MLFLOW_URI", raising=False)
            h = Harness(Settings.from_env())
            # Weeks 0-2 as `costaware replay elec2` runs them: labels arrive a week late; week
            # 2 has two labelled weeks, one to train the first model on (on SageMaker), one to
            # hold out.
            states = [h.week(i) for i in range(3)]
            yield {"harness": h, "states": states, "fake": fake, "s3": s3, "bucket": bucket}
        finally:
            fake.stop()
            mp.undo()


def test_a_sagemaker_trained_challenger_is_registered_evaluated_and_promoted(
    run: dict[str, Any], tmp_path: Path
) -> None:
    h, fake, s3, bucket = run["harness"], run["fake"], run["s3"], run["bucket"]
    assert run["states"] == ["success"] * 3
    decision = h.decision(2)
    assert decision is not None and decision["outcome"] == "promoted", decision

    # One SageMaker job, the week-2 run's: managed spot, costaware's trainer in script mode,
    # reading the data and the job the DAG wrote to the run's work folder on S3.
    assert len(fake.jobs) == 1
    ((name, job),) = fake.jobs.items()
    assert job["TrainingJobStatus"] == "Completed" and job["EnableManagedSpotTraining"]
    assert job["AlgorithmSpecification"]["TrainingImage"] == IMAGE
    channels = {
        c["ChannelName"]: c["DataSource"]["S3DataSource"]["S3Uri"] for c in job["InputDataConfig"]
    }
    work = channels["train"].removesuffix("/train.parquet")
    assert work.startswith(f"s3://{bucket}/state/work/elec2/")
    assert channels == {"train": f"{work}/train.parquet", "job": f"{work}/job.json"}
    assert {t["Key"]: t["Value"] for t in job["Tags"]}["model"] == "elec2"
    # Waited for by the provider's trigger (aiobotocore), not by polling in the operator.
    async_polls = [a for op, a in fake.calls if op == "DescribeTrainingJob" and "aiobotocore" in a]
    assert async_polls, fake.calls
    # Nothing trained on the Airflow worker: the local backend's files are not there.
    keys = [
        o["Key"]
        for page in s3.get_paginator("list_objects_v2").paginate(
            Bucket=bucket, Prefix="state/work/"
        )
        for o in page.get("Contents", [])
    ]
    # (The local backend leaves attempts.json and model.done in the job's folder; here the
    # only model files are the container's, in its checkpoints and its output.)
    local = [k for k in keys if k.endswith(("attempts.json", "model.done", "model.pkl"))]
    assert all("/checkpoints/" in k for k in local), local

    # The champion is the model SageMaker made: the registry's copy scores the week exactly
    # as the model.pkl in the job's model.tar.gz on S3.
    ctx = h.ctx
    champion = h.champion()
    assert champion is not None
    tags = ctx.registry.version_tags("elec2", champion)
    assert tags[BORN_TAG] == WEEKS[2][0]
    assert tags[REFERENCE_TAG].startswith(f"s3://{S3_CONN}@{bucket}/state/data/elec2/reference/")
    artifact = job["ModelArtifacts"]["S3ModelArtifacts"]
    raw = s3.get_object(Bucket=bucket, Key=artifact.split(f"{bucket}/", 1)[1])["Body"].read()
    with tarfile.open(fileobj=io.BytesIO(raw), mode="r:gz") as tar:
        member = tar.extractfile("model.pkl")
        assert member is not None
        (tmp_path / "model.pkl").write_bytes(member.read())
    from costaware.models.scoring import load_model_file

    from_s3 = load_model_file(tmp_path / "model.pkl")
    registered = ctx.registry.load("elec2", champion)
    week = WEEKS[2][1]
    features = h.cfg.feature_names
    assert (
        predict_scores(registered, week, features) == predict_scores(from_s3, week, features)
    ).all()

    # Its cost is in the ledger: SageMaker's billable seconds at the on-demand price, spot.
    rows = ctx.ledger.costs(model="elec2", purpose="retrain")
    assert [(r["status"], r["capacity"]) for r in rows] == [("final", "spot")]
    assert rows[0]["usd"] == pytest.approx(job["BillableTimeInSeconds"] * PRICE / 3600, abs=1e-9)
    assert rows[0]["tags"]["team"] == "energy-forecasting"
