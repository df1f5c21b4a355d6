"""A small SageMaker for training jobs that really train: SageMaker's JSON 1.1 protocol over
HTTP (``X-Amz-Target: SageMaker.<Operation>``), for the calls the backend, the Amazon
provider's hook and its ``SageMakerTrigger`` make — ``CreateTrainingJob``,
``DescribeTrainingJob``, ``ListTags``, ``StopTrainingJob``.

moto's SageMaker stores a job and calls it Completed at once: nothing trains, no artifact is
written, no billing field is set (see ``cloud.py``). Here each job is run the way a
script-mode container is, as SageMaker documents it: its input channels are downloaded from
S3 (moto's server) into ``input/data/<channel>/``, its checkpoints restored from
``CheckpointConfig.S3Uri``, and costaware's entry point
(``python -m costaware.models.training.sagemaker_container``) runs in a process of its own
with ``SM_CHANNEL_<NAME>``, ``SM_MODEL_DIR`` and ``SM_HPS`` set (the checkpoint folder,
``/opt/ml/checkpoints`` in a container, is a temporary folder here: its path is given in
``COSTAWARE_CHECKPOINT_DIR``). The model folder is tarred to
``<S3OutputPath>/<job>/output/model.tar.gz``.

Managed spot: with ``reclaim_after_chunk=N`` the first run gets the reclaim notice (SIGTERM)
once N chunks are checkpointed — the worker holds there until the notice comes, so the
reclaim always lands at the same point — the checkpoints go to S3, the local folder is wiped
and the job restarts from what S3 holds, with ``Interrupted`` in its transitions.
``TrainingTimeInSeconds`` is the wall time the job trained (whole seconds, at least 1);
``BillableTimeInSeconds`` for a spot job is ``ceil(training × billable_share)`` — this
server's stand-in for the spot discount (real SageMaker bills the discounted seconds; the
share is a fixed test input, not a measured discount).
"""

from __future__ import annotations

import datetime as dt
import io
import json
import math
import os
import shutil
import signal
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

ACCOUNT, REGION = "123456789012", "us-east-1"
KEYS = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}


def _split(uri: str) -> tuple[str, str]:
    bucket, _, key = uri.removeprefix("s3://").partition("/")
    return bucket, key


