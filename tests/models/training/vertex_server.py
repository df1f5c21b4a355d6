"""A small Vertex AI and Cloud Storage for custom jobs that really train.

``FakeGCS`` speaks the Cloud Storage JSON API routes the ``google-cloud-storage`` client uses
(object metadata, list with ``prefix``, media download with an ``x-goog-hash`` header,
multipart upload), its objects kept as files under ``root/<bucket>/<key>`` — which is also
what Cloud Storage FUSE shows a Vertex container at ``/gcs/<bucket>/<key>``: the container's
``COSTAWARE_GCS_FUSE_ROOT`` is ``root``.

``FakeVertex`` speaks Vertex AI's REST API v1 for ``customJobs`` (create, get, list with a
``labels.K="V"`` or ``display_name="X"`` filter, ``:cancel``) as documented, with camelCase
JSON, RFC 3339 times and ``JOB_STATE_*`` names. Each job runs the way Vertex runs a custom
container: ``containerSpec.command`` (``python`` → this interpreter) in a process of its own
with ``AIP_MODEL_DIR`` / ``AIP_CHECKPOINT_DIR`` derived from ``baseOutputDirectory`` and the
spec's env. States go QUEUED → PENDING → RUNNING (``startTime``) → SUCCEEDED / FAILED
(``error``) / CANCELLED.

Spot: with ``preempt_after_chunk=N`` a ``SPOT`` job's worker gets the preemption notice
(SIGTERM) once N chunks are checkpointed — the worker holds there until it comes, so the
preemption always lands at the same point — and, with ``restartJobOnWorkerRestart``, a new
worker starts from what GCS holds (Vertex keeps no local disk). ``hang=True`` keeps a job
RUNNING without ever ending it (until cancelled): the never-ending state.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import itertools
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

TERMINAL = {"JOB_STATE_SUCCEEDED", "JOB_STATE_FAILED", "JOB_STATE_CANCELLED"}


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


class _Server:
    _server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        assert self._server is not None
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def _serve(self, route: Any) -> None:
        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:  # keep test output quiet
                pass

            def _do(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                status, headers, raw = route(self.command, self.path, self.headers, body)
                self.send_response(status)
                for k, v in headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)

            do_GET = do_POST = do_DELETE = do_PATCH = _do  # noqa: N815

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def _shutdown(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()


def _json(status: int, doc: dict[str, Any]) -> tuple[int, dict[str, str], bytes]:
    return status, {"Content-Type": "application/json"}, json.dumps(doc).encode()


def _google_error(code: int, status: str, message: str) -> tuple[int, dict[str, str], bytes]:
    return _json(code, {"error": {"code": code, "message": message, "status": status}})


class FakeGCS(_Server):
    """Cloud Storage's JSON API over files in ``root``."""

    def __init__(self) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="fake-gcs-"))

    def start(self) -> FakeGCS:
        self._serve(self._route)
        return self

    def stop(self) -> None:
        self._shutdown()
        shutil.rmtree(self.root, ignore_errors=True)

    def client(self, project: str = "acme-ml") -> Any:
        from google.auth.credentials import AnonymousCredentials
        from google.cloud import storage

        return storage.Client(
            project=project,
            credentials=AnonymousCredentials(),
            client_options={"api_endpoint": self.url},
        )

    def _meta(self, bucket: str, key: str) -> dict[str, Any]:
        path = self.root / bucket / key
        data = path.read_bytes()
        st = path.stat()
        return {
            "kind": "storage#object",
            "id": f"{bucket}/{key}/{st.st_mtime_ns}",
            "name": key,
            "bucket": bucket,
            "size": str(len(data)),
            "generation": str(st.st_mtime_ns),
            "metageneration": "1",
            "contentType": "application/octet-stream",
            "updated": dt.datetime.fromtimestamp(st.st_mtime, dt.UTC).isoformat(),
            "md5Hash": base64.b64encode(hashlib.md5(data).digest()).decode(),  # noqa: S324
        }

    def _route(self, method: str, path: str, headers: Any, body: bytes) -> Any:
        url = urllib.parse.urlsplit(path)
        query = dict(urllib.parse.parse_qsl(url.query))
        m = re.match(r"^/(upload/|download/)?storage/v1/b/([^/]+)(?:/o(?:/(.+))?)?$", url.path)
        if m is None:
            return _google_error(404, "NOT_FOUND", f"no route {method} {url.path}")
        kind, bucket = m.group(1), m.group(2)
        key = urllib.parse.unquote(m.group(3)) if m.group(3) else None
        if kind == "upload/" and method == "POST":
            return self._upload(bucket, query, headers, body)
        if key is None and "/o" in url.path and method == "GET":
            prefix = query.get("prefix", "")
            base = self.root / bucket
            items = sorted(p.relative_to(base).as_posix() for p in base.rglob("*") if p.is_file())
            return _json(
                200,
                {
                    "kind": "storage#objects",
                    "items": [self._meta(bucket, k) for k in items if k.startswith(prefix)],
                },
            )
        if key is None:
            return _json(200, {"kind": "storage#bucket", "name": bucket, "id": bucket})
        path_ = self.root / bucket / key
        if not path_.is_file():
            return _google_error(404, "NOT_FOUND", f"No such object: {bucket}/{key}")
        if method == "DELETE":
            path_.unlink()
            return 204, {}, b""
        if query.get("alt") == "media" or kind == "download/":
            import google_crc32c

            data = path_.read_bytes()
            crc = base64.b64encode(google_crc32c.Checksum(data).digest()).decode()
            md5 = base64.b64encode(hashlib.md5(data).digest()).decode()  # noqa: S324
            return (
                200,
                {
                    "Content-Type": "application/octet-stream",
                    "x-goog-hash": f"crc32c={crc},md5={md5}",
                },
                data,
            )
        return _json(200, self._meta(bucket, key))

    def _upload(self, bucket: str, query: dict[str, str], headers: Any, body: bytes) -> Any:
        if query.get("uploadType") == "media":
            key, data = query["name"], body
        elif query.get("uploadType") == "multipart":
            boundary = re.search(r'boundary="?([^";]+)"?', headers["Content-Type"])
            assert boundary is not None, headers["Content-Type"]
            parts = [
                p.strip(b"\r\n")
                for p in body.split(b"--" + boundary.group(1).encode())
                if p.strip(b"\r\n-")
            ]
            meta_raw = parts[0].split(b"\r\n\r\n", 1)[1]
            data = parts[1].split(b"\r\n\r\n", 1)[1]
            key = json.loads(meta_raw)["name"]
        else:
            return _google_error(400, "INVALID_ARGUMENT", f"uploadType {query} not supported")
        path = self.root / bucket / key
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".upload")
        tmp.write_bytes(data)
        tmp.replace(path)
        return _json(200, self._meta(bucket, key))


