"""The ``vertex`` backend: a Vertex AI custom job on Spot VMs.

The library speaks to Vertex through a ``google.cloud.aiplatform_v1.JobServiceClient`` it is
handed (``client_for`` builds one from the Airflow connection's credentials; tests point its
REST transport at a local stand-in). ``google-cloud-aiplatform`` is imported lazily: it takes
seconds to import and DAG files must parse fast.

A job is ``job_spec.scheduling.strategy = SPOT`` with ``restart_job_on_worker_restart``:
Vertex restarts a preempted worker and the container (``vertex_container``) resumes from the
checkpoints it keeps in ``AIP_CHECKPOINT_DIR`` (``<base_output_directory>/checkpoints``, a
GCS folder Vertex names for it). Vertex has no client-chosen job id, so the job's display
name is its idempotent key (derived from the DAG run and task, as SageMaker's job name) and
it carries the label ``costaware-job``: ``submit`` lists jobs by that label first and
attaches to the one it finds, never creating a second.

Vertex reports no billable time and no preemption count: the cost is the job's runtime
(``end_time − start_time``) × the machine type's spot price from the PriceSource, said so in
the result's notes; the container counts the restarts it resumed from (``resumes`` in the
model folder's ``metrics.json``), read back through an optional GCS client.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import re
from typing import Any

from costaware.config import VertexSpec
from costaware.costs.base import Capacity, PriceSource
from costaware.errors import ConfigError, TrainingError
from costaware.models.training.base import (
    Attempt,
    AttemptHook,
    JobStatus,
    TrainingJob,
    TrainingResult,
)
from costaware.models.training.sagemaker import job_name
from costaware.models.training.sagemaker_container import JOB_FILE, MODEL_FILE

log = logging.getLogger(__name__)

# Vertex's JobState → the contract's state. FAILED, CANCELLED and EXPIRED are task failures
# (billed for the time they ran); anything else (QUEUED, PENDING, RUNNING, CANCELLING,
# PAUSED, UPDATING, a state added later) keeps waiting until the deadline.
TERMINAL = {
    "JOB_STATE_SUCCEEDED": "completed",
    "JOB_STATE_FAILED": "failed",
    "JOB_STATE_CANCELLED": "failed",
    "JOB_STATE_EXPIRED": "failed",
    "JOB_STATE_PARTIALLY_SUCCEEDED": "failed",
}
JOB_LABEL = "costaware-job"
METRICS_FILE = "metrics.json"
_LABEL_BAD = re.compile(r"[^a-z0-9_-]")


def label(text: str) -> str:
    """A tag key or value as a Vertex label: lower-cased, every character outside
    ``[a-z0-9_-]`` replaced by ``_``, cut to 63 characters (Google's label rules); a key must
    start with a letter, so one that does not gets a ``t`` in front."""
    return _LABEL_BAD.sub("_", str(text).lower())[:63]


def labels_of(tags: dict[str, str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for k, v in sorted(tags.items()):
        key = label(k)
        if not key[:1].isalpha():
            key = ("t" + key)[:63]
        if key in out:
            raise ConfigError(
                f"tags {sorted(tags)} collide as Vertex labels ({key!r} twice after "
                "lower-casing and replacing characters outside [a-z0-9_-]); rename one tag"
            )
        out[key] = label(v)
    return out


def job_key(job: TrainingJob) -> str:
    """The label value that finds the job again: a digest of its id (DAG run + task)."""
    return hashlib.sha256(job.job_id.encode()).hexdigest()[:32]


def gs_uri(text: str) -> str:
    """``gs://bucket/key`` from a storage URL (Airflow may write ``gs://conn_id@bucket/key``)."""
    m = re.match(r"^gs://(?:[^@/]+@)?(.+)$", text)
    if m is None:
        raise ConfigError(f"not a gs:// URL: {text!r}")
    return "gs://" + m.group(1).rstrip("/")


def client_for(conn_id: str, region: str) -> Any:
    """A JobServiceClient over REST from the Airflow connection ``conn_id`` (its documented
    extras: ``key_path``/``keyfile_dict``/``is_anonymous``, ``api_endpoint`` for a stand-in),
    reaching the region's endpoint ``{region}-aiplatform.googleapis.com`` otherwise."""
    from google.cloud import aiplatform_v1

    from costaware.costs.builders import google_credentials

    access = google_credentials(conn_id)
    endpoint = access.api_endpoint or f"{region}-aiplatform.googleapis.com"
    return aiplatform_v1.JobServiceClient(
        transport="rest",
        credentials=access.credentials,
        client_options={"api_endpoint": endpoint},
    )


def storage_client_for(conn_id: str) -> Any:
    """A ``google.cloud.storage.Client`` with the Airflow connection ``conn_id``'s
    credentials (as ``client_for``); ``STORAGE_EMULATOR_HOST``, the client's own switch,
    points it at a stand-in."""
    import google.cloud.storage as storage

    from costaware.costs.builders import google_credentials

    access = google_credentials(conn_id)
    # Bucket and object reads need no project; "-" keeps the client from looking one up.
    return storage.Client(project=access.project or "-", credentials=access.credentials)


def gcs_blob(storage_client: Any, uri: str) -> Any:
    """The blob of ``gs://bucket/key`` through ``storage_client``."""
    bucket, _, key = gs_uri(uri).removeprefix("gs://").partition("/")
    if not key:
        raise ConfigError(f"{uri!r} names a bucket, not an object: expected gs://bucket/key")
    return storage_client.bucket(bucket).blob(key)


class VertexBackend:
    name = "vertex"

    def __init__(
        self,
        client: Any,
        price_source: PriceSource,
        spec: VertexSpec,
        *,
        region: str,
        instance_type: str,
        spot: bool,
        storage_client: Any = None,
    ) -> None:
        self.client = client
        self.price_source = price_source
        self.spec = spec
        self.region = region
        self.instance_type = instance_type
        self.spot = spot
        # google.cloud.storage.Client: reads the container's metrics.json; None: no metrics.
        self.storage_client = storage_client

    @property
    def parent(self) -> str:
        return f"projects/{self.spec.project}/locations/{self.region}"

    # -- the request ---------------------------------------------------------------------
    def output_dir(self, job: TrainingJob) -> str:
        if self.spec.base_output_uri:
            return f"{gs_uri(self.spec.base_output_uri)}/{job_name(job)}"
        if job.mirror is None or not job.mirror.startswith("gs://"):
            raise ConfigError(
                f"Vertex needs a gs:// folder for the model and checkpoints of job "
                f"{job.job_id}, but the job's storage is {job.mirror or 'this machine'}: set "
                "COSTAWARE_STORAGE to gs://bucket/prefix or training.vertex.base_output_uri"
            )
        return gs_uri(job.mirror)

    def request(self, job: TrainingJob) -> Any:
        """The ``CustomJob`` of a job. Spot without checkpoints is refused: a preempted job
        would start over and be paid again."""
        from google.cloud import aiplatform_v1 as v1
        from google.protobuf import duration_pb2

        if not job.train_path.startswith("gs://"):
            raise ConfigError(
                f"Vertex reads training data from GCS; job {job.job_id} has "
                f"{job.train_path!r}. Set COSTAWARE_STORAGE to a gs:// root"
            )
        if self.spot and not self.spec.checkpoints:
            raise ConfigError(
                "Vertex Spot without checkpoints is refused: a preempted job would start "
                "over and pay again; set training.vertex.checkpoints: true or "
                "training.spot.enabled: false"
            )
        out = self.output_dir(job)
        job_file = f"{gs_uri(job.mirror)}/{JOB_FILE}" if job.mirror else ""
        env = {"COSTAWARE_JOB_URI": job_file, "COSTAWARE_TRAIN_URI": gs_uri(job.train_path)}
        scheduling = v1.Scheduling(
            strategy=v1.Scheduling.Strategy.SPOT if self.spot else v1.Scheduling.Strategy.STANDARD,
            restart_job_on_worker_restart=True,
            timeout=duration_pb2.Duration(seconds=int(self.spec.timeout_minutes * 60)),
        )
        if self.spot:
            scheduling.max_wait_duration = duration_pb2.Duration(
                seconds=int(self.spec.max_wait_minutes * 60)
            )
        pool = v1.WorkerPoolSpec(
            machine_spec=v1.MachineSpec(machine_type=self.instance_type),
            replica_count=self.spec.replica_count,
            disk_spec=v1.DiskSpec(boot_disk_size_gb=self.spec.boot_disk_gb),
            container_spec=v1.ContainerSpec(
                image_uri=self.spec.image_uri,
                command=list(self.spec.command),
                env=[v1.EnvVar(name=k, value=v) for k, v in sorted(env.items())],
            ),
        )
        return v1.CustomJob(
            display_name=job_name(job),
            job_spec=v1.CustomJobSpec(
                worker_pool_specs=[pool],
                scheduling=scheduling,
                # Vertex derives AIP_MODEL_DIR (…/model) and AIP_CHECKPOINT_DIR
                # (…/checkpoints) from it and hands both to the container.
                base_output_directory=v1.GcsDestination(output_uri_prefix=out),
                service_account=self.spec.service_account or "",
            ),
            labels={**labels_of(job.tags), JOB_LABEL: job_key(job)},
        )

    # -- the contract ----------------------------------------------------------------------
    def submit(self, job: TrainingJob, on_attempt: AttemptHook | None = None) -> str:
        """Create the custom job, or attach to the one an earlier try created (found by its
        ``costaware-job`` label)."""
        req = self.request(job)
        found = self._find(job_key(job))
        if found is not None:
            log.info("Vertex custom job %s exists: attaching to it, not starting another", found)
            return found
        created = self.client.create_custom_job(parent=self.parent, custom_job=req)
        log.info(
            "created Vertex custom job %s (%s) on %s × %d (%s)",
            created.name,
            req.display_name,
            self.instance_type,
            self.spec.replica_count,
            "Spot" if self.spot else "standard",
        )
        if on_attempt is not None:
            on_attempt(self._attempt(None, "running"))
        return str(created.name)

    def poll(self, handle: str) -> JobStatus:
        got = self._get(handle)
        if got is None:
            return JobStatus(handle, "failed", "NotFound", f"no Vertex custom job {handle}")
        return _status(handle, got)

    def cancel(self, handle: str) -> None:
        got = self._get(handle)
        if got is not None and not _status(handle, got).terminal:
            self.client.cancel_custom_job(name=got.name)

    def result(self, handle: str, on_attempt: AttemptHook | None = None) -> TrainingResult:
        got = self._get(handle)
        if got is None:
            raise TrainingError(f"no Vertex custom job {handle}")
        status = _status(handle, got)
        if not status.terminal:
            raise TrainingError(f"Vertex custom job {handle} has not ended: {status.detail}")
        pool = got.job_spec.worker_pool_specs[0]
        machine = pool.machine_spec.machine_type or self.instance_type
        count = int(pool.replica_count or 1)
        spot = got.job_spec.scheduling.strategy.name == "SPOT"
        capacity: Capacity = "spot" if spot else "on_demand"
        # Vertex bills Spot VMs at the spot price for the time they ran; it reports no
        # billable seconds, so runtime stands in for them.
        price = self.price_source.price(machine, self.region, capacity)
        runtime = _runtime_s(got)
        notes = [
            f"priced at {price.usd_per_hour:.4f} $/h ({price.source}) × {count} replica(s)",
            "Vertex AI reports no billable time for a custom job: billed its runtime "
            f"({runtime:.0f} s, start to end) at the {capacity} price",
        ]
        usd = runtime * count * price.usd_per_hour / 3600
        saved: float | None = 0.0
        if spot:
            try:
                od = self.price_source.price(machine, self.region, "on_demand")
                saved = runtime * count * (od.usd_per_hour - price.usd_per_hour) / 3600
            except Exception as exc:  # noqa: BLE001 - unknown is not zero: said in the notes
                saved = None
                notes.append(f"no on-demand price to compare with ({exc}): saving unknown")
        failed = ""
        if status.detail == "JOB_STATE_FAILED":
            # cloud.google.com/vertex-ai/pricing: training that fails for a reason other than
            # a user's cancellation is not billed. Not confirmed for custom jobs here: the
            # runtime stays recorded (an upper bound) until the billing export reconciles it.
            failed = (
                "Vertex's pricing page says failed training (not cancelled by a user) is not "
                "billed: this cost is an upper bound until the billing export reconciles it. "
            )
            notes.append(failed)
        out = got.job_spec.base_output_directory.output_uri_prefix.rstrip("/")
        extra = self._metrics(f"{out}/model/{METRICS_FILE}", notes)
        resumes = int(extra.get("resumes", 0))
        note = f"Vertex {status.detail}" + (f": {status.reason}" if status.reason else "")
        note = failed + note
        attempt = Attempt(
            capacity=capacity,
            start_chunk=0,
            end_chunk=0,
            seconds=runtime,
            billed_seconds=runtime * count,
            usd=usd,
            interrupted=False,
            number=0,
            status="final",
            note=note[:500],
            started_at=_epoch(got.start_time) or _epoch(got.create_time),
            reclaims=resumes,
        )
        if on_attempt is not None:
            on_attempt(attempt)
        if status.state != "completed":
            raise TrainingError(
                f"Vertex custom job {handle} ended {status.detail}"
                + (f": {status.reason}" if status.reason else "")
                + f" (billed ${usd:.4f} for {runtime:.0f} s)"
            )
        labels = {k: v for k, v in got.labels.items() if k != JOB_LABEL}
        return TrainingResult(
            model_path=f"{out}/model/{MODEL_FILE}",
            algorithm="script",
            attempts=[attempt],
            price_source=price.source,
            instance_type=machine,
            metrics={k: float(v) for k, v in extra.get("metrics", {}).items()},
            tags=labels,
            saved_usd=saved,
            notes=notes,
            handle=str(got.name),
        )

    # -- helpers -----------------------------------------------------------------------------
    def _find(self, key: str) -> str | None:
        """The oldest job carrying ``costaware-job=key`` (two concurrent tries could both
        have created one; the oldest is the one every later try attaches to)."""
        pager = self.client.list_custom_jobs(
            request={"parent": self.parent, "filter": f'labels.{JOB_LABEL}="{key}"'}
        )
        jobs = sorted(pager, key=lambda j: (_epoch(j.create_time) or 0.0, j.name))
        if len(jobs) > 1:
            log.warning("%d Vertex jobs carry %s=%s: using the oldest", len(jobs), JOB_LABEL, key)
        return str(jobs[0].name) if jobs else None

    def _get(self, handle: str) -> Any:
        """The job by resource name, or by its display name (the idempotent key a retry
        knows); None when Vertex says it does not exist (any other error is raised)."""
        from google.api_core.exceptions import NotFound

        if not handle.startswith("projects/"):
            pager = self.client.list_custom_jobs(
                request={"parent": self.parent, "filter": f'display_name="{handle}"'}
            )
            jobs = sorted(pager, key=lambda j: (_epoch(j.create_time) or 0.0, j.name))
            return jobs[0] if jobs else None
        try:
            return self.client.get_custom_job(name=handle)
        except NotFound:
            return None

    def _metrics(self, uri: str, notes: list[str]) -> dict[str, Any]:
        if self.storage_client is None:
            notes.append("no GCS client given: the container's metrics and resumes not read")
            return {}
        bucket, _, key = uri.removeprefix("gs://").partition("/")
        blob = self.storage_client.bucket(bucket).blob(key)
        if not blob.exists():
            notes.append(f"{uri} absent: the container wrote no metrics (a job that ended early)")
            return {}
        return dict(json.loads(blob.download_as_bytes()))

    def _attempt(self, usd: float | None, status: str) -> Attempt:
        return Attempt.of_cloud_job(self.spot, usd, status)


def _status(handle: str, job: Any) -> JobStatus:
    raw = job.state.name
    state = TERMINAL.get(raw, "running")
    reason = str(job.error.message) if job.error and job.error.message else ""
    if raw == "JOB_STATE_EXPIRED" and not reason:
        reason = "Spot capacity did not run the job within scheduling.max_wait_duration"
    elif raw == "JOB_STATE_CANCELLED" and not reason:
        reason = "the job was cancelled before it completed"
    return JobStatus(handle, state, raw, reason)  # type: ignore[arg-type]


def _epoch(value: Any) -> float | None:
    if isinstance(value, dt.datetime) and value.timestamp() > 0:
        return value.timestamp()
    return None


def _runtime_s(job: Any) -> float:
    start = _epoch(job.start_time) or _epoch(job.create_time)
    end = _epoch(job.end_time) or _epoch(job.update_time)
    return max(0.0, end - start) if start is not None and end is not None else 0.0
