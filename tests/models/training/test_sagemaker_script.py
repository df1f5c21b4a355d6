"""Script mode end to end: a SageMaker job that really trains costaware's model.

The backend (over the Amazon provider's hook, real HTTP) submits to ``sagemaker_server.py``,
a local server speaking SageMaker's JSON protocol that runs each job as a script-mode
container would: channels from S3 (moto's server), costaware's entry point in its own
process, checkpoints synced to S3, ``model.tar.gz`` written to the output path. A spot
reclaim lands after the first chunk; the job restarts from S3's checkpoints. The model must
be the one an uninterrupted run on this machine makes, and its cost billable × price.

And the built-in XGBoost image (1.7-1): its ``xgboost-model`` is in XGBoost's legacy binary
format, which xgboost 3.2 cannot load (checked on a real 1.7.6 file in tests/fixtures), so
the retrain DAG refuses it before any job is paid for.
"""

from __future__ import annotations

import dataclasses
import io
import json
import subprocess
import sys
import tarfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import numpy as np
import pandas as pd
import pytest

from costaware.config import SageMakerSpec
from costaware.costs.prices import StaticPriceSource
from costaware.errors import ConfigError, TrainingError
from costaware.models.scoring import load_model_file, predict_scores
from costaware.models.training import TrainingJob, run_to_end, worker
from costaware.models.training.sagemaker import SageMakerBackend
from costaware.models.training.sagemaker_model import fetch_model, registrable

from ... import factories
from ...conftest import ROOT, moto_server
from . import cloud
from .sagemaker_server import KEYS, FakeSageMaker

BUCKET = "costaware-script"
FEATURES = ["period", "nswdemand", "vicprice", "vicdemand", "transfer"]
IMAGE = "123456789012.dkr.ecr.us-east-1.amazonaws.com/costaware:test"
S3_CONN = "costaware_script_s3"  # the storage's connection (moto), not SageMaker's
LEGACY = ROOT / "tests" / "fixtures" / "sagemaker" / "xgboost-1.7.6-model"


@pytest.fixture(scope="module")
def s3() -> Iterator[tuple[str, Any]]:
    with moto_server() as url:
        client = boto3.client("s3", endpoint_url=url, region_name=cloud.REGION, **KEYS)
        client.create_bucket(Bucket=BUCKET)
        yield url, client


@pytest.fixture(scope="module")
def fake(s3: tuple[str, Any]) -> Iterator[FakeSageMaker]:
    server = FakeSageMaker(s3[0], reclaim_after_chunk=1).start()
    try:
        yield server
    finally:
        server.stop()


def _use_s3(monkeypatch: pytest.MonkeyPatch, endpoint: str) -> None:
    conn = {"conn_type": "aws", "login": "testing", "password": "testing"}
    conn["extra"] = {"endpoint_url": endpoint, "region_name": cloud.REGION}  # type: ignore[assignment]
    monkeypatch.setenv(f"AIRFLOW_CONN_{S3_CONN.upper()}", json.dumps(conn))


def _frame() -> pd.DataFrame:
    frame = pd.concat([part for _, part in factories.batches("elec2")[:2]])
    frame["class"] = frame["class"].astype(int)  # already 0/1 (UP = 1) in the factory
    return frame[[*FEATURES, "class"]].reset_index(drop=True)


