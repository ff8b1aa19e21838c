"""`dpsched sweep --engine ray` on a real Ray (2 CPUs, loopback only) gives the same rows
as the process pool: on a Ray the sweep starts itself, on one the caller started, and,
through the CLI, on a running cluster that `RAY_ADDRESS` names (`ray start --head`,
reached as `ray://`, reading a trace file).

Ray runs only in child processes: it installs signal handlers and daemons in the process
that starts it, and the rest of the suite checks that the default path never imports it
(`"ray" not in sys.modules`). Each Ray here has a directory of its own (`RAY_TMPDIR`) and
the tests a token of their own (nothing is written under ~/.ray); no Ray process may
outlive a sweep, and whatever these tests started is ended by pid at the end. Without
ray installed these tests fail: `ray[client]` is in the dev extra."""

from __future__ import annotations

import contextlib
import json
import os
import random
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from dpsched.sim.sweep import expand_grid, load_sweep, run_cells

SAMPLE = Path(__file__).resolve().parents[1] / "configs" / "data" / "alibaba-sample.csv"
TIMING = {"scheduler_time_s", "wall_time_s"}  # the only fields that vary between runs
BASE: dict[str, Any] = {
    "seed": 0,
    "blocks": {"initial": 4, "total": 10},
    "workload": {"name": "mixed", "n_tasks": 30, "params": {"many_blocks": 3}},
}
GRID = {"scheduler.policy": ["fcfs", "dpf", "dpack"], "seed": [0, 1]}
FAILING = {"workload.name": "alibaba"}  # no path: this cell's row carries its error

# Run by a child Python: argv = base, cells, cluster address, report file. Local execution
# is poisoned first, so rows only come out right if the cells really ran in Ray's workers
# (which import dpsched afresh). Then the sweep starts and stops a Ray of its own; then
# the caller connects to a cluster (`ray.init(address=...)`), and the sweep uses it and
# leaves it connected. The first sweep imported ray with the loopback setting it chose.
CHILD = """
import json, sys
import dpsched.sim.sweep as sweep

def poisoned(*args, **kwargs):
    raise RuntimeError("a cell ran in the driver, not on Ray")

sweep.Simulator = poisoned
base, cells, address, report_path = json.loads(sys.argv[1]), json.loads(sys.argv[2]), *sys.argv[3:]
seen = []

def look(_index, _row):
    import ray
    seen.append([ray.util.get_node_ip_address(), ray.cluster_resources().get("CPU")])

report = {"own": sweep.run_cells(base, cells, workers=2, engine="ray", on_row=look)}
import ray
report["own_seen"] = seen
report["own_left_running"] = ray.is_initialized()
ray.init(address=address)
try:
    report["callers"] = sweep.run_cells(base, cells, workers=1, engine="ray")
    report["callers_still_connected"] = ray.is_initialized()
finally:
    ray.shutdown()
with open(report_path, "w") as handle:
    json.dump(report, handle)
"""


def comparable(rows: list[dict[str, Any]], cell_keys: list[str]) -> list[dict[str, Any]]:
    """Rows as JSON carries them, without timings, sorted by their cells."""
    plain: list[dict[str, Any]] = json.loads(json.dumps(rows))
    kept = [{k: v for k, v in row.items() if k not in TIMING} for row in plain]
    return sorted(kept, key=lambda row: json.dumps([row.get(k) for k in cell_keys]))


def ray_processes() -> set[int]:
    """Ray's daemons, workers and client servers on this machine, by their command lines."""
    found = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            args = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if args[0].startswith(b"ray::") or any(
            b"/site-packages/ray/" in arg or arg.startswith(b"ray.") for arg in args
        ):
            found.add(int(entry.name))
    return found


def uses(pid: int, directory: str) -> bool:
    """Whether a process belongs to the Ray in `directory`: its environment or command line
    names it, or it holds a file there open (Ray's agents retitle themselves over both,
    but keep their logs open)."""
    process = Path(f"/proc/{pid}")
    try:
        if f"RAY_TMPDIR={directory}".encode() in (process / "environ").read_bytes().split(b"\0"):
            return True
        if directory.encode() in (process / "cmdline").read_bytes():
            return True
        return any(os.readlink(fd).startswith(directory) for fd in (process / "fd").iterdir())
    except OSError:
        return False


