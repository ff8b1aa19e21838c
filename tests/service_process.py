"""A real `dpsched serve` process on loopback, for the service tests."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa
import yaml

ADMIN = "admin-secret-token"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def new_database(kind: str, directory: Path, postgres: str | None) -> str:
    """A fresh, migrated database: a SQLite file, or a new database on the server."""
    if kind == "sqlite":
        url = f"sqlite:///{directory / f'{uuid.uuid4().hex[:8]}.db'}"
    else:
        assert postgres is not None
        server = postgres.replace("postgresql://", "postgresql+psycopg://", 1)
        name = f"dpsched_{uuid.uuid4().hex[:12]}"
        admin = sa.create_engine(server, isolation_level="AUTOCOMMIT")
        with admin.connect() as connection:
            connection.execute(sa.text(f'CREATE DATABASE "{name}"'))
        admin.dispose()
        url = str(sa.engine.make_url(server).set(database=name).render_as_string(False))
    done = subprocess.run(
        [sys.executable, "-m", "dpsched", "db", "upgrade", "--db", url],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    return url


@dataclass
class Service:
    """One server process; `restart` kills it (SIGKILL by default) and starts another on
    the same database and port."""

    db: str
    directory: Path
    config: Path | None = None
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> Service:
        args = [sys.executable, "-m", "dpsched", "serve", "--db", self.db, "--port", str(self.port)]
        if self.config is not None:
            args += ["--config", str(self.config)]
        log = (self.directory / f"serve-{self.port}.log").open("ab")
        self.process = subprocess.Popen(
            args,
            env={**os.environ, "DPSCHED_ADMIN_TOKEN": ADMIN},
            stdout=log,
            stderr=log,
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"dpsched serve exited: {self.log()}")
            try:
                if httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                time.sleep(0.1)
        raise RuntimeError(f"dpsched serve did not start: {self.log()}")

    def stop(self, sig: int = signal.SIGKILL) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(sig)
            self.process.wait(timeout=30)

    def restart(self, sig: int = signal.SIGKILL) -> Service:
        self.stop(sig)
        return self.start()

    def log(self) -> str:
        path = self.directory / f"serve-{self.port}.log"
        return path.read_text(errors="replace")[-3000:] if path.exists() else ""

    def admin(self) -> httpx.Client:
        return httpx.Client(
            base_url=self.url, headers={"Authorization": f"Bearer {ADMIN}"}, timeout=70
        )

    def tenant(self, name: str) -> httpx.Client:
        with self.admin() as client:
            reply = client.post("/v1/tenants", json={"name": name})
            assert reply.status_code == 201, reply.text
            token = reply.json()["token"]
        return httpx.Client(
            base_url=self.url, headers={"Authorization": f"Bearer {token}"}, timeout=70
        )


def service_for(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    config: dict[str, object],
    name: str,
) -> Service:
    """A started service with this config on a fresh database of the fixture's kind
    (`request.param`: sqlite, or postgresql on the session's server)."""
    directory = tmp_path_factory.mktemp(name)
    postgres = request.getfixturevalue("postgres_server") if request.param == "postgresql" else None
    path = directory / "service.yaml"
    path.write_text(yaml.safe_dump(config))
    return Service(new_database(request.param, directory, postgres), directory, path).start()
