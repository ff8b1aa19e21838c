"""A whole Kubernetes deployment on loopback, for experiments and benchmarks: the budget
service as a real `dpsched serve` process (its own journal), the emulated API server
(`emulator.py`) and the operator (kopf) in a thread, wired as `serve --kubernetes`
wires them in a cluster."""

from __future__ import annotations

import asyncio
import os
import secrets
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx
import yaml_rs

from dpsched.k8s.kube import Connection
from dpsched.k8s.operator import OperatorConfig
from dpsched.k8s.run import run_operator
from dpsched.lab.emulator import EmulatedCluster


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class Lab:
    """The deployment, as a context manager: entering starts the service (and waits for
    it to answer), the emulated API server and the operator; leaving stops all three and
    removes the journal. `cluster` is the API server, `admin()` a client of the service."""

    def __init__(self, service_config: dict[str, Any], sync_interval: float = 0.1) -> None:
        self.service_config = service_config
        self.sync_interval = sync_interval
        self.token = secrets.token_urlsafe(24)
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._directory = tempfile.TemporaryDirectory(prefix="dpsched-lab-")
        self.directory = Path(self._directory.name)
        self.cluster = EmulatedCluster()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> Lab:
        db = f"sqlite:///{self.directory / 'journal.db'}"
        config = self.directory / "service.yaml"
        config.write_text(str(yaml_rs.dumps(self.service_config)))
        dpsched = [sys.executable, "-m", "dpsched"]
        subprocess.run([*dpsched, "db", "upgrade", "--db", db], check=True, capture_output=True)
        log = (self.directory / "serve.log").open("wb")
        self._process = subprocess.Popen(
            [*dpsched, "serve", "--db", db, "--config", str(config), "--port", str(self.port)],
            env={**os.environ, "DPSCHED_ADMIN_TOKEN": self.token},
            stdout=log,
            stderr=log,
        )
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                if self._process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError((self.directory / "serve.log").read_text()) from None
                time.sleep(0.1)
        self.cluster.start()
        ready = threading.Event()
        config_ = OperatorConfig(self.url, self.token, sync_interval=self.sync_interval)
        connection = Connection(server=self.cluster.url, insecure=True)

        def run() -> None:
            asyncio.run(run_operator(config_, connection, stop_flag=self._stop, ready_flag=ready))

        self._thread = threading.Thread(target=run, daemon=True)
        self._thread.start()
        if not ready.wait(60):
            raise RuntimeError("the operator did not start")
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(30)
        self.cluster.stop()
        if self._process is not None:
            self._process.terminate()
            self._process.wait(30)
        self._directory.cleanup()

    def admin(self) -> httpx.Client:
        return httpx.Client(
            base_url=self.url, headers={"Authorization": f"Bearer {self.token}"}, timeout=60
        )
