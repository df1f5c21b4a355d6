"""The deferrable Vertex training task under ``dag.test()``: ``VertexSpotTrainingOperator``
creates the custom job on ``vertex_server.py`` through an Airflow connection, defers to
``VertexCustomJobTrigger`` (which ``dag.test()`` runs in its own event loop, as the triggerer
would) and, when it fires, prices the job into the ledger. The retrain DAG does not wire
this task yet (README: a ``gs://`` COSTAWARE_STORAGE needs gcsfs and the Google provider);
this proves the operator's own wiring: create → defer → trigger → finish, with the cost in
the ledger, keyed by the run."""

from __future__ import annotations

import io
import json
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import yaml

from costaware.settings import Settings

from .. import factories
from ..conftest import ROOT
from ..models.training.vertex_server import FakeGCS, FakeVertex

pytestmark = [pytest.mark.airflow, pytest.mark.slow]
CONN = "costaware_vertex_dag"
BUCKET = "costaware-vertex-dag"
FEATURES = ["period", "nswdemand", "vicprice", "vicdemand", "transfer"]


@pytest.fixture(scope="module")
def fakes() -> Iterator[tuple[FakeGCS, FakeVertex]]:
    gcs = FakeGCS().start()
    vertex = FakeVertex(gcs).start()
    try:
        yield gcs, vertex
    finally:
        vertex.stop()
        gcs.stop()


LOCAL_BUNDLE = "airflow.dag_processing.bundles.local.LocalDagBundle"
DAG_FILE = """
import json
import types
from pathlib import Path

from airflow.sdk import DAG

from costaware.app.vertex_training import VertexSpotTrainingOperator
from costaware.steps.context import StepContext

spec = json.loads((Path(__file__).parent / "spec.json").read_text())
with DAG("vertex_training_task", start_date=dt.datetime(2026, 1, 1), schedule=None) as dag:
    VertexSpotTrainingOperator(
        task_id="train_on_vertex", cfg=StepContext.for_model("elec2").cfg, job=spec
    )
"""


def _models(folder: Path) -> Path:
    raw = yaml.safe_load((ROOT / "include" / "models" / "elec2.yaml").read_text())
    raw["training"].update(
        backend="vertex",
        instance_type="n2-standard-4",
        region="us-central1",
        vertex={
            "project": "acme-ml",
            "image_uri": "us-central1-docker.pkg.dev/acme-ml/costaware/trainer:test",
            "gcp_conn_id": CONN,
            "poll_seconds": 1,
        },
    )
    folder.mkdir(parents=True)
    (folder / "elec2.yaml").write_text(yaml.safe_dump(raw))
    return folder


def test_the_vertex_task_defers_and_records_the_jobs_cost(
    airflow_home: Path,
    fakes: tuple[FakeGCS, FakeVertex],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from costaware.steps.context import StepContext

    gcs, vertex = fakes
    extra = {"is_anonymous": True, "project": "acme-ml", "api_endpoint": vertex.url}
    conn = {"conn_type": "google_cloud_platform", "extra": extra}
    monkeypatch.setenv(f"AIRFLOW_CONN_{CONN.upper()}", json.dumps(conn))
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", gcs.url)  # google-cloud-storage's own switch
    monkeypatch.setenv("COSTAWARE_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("COSTAWARE_MODELS_DIR", str(_models(tmp_path / "models")))
    for var in ("COSTAWARE_DB_URL", "COSTAWARE_MLFLOW_URI", "COSTAWARE_STORAGE"):
        monkeypatch.delenv(var, raising=False)
    settings = Settings.from_env()

    # What prepare_training leaves in the run's folder: the data and the job.
    frame = pd.concat([part for _, part in factories.batches("elec2")[:2]])
    frame["class"] = frame["class"].astype(int)
    folder = f"gs://{BUCKET}/state/work/elec2/dagrun"
    spec: dict[str, Any] = {
        "algorithm": "xgboost",
        "train_path": f"{folder}/train.parquet",
        "features": FEATURES,
        "target": "class",
        "params": {"max_depth": 3},
        "num_boost_round": 20,
        "chunk_rounds": 10,
        "seed": 5,
        "workdir": str(tmp_path / "unused"),
        "mirror": folder,
    }
    bucket = gcs.client().bucket(BUCKET)
    buf = io.BytesIO()
    frame[[*FEATURES, "class"]].to_parquet(buf)
    bucket.blob("state/work/elec2/dagrun/train.parquet").upload_from_string(buf.getvalue())
    bucket.blob("state/work/elec2/dagrun/job.json").upload_from_string(json.dumps(spec))

    # dag.test() runs a DAG it finds in a bundle: this one, in a bundle of its own.
    bundle = tmp_path / "bundle"
    bundle.mkdir()
    (bundle / "spec.json").write_text(json.dumps(spec))
    (bundle / "vertex_training_task.py").write_text(DAG_FILE)
    bundles = [
        {"name": "dags-folder", "classpath": LOCAL_BUNDLE, "kwargs": {}},
        {"name": "vertex-test", "classpath": LOCAL_BUNDLE, "kwargs": {"path": str(bundle)}},
    ]
    monkeypatch.setenv("AIRFLOW__DAG_PROCESSOR__DAG_BUNDLE_CONFIG_LIST", json.dumps(bundles))
    module = types.ModuleType("vertex_training_task")
    module.__file__ = str(bundle / "vertex_training_task.py")
    exec(compile(DAG_FILE, module.__file__, "exec"), module.__dict__)  # noqa: S102
    dag = module.dag
    run = dag.test()

    assert run.state == "success", [(ti.task_id, ti.state) for ti in run.get_task_instances()]
    ((name, job),) = vertex.jobs.items()
    assert job["state"] == "JOB_STATE_SUCCEEDED"
    # The trigger polled the job by its resource name while the task was deferred.
    assert vertex.calls.count(("GET", f"/v1/{name}")) >= 2, vertex.calls
    ledger = StepContext.for_model("elec2", settings=settings).ledger
    rows = ledger.costs(model="elec2", purpose="retrain")
    assert [(r["status"], r["capacity"]) for r in rows] == [("final", "spot")]
    assert rows[0]["usd"] > 0 and rows[0]["tags"]["model"] == "elec2"
