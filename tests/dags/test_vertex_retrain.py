"""The retrain DAG on ``training.backend: vertex``: a challenger trained by a Vertex AI custom
job is registered, evaluated and promoted like a local one.

Elec2 weeks run through the real retrain DAG (``dag.test()``) with Vertex AI and Cloud
Storage played by ``vertex_server.py``'s stand-ins over HTTP: the tasks reach them through
the real clients (``google-cloud-aiplatform``'s REST transport, ``google-cloud-storage``),
built from an Airflow connection (``api_endpoint``) and ``STORAGE_EMULATOR_HOST``. Each
custom job runs costaware's container command in a process of its own, reading
``job.json`` and ``train.parquet`` through the stand-in's "FUSE" folder and writing
``model.pkl`` where Vertex's ``AIP_MODEL_DIR`` says. ``dag.test()`` runs the deferred task's
trigger in its own event loop, as the triggerer would. COSTAWARE_STORAGE stays on this
machine: only the run's training folder and the job's output are on Cloud Storage.
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from costaware.models.registry import BORN_TAG
from costaware.models.scoring import load_model_file, predict_scores
from costaware.settings import Settings

from ..conftest import ROOT
from ..models.training.vertex_server import FakeGCS, FakeVertex
from .harness import WEEKS, Harness

pytestmark = [pytest.mark.airflow, pytest.mark.slow]
CONN = "costaware_vertex_retrain"  # its own id: Airflow caches connections per id
SPOT = 0.047  # $/h of n2-standard-4 on Spot VMs in the model's price table below
ON_DEMAND = 0.19
IMAGE = "us-central1-docker.pkg.dev/acme-ml/costaware/trainer:test"


def _models(folder: Path, base: str) -> Path:
    raw = yaml.safe_load((ROOT / "include" / "models" / "elec2.yaml").read_text())
    raw["training"].update(
        # One labelled week (336 rows) to train on, one held out: the first model comes at
        # week 2 instead of week 3 (one DAG run fewer; nothing here depends on more rows).
        min_train_rows=300,
        backend="vertex",
        instance_type="n2-standard-4",
        region="us-central1",
        vertex={
            "project": "acme-ml",
            "image_uri": IMAGE,
            "gcp_conn_id": CONN,
            "poll_seconds": 1,
            "base_output_uri": base,
        },
    )
    raw["cost_policy"]["price_source_options"] = {"table": {"n2-standard-4": [ON_DEMAND, SPOT]}}
    folder.mkdir(parents=True)
    (folder / "elec2.yaml").write_text(yaml.safe_dump(raw))
    return folder


def _time(text: str) -> float:
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


@pytest.fixture(scope="module")
def run(airflow_home: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    home = tmp_path_factory.mktemp("vertex-dag")
    bucket = f"costaware-{uuid.uuid4().hex[:8]}"
    mp = pytest.MonkeyPatch()
    for var in ("COSTAWARE_STORAGE", "COSTAWARE_STORAGE_CONN_ID", "COSTAWARE_DB_URL"):
        mp.delenv(var, raising=False)
    mp.delenv("COSTAWARE_MLFLOW_URI", raising=False)
    gcs = FakeGCS().start()
    vertex = FakeVertex(gcs).start()
    try:
        extra = {"is_anonymous": True, "project": "acme-ml", "api_endpoint": vertex.url}
        conn = {"conn_type": "google_cloud_platform", "extra": extra}
        mp.setenv(f"AIRFLOW_CONN_{CONN.upper()}", json.dumps(conn))
        mp.setenv("STORAGE_EMULATOR_HOST", gcs.url)  # google-cloud-storage's own switch
        mp.setenv("COSTAWARE_HOME", str(home / "home"))
        mp.setenv("COSTAWARE_MODELS_DIR", str(_models(home / "models", f"gs://{bucket}/vertex")))
        h = Harness(Settings.from_env())
        # Weeks 0-2 as `costaware replay elec2` runs them: labels arrive a week late; week 2
        # has two labelled weeks, one to train the first model on (on Vertex), one to hold out.
        states = [h.week(i) for i in range(3)]
        yield {"harness": h, "states": states, "gcs": gcs, "vertex": vertex, "bucket": bucket}
    finally:
        vertex.stop()
        gcs.stop()
        mp.undo()


def test_a_vertex_trained_challenger_is_registered_evaluated_and_promoted(
    run: dict[str, Any],
) -> None:
    h, gcs, vertex, bucket = run["harness"], run["gcs"], run["vertex"], run["bucket"]
    logs = [log.read_text()[-800:] for log in vertex.logs.values()]
    assert run["states"] == ["success"] * 3, logs
    decision = h.decision(2)
    assert decision is not None and decision["outcome"] == "promoted", decision

    # One custom job, the week-2 run's: Spot, costaware's container, reading the data and the
    # job the DAG wrote to the run's folder under base_output_uri.
    assert len(vertex.jobs) == 1
    ((name, job),) = vertex.jobs.items()
    assert job["state"] == "JOB_STATE_SUCCEEDED"
    spec = job["jobSpec"]
    assert spec["scheduling"]["strategy"] in ("SPOT", 4)  # REST sends enums as numbers
    pool = spec["workerPoolSpecs"][0]
    assert pool["machineSpec"]["machineType"] == "n2-standard-4"
    assert pool["containerSpec"]["imageUri"] == IMAGE
    env = {e["name"]: e["value"] for e in pool["containerSpec"]["env"]}
    folder = env["COSTAWARE_TRAIN_URI"].removesuffix("/train.parquet")
    assert folder.startswith(f"gs://{bucket}/vertex/runs/elec2/")
    assert env["COSTAWARE_JOB_URI"] == f"{folder}/job.json"
    assert job["labels"]["model"] == "elec2"
    # The data on GCS is the training window the challenger is registered with, never a
    # held-out batch.
    import pandas as pd

    ctx = h.ctx
    champion = h.champion()
    assert champion is not None
    tags = ctx.registry.version_tags("elec2", champion)
    on_gcs = gcs.root / folder.removeprefix("gs://")
    train = pd.read_parquet(on_gcs / "train.parquet")
    assert set(train["batch_id"]) == set(tags["costaware.train_batches"].split(","))
    assert not set(train["batch_id"]) & set(tags["costaware.holdout_batches"].split(","))
    assert json.loads((on_gcs / "job.json").read_text())["features"] == h.cfg.feature_names
    # Waited for by the trigger, polling the job by its resource name.
    assert vertex.calls.count(("GET", f"/v1/{name}")) >= 2, vertex.calls

    # The champion is the model Vertex made: the registry's copy scores the week exactly as
    # the model.pkl the container wrote to AIP_MODEL_DIR on GCS.
    assert tags[BORN_TAG] == WEEKS[2][0]
    out = spec["baseOutputDirectory"]["outputUriPrefix"].rstrip("/")
    assert out.startswith(f"gs://{bucket}/vertex/costaware-elec2-")
    from_gcs = load_model_file(gcs.root / f"{out}/model/model.pkl".removeprefix("gs://"))
    registered = ctx.registry.load("elec2", champion)
    week, features = WEEKS[2][1], h.cfg.feature_names
    assert (
        predict_scores(registered, week, features) == predict_scores(from_gcs, week, features)
    ).all()

    # Its cost is in the ledger: the job's runtime (start to end, as Vertex reports it) at
    # the Spot price of the table.
    rows = ctx.ledger.costs(model="elec2", purpose="retrain")
    assert [(r["status"], r["capacity"]) for r in rows] == [("final", "spot")]
    runtime = _time(job["endTime"]) - _time(job["startTime"])
    assert rows[0]["usd"] == pytest.approx(runtime * SPOT / 3600, rel=1e-6)
    assert rows[0]["tags"]["team"] == "energy-forecasting"