def test_a_reclaimed_script_mode_job_makes_the_uninterrupted_model_and_bills_billable_time(
    s3: tuple[str, Any], fake: FakeSageMaker, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    endpoint, client = s3
    cloud.use_connection(monkeypatch, fake.url)
    _use_s3(monkeypatch, endpoint)
    folder = f"s3://{BUCKET}/state/work/elec2/script"
    frame = _frame()
    buf = io.BytesIO()
    frame.to_parquet(buf)
    client.put_object(
        Bucket=BUCKET, Key="state/work/elec2/script/train.parquet", Body=buf.getvalue()
    )
    job = TrainingJob(
        job_id="script-1",
        algorithm="xgboost",
        train_path=f"{folder}/train.parquet",
        features=FEATURES,
        target="class",
        params={"max_depth": 4, "eta": 0.2, "subsample": 0.8, "colsample_bytree": 0.8},
        num_boost_round=60,
        chunk_rounds=20,
        seed=11,
        workdir=str(tmp_path / "unused"),
        mirror=folder,
        tags={"model": "elec2", "team": "energy-forecasting", "env": "dev", "purpose": "retrain"},
    )
    client.put_object(
        Bucket=BUCKET,
        Key="state/work/elec2/script/job.json",
        Body=json.dumps(dataclasses.asdict(job)).encode(),
    )
    spec = SageMakerSpec(
        role_arn=cloud.ROLE, image=IMAGE, script="costaware_train.py", source="s3://code/src.tar.gz"
    )
    backend = SageMakerBackend(
        cloud.hook_client(),
        StaticPriceSource(cloud.SM_PRICES),
        spec,
        region=cloud.REGION,
        instance_type="ml.m5.xlarge",
        spot=True,
    )
    result = run_to_end(backend, job, poll_s=0.2, deadline_s=240, sleep=time.sleep)

    desc = fake.jobs[result.handle]
    channels = {
        c["ChannelName"]: c["DataSource"]["S3DataSource"]["S3Uri"] for c in desc["InputDataConfig"]
    }
    assert channels == {"train": f"{folder}/train.parquet", "job": f"{folder}/job.json"}
    assert desc["CheckpointConfig"]["S3Uri"] == f"{folder}/checkpoints"
    # One reclaim, absorbed by SageMaker inside the one job: spot, one interruption.
    assert result.capacity == "spot" and result.interruptions == 1
    billable, trained = desc["BillableTimeInSeconds"], desc["TrainingTimeInSeconds"]
    assert 0 < billable < trained
    assert result.known_usd == pytest.approx(billable * 0.23 / 3600)
    assert result.saved_usd == pytest.approx((trained - billable) * 0.23 / 3600)
    # The checkpoints S3 kept are the last chunk's (3 chunks of 20 rounds).
    keys = [
        o["Key"]
        for o in client.list_objects_v2(
            Bucket=BUCKET, Prefix="state/work/elec2/script/checkpoints/"
        )["Contents"]
    ]
    assert any(k.endswith("checkpoint_00003") for k in keys), keys

    got = load_model_file(fetch_model(result.model_path, tmp_path / "fetched", S3_CONN))
    # The same job uninterrupted on this machine, with the same worker: identical scores
    # (chunk i's seed is seed + i whether or not a reclaim came between chunks).
    local = tmp_path / "local"
    local.mkdir()
    frame.to_parquet(local / "train.parquet")
    ref_job = dataclasses.replace(
        job, train_path=str(local / "train.parquet"), workdir=str(local), mirror=None
    )
    # In a process of its own, as the local backend runs it (the worker takes SIGTERM).
    done = subprocess.run(
        [sys.executable, "-m", "costaware.models.training.worker", str(ref_job.write())],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    ref = load_model_file(worker.model_file(ref_job))
    np.testing.assert_array_equal(
        predict_scores(got, frame, FEATURES), predict_scores(ref, frame, FEATURES)
    )
    # And a real model: well above chance on the data it learned (0.5 = a coin).
    from sklearn.metrics import roc_auc_score

    assert roc_auc_score(frame["class"], predict_scores(got, frame, FEATURES)) > 0.75
    log = fake.logs[result.handle].read_text()
    assert "interrupted after chunk 1/3" in log, log[-2000:]


def test_fetch_model_uses_the_storage_connection(
    s3: tuple[str, Any], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """An artifact without a model is an error naming what the tarball holds."""
    endpoint, client = s3
    _use_s3(monkeypatch, endpoint)
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        info = tarfile.TarInfo("notes.txt")
        info.size = 2
        tar.addfile(info, io.BytesIO(b"hi"))
    client.put_object(Bucket=BUCKET, Key="empty/model.tar.gz", Body=buf.getvalue())
    with pytest.raises(
        TrainingError, match=r"holds \['notes.txt'\]: neither costaware's model.pkl"
    ):
        fetch_model(f"s3://{BUCKET}/empty/model.tar.gz", tmp_path, S3_CONN)


def test_the_builtin_images_model_cannot_be_loaded_here_so_the_dag_refuses_it(
    s3: tuple[str, Any], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    import xgboost as xgb

    raw = LEGACY.read_bytes()
    # What xgboost itself says of the built-in 1.7 image's model file (not costaware's guess).
    with pytest.raises(xgb.core.XGBoostError, match="binary format has been deprecated"):
        xgb.Booster().load_model(str(LEGACY))
    endpoint, client = s3
    _use_s3(monkeypatch, endpoint)
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        info = tarfile.TarInfo("xgboost-model")
        info.size = len(raw)
        tar.addfile(info, io.BytesIO(raw))
    client.put_object(Bucket=BUCKET, Key="builtin/model.tar.gz", Body=buf.getvalue())
    with pytest.raises(TrainingError, match="legacy binary format"):
        fetch_model(f"s3://{BUCKET}/builtin/model.tar.gz", tmp_path, S3_CONN)
    # So the retrain DAG refuses the built-in image before it pays for a job ...
    with pytest.raises(ConfigError, match="built-in XGBoost image 1.7-1 cannot train a challenger"):
        registrable(SageMakerSpec(role_arn=cloud.ROLE))
    # ... and takes script mode.
    registrable(
        SageMakerSpec(role_arn=cloud.ROLE, image=IMAGE, script="t.py", source="s3://code/s.tar.gz")
    )