class FakeVertex(_Server):
    """Vertex AI's customJobs over HTTP; ``jobs`` holds each job (Vertex's JSON names),
    ``calls`` each request's method and path, ``logs`` each job's container output."""

    def __init__(
        self, gcs: FakeGCS, *, preempt_after_chunk: int | None = None, hang: bool = False
    ) -> None:
        self.gcs = gcs
        self.preempt_after_chunk = preempt_after_chunk
        self.hang = hang
        self.jobs: dict[str, dict[str, Any]] = {}
        self.calls: list[tuple[str, str]] = []
        self.logs: dict[str, Path] = {}
        self._ids = itertools.count(1000)
        self._lock = threading.Lock()
        self._cancel: set[str] = set()
        self._procs: dict[str, subprocess.Popen[bytes]] = {}
        self._threads: list[threading.Thread] = []
        self.folder = Path(tempfile.mkdtemp(prefix="fake-vertex-"))

    def start(self) -> FakeVertex:
        self._serve(self._route)
        return self

    def stop(self) -> None:
        with self._lock:
            self._cancel.update(self.jobs)
            for proc in self._procs.values():
                if proc.poll() is None:
                    proc.kill()
        for t in self._threads:
            t.join(60)
        self._shutdown()
        shutil.rmtree(self.folder, ignore_errors=True)

    def client(self) -> Any:
        from google.auth.credentials import AnonymousCredentials
        from google.cloud import aiplatform_v1

        return aiplatform_v1.JobServiceClient(
            transport="rest",
            credentials=AnonymousCredentials(),
            client_options={"api_endpoint": self.url},
        )

    # -- the HTTP side -------------------------------------------------------------------
    def _route(self, method: str, path: str, headers: Any, body: bytes) -> Any:
        url = urllib.parse.urlsplit(path)
        self.calls.append((method, url.path))
        query = dict(urllib.parse.parse_qsl(url.query))
        m = re.match(
            r"^/v1/(projects/[^/]+/locations/[^/]+)/customJobs(?:/(\d+))?(:cancel)?$", url.path
        )
        if m is None:
            return _google_error(404, "NOT_FOUND", f"no route {method} {url.path}")
        parent, job_id, cancel = m.groups()
        if job_id is None and method == "POST":
            return self._create(parent, json.loads(body))
        if job_id is None and method == "GET":
            return self._list(parent, query)
        name = f"{parent}/customJobs/{job_id}"
        if name not in self.jobs:
            return _google_error(404, "NOT_FOUND", f"The CustomJob {name} does not exist.")
        if cancel and method == "POST":
            self._do_cancel(name)
            return _json(200, {})
        with self._lock:
            return _json(200, json.loads(json.dumps(self.jobs[name])))

    def _list(self, parent: str, query: dict[str, str]) -> Any:
        flt = query.get("filter", "")
        with self._lock:
            jobs = [j for n, j in self.jobs.items() if n.startswith(parent + "/")]
            if flt:
                m = re.match(r'^\s*(labels\.([\w-]+)|display_?[nN]ame)\s*=\s*"([^"]*)"\s*$', flt)
                if m is None:
                    return _google_error(400, "INVALID_ARGUMENT", f"unsupported filter {flt!r}")
                if m.group(2):
                    jobs = [j for j in jobs if j.get("labels", {}).get(m.group(2)) == m.group(3)]
                else:
                    jobs = [j for j in jobs if j["displayName"] == m.group(3)]
            return _json(200, {"customJobs": json.loads(json.dumps(jobs))})

    def _create(self, parent: str, req: dict[str, Any]) -> Any:
        name = f"{parent}/customJobs/{next(self._ids)}"
        now = _now()
        job = {
            **req,
            "name": name,
            "state": "JOB_STATE_QUEUED",
            "createTime": now,
            "updateTime": now,
        }
        with self._lock:
            self.jobs[name] = job
        t = threading.Thread(target=self._run, args=(name,), daemon=True)
        self._threads.append(t)
        t.start()
        return _json(200, job)

    def _do_cancel(self, name: str) -> None:
        with self._lock:
            self._cancel.add(name)
            if self.jobs[name]["state"] not in TERMINAL:
                self.jobs[name]["state"] = "JOB_STATE_CANCELLING"
            proc = self._procs.get(name)
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGTERM)

    def _set(self, name: str, **fields: Any) -> None:
        with self._lock:
            self.jobs[name].update(fields, updateTime=_now())

    # -- the "container" -----------------------------------------------------------------
    def _run(self, name: str) -> None:
        try:
            self._train(name)
        except Exception as exc:  # the job fails as Vertex would say, never silently
            self._set(
                name,
                state="JOB_STATE_FAILED",
                error={"code": 13, "message": f"Internal error: {exc}"[:1024]},
                endTime=_now(),
            )

    def _train(self, name: str) -> None:
        job = self.jobs[name]
        spec = job["jobSpec"]
        pool = spec["workerPoolSpecs"][0]
        container = pool["containerSpec"]
        out = spec["baseOutputDirectory"]["outputUriPrefix"].rstrip("/")
        scheduling = spec.get("scheduling", {})
        # The REST client sends enums as numbers (``use_integers_for_enums``): SPOT is 4.
        spot = scheduling.get("strategy") in ("SPOT", 4)
        self._set(name, state="JOB_STATE_PENDING")
        env = {
            **os.environ,
            **{e["name"]: e.get("value", "") for e in container.get("env", [])},
            "AIP_MODEL_DIR": f"{out}/model/",
            "AIP_CHECKPOINT_DIR": f"{out}/checkpoints/",
            "AIP_TENSORBOARD_LOG_DIR": f"{out}/logs/",
            "COSTAWARE_GCS_FUSE_ROOT": str(self.gcs.root),
        }
        command = [sys.executable if c == "python" else c for c in container["command"]]
        command += container.get("args", [])
        self._set(name, state="JOB_STATE_RUNNING", startTime=_now())
        log = self.folder / f"{name.rsplit('/', 1)[-1]}.log"
        self.logs[name] = log
        if self.hang:
            while name not in self._cancel:
                time.sleep(0.05)
            self._set(name, state="JOB_STATE_CANCELLED", endTime=_now())
            return
        preempt = self.preempt_after_chunk if spot else None
        ckpt = self.gcs.root / f"{out}/checkpoints".removeprefix("gs://")
        while True:
            run_env = dict(env)
            if preempt is not None:  # the worker waits there for the notice: a fixed point
                run_env["COSTAWARE_SIM_RECLAIM_AFTER_CHUNK"] = str(preempt)
            with log.open("ab") as fh:
                proc = subprocess.Popen(
                    command, env=run_env, stdout=fh, stderr=subprocess.STDOUT, cwd=self.folder
                )
            with self._lock:
                self._procs[name] = proc
            if preempt is None:
                rc = proc.wait()
                break
            progress = ckpt / "progress.json"
            while proc.poll() is None and not (
                progress.exists() and json.loads(progress.read_text())["chunks_done"] >= preempt
            ):
                time.sleep(0.05)
            proc.send_signal(signal.SIGTERM)  # Spot preemption notice
            proc.wait()
            preempt = None
            if not scheduling.get("restartJobOnWorkerRestart"):
                rc = proc.returncode
                break
        if name in self._cancel:
            self._set(name, state="JOB_STATE_CANCELLED", endTime=_now())
            return
        if rc != 0:
            tail = log.read_text(errors="replace")[-800:]
            self._set(
                name,
                state="JOB_STATE_FAILED",
                error={
                    "code": 3,
                    "message": f"The replica workerpool0-0 exited with a non-zero "
                    f"status of {rc}. {tail}",
                },
                endTime=_now(),
            )
            return
        self._set(name, state="JOB_STATE_SUCCEEDED", endTime=_now())