def alive_in(directory: str, wait_s: float = 0.0) -> set[int]:
    """The Ray processes of `directory` still running after up to wait_s."""
    deadline = time.monotonic() + wait_s
    while True:
        alive = {pid for pid in ray_processes() if uses(pid, directory)}
        if not alive or time.monotonic() >= deadline:
            return alive
        time.sleep(0.2)


def end_all_in(directory: str) -> None:
    """Ends, by pid, the Ray processes of a directory these tests made."""
    for _ in range(3):  # a dying raylet may still have started a worker
        alive = alive_in(directory)
        for pid in alive:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        if not alive:
            return
        time.sleep(0.3)


def free_port() -> int:
    """A free loopback port between Ray's worker ports (10002-19999) and the kernel's
    ephemeral range, where Ray picks its other components' ports: a port the kernel
    handed out here could be handed to Ray too ("used by other components")."""
    rng = random.SystemRandom()
    for _ in range(200):
        port = rng.randrange(20_000, 30_000)
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free port in 20000-29999")


@dataclass
class Cluster:
    """A one-node cluster (`ray start --head`, 2 CPUs, loopback), and the environment
    for children that use it or start a Ray of their own."""

    directory: str
    env: dict[str, str]
    gcs_address: str = ""
    client_address: str = ""

    def client_server_logs(self) -> str:
        """The cluster's Ray Client server logs: why a client connection failed."""
        logs = sorted(Path(self.directory).glob("ray/session_2*/logs/ray_client_server*"))
        return "".join(f"\n--- {log.name}:\n{log.read_text()[-3000:]}" for log in logs)

    def run(self, *args: str, ray_dir: str, **env: str) -> subprocess.CompletedProcess[str]:
        """A child Python whose own Ray, if it starts one, lives in ray_dir."""
        return subprocess.run(
            [sys.executable, *args],
            env={**self.env, "RAY_TMPDIR": ray_dir, **env},
            capture_output=True,
            text=True,
            timeout=180,
            check=False,
        )


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    env = {
        **os.environ,
        "RAY_USAGE_STATS_ENABLED": "0",
        "RAY_AUTH_MODE": "token",
        "RAY_AUTH_TOKEN": secrets.token_hex(32),
    }
    env.pop("RAY_ADDRESS", None)  # only where a test sets it
    # Short, as Ray's Unix sockets live under it.
    found = Cluster(tempfile.mkdtemp(prefix="dpsched-ray-"), env)
    gcs_port, client_port = free_port(), free_port()
    command = [str(Path(sys.executable).with_name("ray")), "start", "--head", "--num-cpus=2"]
    command += ["--include-dashboard=false", "--disable-usage-stats", f"--port={gcs_port}"]
    command += [f"--ray-client-server-port={client_port}"]
    try:
        started = subprocess.run(
            command,
            env={**env, "RAY_TMPDIR": found.directory, "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"},
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert started.returncode == 0, started.stdout + started.stderr
        found.gcs_address = f"127.0.0.1:{gcs_port}"
        found.client_address = f"ray://127.0.0.1:{client_port}"
        yield found
    finally:
        end_all_in(found.directory)
        shutil.rmtree(found.directory, ignore_errors=True)


@pytest.fixture
def ray_dir() -> Iterator[str]:
    """A directory for a Ray a sweep starts on its own; its processes are ended after."""
    directory = tempfile.mkdtemp(prefix="dpsched-ray-")
    try:
        yield directory
    finally:
        end_all_in(directory)  # only if a test failed
        shutil.rmtree(directory, ignore_errors=True)


def test_ray_gives_the_process_pools_rows(cluster: Cluster, ray_dir: str, tmp_path: Path) -> None:
    cells = [*expand_grid(GRID), FAILING]
    keys = sorted({k for cell in cells for k in cell})
    expected = comparable(run_cells(BASE, cells, workers=2, engine="process"), keys)
    assert len(expected) == 7 and sum(r["error"] is not None for r in expected) == 1
    assert "ray" not in sys.modules

    report_path = tmp_path / "report.json"
    args = [json.dumps(BASE), json.dumps(cells), cluster.gcs_address, str(report_path)]
    done = cluster.run("-c", CHILD, *args, ray_dir=ray_dir)
    assert done.returncode == 0, done.stderr
    report = json.loads(report_path.read_text())

    assert comparable(report["own"], keys) == expected
    # The sweep's own Ray: loopback only, `workers` CPUs, ended with the sweep.
    assert report["own_seen"] == [["127.0.0.1", 2.0]] * len(cells)
    assert report["own_left_running"] is False
    assert len(list(Path(ray_dir, "ray").glob("session_2*"))) == 1
    assert alive_in(ray_dir, wait_s=10) == set(), "Ray processes outlived the sweep"
    # A Ray the caller connected to is used, and left to the caller.
    assert comparable(report["callers"], keys) == expected
    assert report["callers_still_connected"] is True


def test_cli_sweep_runs_on_the_cluster_at_ray_address(
    cluster: Cluster, ray_dir: str, tmp_path: Path
) -> None:
    # A trace on disk: the cluster's workers read it by the absolute path the sweep resolved.
    base = {
        "seed": 0,
        "blocks": {"initial": 5, "total": 12},
        "workload": {"name": "alibaba", "path": str(SAMPLE), "n_tasks": 80},
        "scheduler": {"policy": "dpack", "mode": "batch", "period": 2},
    }
    (tmp_path / "base.yaml").write_text(yaml.safe_dump(base))
    sweep = tmp_path / "sweep.yaml"
    grid = {"scheduler.policy": ["fcfs", "dpack"], "blocks.total": [10, 12]}
    sweep.write_text(yaml.safe_dump({"base": "base.yaml", "grid": grid}))
    base_mapping, cells = load_sweep(sweep)
    keys = sorted(grid)
    expected = comparable(run_cells(base_mapping, cells, workers=2), keys)
    assert len(expected) == 4 and all(r["error"] is None for r in expected)

    table, report = tmp_path / "sweep.csv", tmp_path / "sweep.json"
    command = ["sweep", str(sweep), "--engine", "ray", "--workers", "1", "--json", str(report)]
    env = {"RAY_ADDRESS": cluster.client_address}
    done = cluster.run("-m", "dpsched", *command, "--out", str(table), ray_dir=ray_dir, **env)
    assert done.returncode == 0, done.stderr + cluster.client_server_logs()
    assert "Started a local Ray instance" not in done.stderr
    assert not Path(ray_dir, "ray").exists()  # no Ray of its own: it used the cluster
    result = json.loads(report.read_text())
    assert result["failed"] == 0
    assert comparable(result["cells"], keys) == expected
    assert len(table.read_text().splitlines()) == 1 + len(cells)


def test_a_ray_address_nobody_answers_is_one_line_naming_it(tmp_path: Path) -> None:
    (tmp_path / "base.yaml").write_text(
        yaml.safe_dump({"seed": 0, "workload": {"name": "mixed", "n_tasks": 10}})
    )
    sweep = tmp_path / "sweep.yaml"
    sweep.write_text(yaml.safe_dump({"base": "base.yaml", "grid": {"seed": [0]}}))
    address = f"ray://127.0.0.1:{free_port()}"  # bound and closed again: nothing listens
    done = subprocess.run(
        [sys.executable, "-m", "dpsched", "sweep", str(sweep), "--engine", "ray"],
        env={
            **os.environ,
            "RAY_ADDRESS": address,
            "RAY_CLIENT_INITIAL_CONNECTION_TIMEOUT_S": "1",
            "RAY_CLIENT_MAX_CONNECTION_TIMEOUT_S": "1",
        },
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith(f"error: RAY_ADDRESS: cannot use the Ray at {address}: "), last
