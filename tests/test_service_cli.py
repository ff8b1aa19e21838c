"""The client verbs against a real service, and the README's "Run the service" lines."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.service_process import ADMIN, Service, free_port, new_database

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    directory = tmp_path_factory.mktemp("cli-service")
    config = directory / "service.yaml"
    config.write_text("scheduler: {policy: dpack, period: 0.5}\n")
    running = Service(new_database("sqlite", directory, None), directory, config).start()
    yield running
    running.stop()


def cli(
    service: Service, token: str, *args: str, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DPSCHED_SERVER": service.url, "DPSCHED_TOKEN": token}
    return subprocess.run(
        [sys.executable, "-m", "dpsched", *args],
        input=stdin,
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )


def test_client_verbs_from_block_to_consumption(service: Service) -> None:
    added = cli(service, ADMIN, "block", "add", "-", stdin="[{id: v1, epsilon: 10, delta: 1.0e-7}]")
    assert added.returncode == 0, added.stderr
    assert added.stdout.strip() == "added v1"
    made = cli(service, ADMIN, "tenant", "add", "verbs", "--json", "-")
    token = json.loads(made.stdout)["token"]
    body = "{id: t1, blocks: [v1], demand: {mechanism: laplace, epsilon: 0.5}}"
    dry = cli(service, token, "claim", "submit", "-", "--dry-run", "--json", "-", stdin=body)
    assert json.loads(dry.stdout)["fits_now"] is True
    submitted = cli(service, token, "claim", "submit", "-", stdin=body)
    assert submitted.returncode == 0, submitted.stderr
    assert submitted.stdout.startswith("t1: pending")
    waited = cli(service, token, "claim", "wait", "t1", "--timeout", "30")
    assert waited.returncode == 0 and waited.stdout.strip() == "t1: allocated"
    consumed = cli(
        service, token, "claim", "consume", "t1", "--amount", "v1=" + ",".join(["0.1"] * 12)
    )
    assert consumed.returncode == 0, consumed.stderr
    listed = json.loads(cli(service, token, "claim", "list", "--json", "-").stdout)
    assert [c["id"] for c in listed] == ["t1"] and listed[0]["consumed"]["v1"][0] == 0.1
    explained = cli(service, token, "claim", "explain", "t1")
    assert explained.stdout.startswith("t1: allocated")
    released = cli(service, token, "claim", "release", "t1", "--request-id", "r1")
    assert released.stdout.strip() == "t1: released"
    blocks = json.loads(cli(service, token, "block", "list", "--json", "-").stdout)
    assert any(b["id"] == "v1" and b["consumed"][0] == 0.1 for b in blocks)


def test_client_errors_are_one_line(service: Service) -> None:
    made = cli(service, ADMIN, "tenant", "add", "errs", "--json", "-")
    token = json.loads(made.stdout)["token"]
    missing = cli(service, token, "claim", "get", "nope")
    assert missing.returncode == 2
    assert missing.stderr.strip() == "error: claim: no claim 'nope' (HTTP 404)"
    forbidden = cli(service, token, "block", "add", "-", stdin="{id: x, epsilon: 1}")
    assert forbidden.returncode == 2
    assert forbidden.stderr.strip() == (
        "error: authorization: this route needs the admin token (HTTP 403)"
    )
    nobody = cli(service, "", "claim", "list")
    assert nobody.stderr.strip() == "error: --token: give a token with --token or $DPSCHED_TOKEN"
    port = free_port()
    down = subprocess.run(
        [
            sys.executable,
            "-m",
            "dpsched",
            "claim",
            "list",
            "--server",
            f"http://127.0.0.1:{port}",
            "--token",
            "x",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert down.returncode == 2 and down.stderr.startswith("error: --server: cannot reach")


def test_the_readme_service_lines_run_as_written(tmp_path: Path) -> None:
    readme = (ROOT / "README.md").read_text()
    start = readme.index("## Run the service")
    block = readme[
        readme.index("```bash\n", start) + 8 : readme.index(
            "```", readme.index("```bash\n", start) + 8
        )
    ]
    port = str(free_port())
    script = block.replace("8700", port)
    bin_dir = Path(sys.executable).parent
    run = subprocess.run(
        ["bash", "-e", "-c", script],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env={**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}"},
        timeout=180,
        check=False,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    lines = run.stdout.splitlines()
    assert "train-1: allocated" in lines
    final = json.loads(run.stdout[run.stdout.index("{") :])
    assert final["id"] == "train-1" and final["state"] == "consumed"