class FakeSageMaker:
    """Start with ``start()``, point a client at ``url``; ``jobs`` holds each job's
    description (SageMaker's field names), ``calls`` each request's operation and agent."""

    def __init__(
        self,
        s3_endpoint: str,
        *,
        reclaim_after_chunk: int | None = None,
        billable_share: float = 0.3,
    ) -> None:
        self.s3_endpoint = s3_endpoint
        self.reclaim_after_chunk = reclaim_after_chunk
        self.billable_share = billable_share
        self.jobs: dict[str, dict[str, Any]] = {}
        self.calls: list[tuple[str, str]] = []
        self.logs: dict[str, Path] = {}
        self._stop: set[str] = set()
        self._procs: dict[str, subprocess.Popen[bytes]] = {}
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        self._server: ThreadingHTTPServer | None = None
        self.folder = Path(tempfile.mkdtemp(prefix="fake-sagemaker-"))

    # -- the HTTP side -------------------------------------------------------------------
    @property
    def url(self) -> str:
        assert self._server is not None
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> FakeSageMaker:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:  # keep test output quiet
                pass

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                op = self.headers.get("X-Amz-Target", "").removeprefix("SageMaker.")
                fake.calls.append((op, self.headers.get("User-Agent", "")))
                status, answer = fake._route(op, json.loads(body or b"{}"))
                raw = json.dumps(answer, default=_json_default).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/x-amz-json-1.1")
                self.send_header("Content-Length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        with self._lock:
            self._stop.update(self.jobs)
            for proc in self._procs.values():
                if proc.poll() is None:
                    proc.kill()
        for t in self._threads:
            t.join(60)
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        shutil.rmtree(self.folder, ignore_errors=True)

    def _route(self, op: str, req: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        if op == "CreateTrainingJob":
            return self._create(req)
        if op == "DescribeTrainingJob":
            job = self.jobs.get(req.get("TrainingJobName", ""))
            if job is None:
                return _error("ValidationException", "Requested resource not found.")
            with self._lock:
                return 200, json.loads(json.dumps(job, default=_json_default))
        if op == "ListTags":
            job = next(
                (j for j in self.jobs.values() if j["TrainingJobArn"] == req["ResourceArn"]), None
            )
            return 200, {"Tags": list(job["Tags"]) if job else []}
        if op == "StopTrainingJob":
            name = req.get("TrainingJobName", "")
            if name not in self.jobs:
                return _error("ValidationException", "Requested resource not found.")
            with self._lock:
                self._stop.add(name)
                if self.jobs[name]["TrainingJobStatus"] == "InProgress":
                    self.jobs[name]["TrainingJobStatus"] = "Stopping"
                proc = self._procs.get(name)
            if proc is not None and proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
            return 200, {}
        return _error("UnknownOperationException", f"this fake has no {op}")

    def _create(self, req: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        name = req["TrainingJobName"]
        with self._lock:
            if name in self.jobs:  # as SageMaker: a name is taken once per account/region
                return _error("ResourceInUse", f"Training job {name} already exists")
            arn = f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:training-job/{name}"
            now = time.time()
            self.jobs[name] = {
                **{k: v for k, v in req.items() if k != "Tags"},
                "Tags": req.get("Tags", []),
                "TrainingJobArn": arn,
                "TrainingJobStatus": "InProgress",
                "SecondaryStatus": "Starting",
                "CreationTime": now,
                "LastModifiedTime": now,
                "SecondaryStatusTransitions": [],
                "EnableManagedSpotTraining": bool(req.get("EnableManagedSpotTraining")),
            }
        t = threading.Thread(target=self._run, args=(name,), daemon=True)
        self._threads.append(t)
        t.start()
        return 200, {"TrainingJobArn": arn}

    # -- the "container" -----------------------------------------------------------------
    def _s3(self) -> Any:
        import boto3

        return boto3.client("s3", endpoint_url=self.s3_endpoint, region_name=REGION, **KEYS)

    def _set(self, name: str, **fields: Any) -> None:
        with self._lock:
            job = self.jobs[name]
            if "SecondaryStatus" in fields and fields["SecondaryStatus"] != job["SecondaryStatus"]:
                job["SecondaryStatusTransitions"].append(
                    {"Status": fields["SecondaryStatus"], "StartTime": time.time()}
                )
            job.update(fields, LastModifiedTime=time.time())

    def _download(self, uri: str, dest: Path) -> None:
        s3, (bucket, prefix) = self._s3(), _split(uri)
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
            for obj in page.get("Contents", []):
                rel = obj["Key"][len(prefix) :].lstrip("/") or obj["Key"].rsplit("/", 1)[-1]
                target = dest / rel
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(s3.get_object(Bucket=bucket, Key=obj["Key"])["Body"].read())

    def _upload(self, folder: Path, uri: str) -> None:
        s3, (bucket, prefix) = self._s3(), _split(uri)
        for path in sorted(p for p in folder.rglob("*") if p.is_file()):
            key = f"{prefix}/{path.relative_to(folder).as_posix()}"
            s3.put_object(Bucket=bucket, Key=key, Body=path.read_bytes())

    def _run(self, name: str) -> None:
        try:
            self._train(name)
        except Exception as exc:  # the job fails as SageMaker would say, never silently
            self._set(
                name,
                TrainingJobStatus="Failed",
                SecondaryStatus="Failed",
                FailureReason=f"InternalServerError: {exc}"[:1024],
                TrainingEndTime=time.time(),
            )

    def _train(self, name: str) -> None:
        job = self.jobs[name]
        root = self.folder / name
        data, model_dir, ckpt = root / "input" / "data", root / "model", root / "checkpoints"
        self._set(name, SecondaryStatus="Downloading")
        for ch in job.get("InputDataConfig", []):
            self._download(ch["DataSource"]["S3DataSource"]["S3Uri"], data / ch["ChannelName"])
        ckpt_uri = job.get("CheckpointConfig", {}).get("S3Uri")
        if ckpt_uri:
            self._download(ckpt_uri, ckpt)
        ckpt.mkdir(parents=True, exist_ok=True)
        model_dir.mkdir(parents=True, exist_ok=True)
        env = {
            **os.environ,
            **{
                f"SM_CHANNEL_{ch['ChannelName'].upper()}": str(data / ch["ChannelName"])
                for ch in job.get("InputDataConfig", [])
            },
            "SM_MODEL_DIR": str(model_dir),
            "SM_HPS": json.dumps(job.get("HyperParameters", {})),
            "COSTAWARE_CHECKPOINT_DIR": str(ckpt),
        }
        started = time.time()
        self._set(name, SecondaryStatus="Training", TrainingStartTime=started)
        log = root / "container.log"
        self.logs[name] = log
        reclaim = self.reclaim_after_chunk if job["EnableManagedSpotTraining"] else None
        while True:
            run_env = dict(env)
            if reclaim is not None:  # the worker waits there for the notice: a fixed point
                run_env["COSTAWARE_SIM_RECLAIM_AFTER_CHUNK"] = str(reclaim)
            with log.open("ab") as out:
                proc = subprocess.Popen(
                    [sys.executable, "-m", "costaware.models.training.sagemaker_container"],
                    env=run_env,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    cwd=root,
                )
            with self._lock:
                self._procs[name] = proc
            if reclaim is None:
                rc = proc.wait()
                break
            progress = ckpt / "progress.json"
            while proc.poll() is None and not (
                progress.exists() and json.loads(progress.read_text())["chunks_done"] >= reclaim
            ):
                time.sleep(0.05)
            proc.send_signal(signal.SIGTERM)  # the two-minute notice of a spot reclaim
            proc.wait()
            self._set(name, SecondaryStatus="Interrupted")
            if ckpt_uri:  # what SageMaker keeps of a reclaimed instance: S3's copy
                self._upload(ckpt, ckpt_uri)
                shutil.rmtree(ckpt)
                self._download(ckpt_uri, ckpt)
                ckpt.mkdir(parents=True, exist_ok=True)
            self._set(name, SecondaryStatus="Training")
            reclaim = None
        trained = max(1, math.ceil(time.time() - started))
        billable = (
            math.ceil(trained * self.billable_share)
            if job["EnableManagedSpotTraining"]
            else trained
        )
        billing = {"TrainingTimeInSeconds": trained, "BillableTimeInSeconds": billable}
        if name in self._stop:
            self._set(
                name,
                TrainingJobStatus="Stopped",
                SecondaryStatus="Stopped",
                TrainingEndTime=time.time(),
                **billing,
            )
            return
        if rc != 0:
            tail = log.read_text(errors="replace")[-800:]
            self._set(
                name,
                TrainingJobStatus="Failed",
                SecondaryStatus="Failed",
                FailureReason=f"AlgorithmError: exit code {rc}: {tail}",
                TrainingEndTime=time.time(),
                **billing,
            )
            return
        if ckpt_uri:
            self._upload(ckpt, ckpt_uri)
        self._set(name, SecondaryStatus="Uploading")
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w:gz") as tar:
            for path in sorted(model_dir.iterdir()):
                tar.add(path, arcname=path.name)
        out = job["OutputDataConfig"]["S3OutputPath"].rstrip("/")
        artifact = f"{out}/{name}/output/model.tar.gz"
        bucket, key = _split(artifact)
        self._s3().put_object(Bucket=bucket, Key=key, Body=buf.getvalue())
        self._set(
            name,
            TrainingJobStatus="Completed",
            SecondaryStatus="Completed",
            TrainingEndTime=time.time(),
            ModelArtifacts={"S3ModelArtifacts": artifact},
            **billing,
        )


def _error(code: str, message: str) -> tuple[int, dict[str, Any]]:
    return 400, {"__type": code, "message": message}


def _json_default(value: Any) -> Any:
    if isinstance(value, dt.datetime):
        return value.timestamp()
    raise TypeError(f"not JSON: {value!r}")
