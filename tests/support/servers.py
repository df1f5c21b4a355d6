"""Real servers the tests start and stop themselves: an MLflow tracking server, and a TCP
proxy in front of any server that can be switched off to simulate an outage."""

from __future__ import annotations

import contextlib
import os
import socket
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for_port(port: int, timeout: float = 60.0, proc: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode} before listening on {port}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.5):
            return
        time.sleep(0.2)
    raise TimeoutError(f"nothing listens on 127.0.0.1:{port} after {timeout:.0f} s")


@contextlib.contextmanager
def mlflow_server(
    folder: Path,
    backend_uri: str | None = None,
    artifacts_destination: str | None = None,
    env: dict[str, str] | None = None,
) -> Iterator[str]:
    """``mlflow server`` on 127.0.0.1 (SQLite store unless ``backend_uri``); yields its URL.
    With ``artifacts_destination`` (e.g. ``s3://bucket/mlflow``) the server keeps artifacts
    there and serves them to clients, as in a deployment; ``env`` is the server's own (its S3
    endpoint and keys), never the clients'."""
    port = free_port()
    folder.mkdir(parents=True, exist_ok=True)
    backend = backend_uri or f"sqlite:///{folder / 'mlflow.db'}"
    if artifacts_destination:
        artifacts = ["--artifacts-destination", artifacts_destination, "--serve-artifacts"]
    else:
        artifacts = [
            "--default-artifact-root",
            (folder / "artifacts").resolve().as_uri(),
            "--no-serve-artifacts",
        ]
    log = (folder / "mlflow-server.log").open("w")
    mlflow = Path(sys.executable).with_name("mlflow")
    proc = subprocess.Popen(
        [
            str(mlflow),
            "server",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            "1",
            "--backend-store-uri",
            backend,
            *artifacts,
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        env={**os.environ, "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false", **(env or {})},
        start_new_session=True,
    )
    try:
        wait_for_port(port, 90, proc)
        yield f"http://127.0.0.1:{port}"
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, 15)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, 9)
            proc.wait()
        log.close()


class OutageProxy:
    """Forwards 127.0.0.1:<port> to a server. ``down()`` makes it refuse every connection
    (accept, then reset) and cut the open ones — a server that is briefly unreachable."""

    def __init__(self, target_port: int) -> None:
        self.target = target_port
        self.port = free_port()
        self.is_down = False
        self._sock = socket.create_server(("127.0.0.1", self.port))
        self._conns: list[socket.socket] = []
        self._stop = False
        threading.Thread(target=self._accept, daemon=True).start()

    def down(self) -> None:
        self.is_down = True
        for c in list(self._conns):
            with contextlib.suppress(OSError):
                c.close()

    def up(self) -> None:
        self.is_down = False

    def close(self) -> None:
        self._stop = True
        self.down()
        self._sock.close()

    def _accept(self) -> None:
        while not self._stop:
            try:
                client, _ = self._sock.accept()
            except OSError:
                return
            if self.is_down:
                client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                client.close()  # RST: connection reset by peer
                continue
            try:
                upstream = socket.create_connection(("127.0.0.1", self.target), 5)
            except OSError:
                client.close()
                continue
            self._conns += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    def _pipe(self, src: socket.socket, dst: socket.socket) -> None:
        try:
            while chunk := src.recv(65536):
                dst.sendall(chunk)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                with contextlib.suppress(OSError):
                    s.close()
