"""`dpsched serve --kubernetes` as users run it: one process serving the REST API, the
admission webhook over TLS and the operator, against the Kubernetes emulator."""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
import signal
import ssl
import subprocess
import sys
import time
from pathlib import Path

import httpx
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from tests.service_process import ADMIN, free_port, new_database
from tests.test_k8s_operator import gated_pod
from tests.test_k8s_pods import DESIGN_EXAMPLE, review

from dpsched.lab.emulator import running_emulated_cluster, wait_until

API = "dpsched.io/v1"


def self_signed(directory: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "tls.crt", directory / "tls.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


def test_one_process_serves_the_api_the_webhook_and_the_operator(tmp_path: Path) -> None:
    config = tmp_path / "service.yaml"
    config.write_text(yaml.safe_dump({"accounting": "basic", "scheduler": {"period": 0.2}}))
    db = new_database("sqlite", tmp_path, None)
    cert, key = self_signed(tmp_path)
    trust = ssl.create_default_context(cafile=str(cert))
    port, webhook_port = free_port(), free_port()
    with running_emulated_cluster() as cluster:
        log = (tmp_path / "serve.log").open("wb")
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "dpsched",
                "serve",
                "--kubernetes",
                f"--db={db}",
                f"--config={config}",
                f"--port={port}",
                f"--kube-server={cluster.url}",
                "--kube-insecure",
                f"--webhook-port={webhook_port}",
                f"--tls-cert={cert}",
                f"--tls-key={key}",
            ],
            env={**os.environ, "DPSCHED_ADMIN_TOKEN": ADMIN},
            stdout=log,
            stderr=log,
        )
        try:
            api = f"http://127.0.0.1:{port}"
            webhook = f"https://127.0.0.1:{webhook_port}"

            def up() -> bool:
                assert process.poll() is None, (tmp_path / "serve.log").read_text()
                try:
                    httpx.get(f"{api}/healthz", timeout=1).raise_for_status()
                    httpx.get(f"{webhook}/healthz", verify=trust, timeout=1).raise_for_status()
                except httpx.HTTPError:
                    return False
                return True

            wait_until(up, timeout=60, what="the API and the webhook")
            answer = httpx.post(f"{webhook}/mutate/pods", json=review(DESIGN_EXAMPLE), verify=trust)
            assert answer.json()["response"]["patchType"] == "JSONPatch"
            block = {"apiVersion": API, "kind": "PrivateBlock", "metadata": {"name": "b"}}
            cluster.create(API, "privateblocks", None, {**block, "spec": {"epsilon": 1.0}})
            meta = {"name": "c", "namespace": "team-a"}
            spec = {"blocks": ["b"], "demand": {"epsilon": 0.5}}
            claim = {"apiVersion": API, "kind": "PrivacyClaim", "metadata": meta, "spec": spec}
            cluster.create(API, "privacyclaims", "team-a", claim)
            wait_until(
                lambda: (
                    (cluster.get(API, "privacyclaims", "team-a", "c") or {})
                    .get("status", {})
                    .get("phase")
                    == "Allocated"
                ),
                timeout=30,
                what="the claim to be granted by the operator in the service's process",
            )
            # A gated Pod through the same process: its grant is written and its gate
            # removed while the API keeps answering (the operator has its own loop).
            day = {"apiVersion": API, "kind": "PrivateBlock", "metadata": {"name": "d1"}}
            spec_d = {"dataset": "d", "dimensions": {"time": 5}, "epsilon": 1.0}
            cluster.create(API, "privateblocks", None, {**day, "spec": spec_d})
            wanted = {"dp-dataset": "d", "dp-start-time": "0", "dp-end-time": "9"}
            cluster.create(
                "v1", "pods", "team-a", gated_pod("job", {**wanted, "dp-expected-epsilon": "0.2"})
            )
            wait_until(
                lambda: (
                    not (cluster.get("v1", "pods", "team-a", "job") or {})
                    .get("spec", {})
                    .get("schedulingGates")
                ),
                timeout=30,
                what="the Pod's gate to be removed",
            )
            assert httpx.get(f"{api}/healthz", timeout=2).status_code == 200
        finally:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                raise
    assert process.returncode in (0, -signal.SIGTERM), (tmp_path / "serve.log").read_text()


def test_outside_a_cluster_the_server_must_be_named(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "KUBERNETES_SERVICE_HOST"}
    db = new_database("sqlite", tmp_path, None)
    run = subprocess.run(
        [sys.executable, "-m", "dpsched", "serve", "--kubernetes", f"--db={db}"],
        check=False,
        env={**env, "DPSCHED_ADMIN_TOKEN": ADMIN},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode == 2
    assert run.stderr.strip().splitlines() == [
        "error: --kube-server: not in a cluster: give the API server's URL"
    ]


def serve_kubernetes(
    tmp_path: Path, db: str, cluster_url: str, port: int
) -> subprocess.Popen[bytes]:
    config = tmp_path / "service.yaml"
    config.write_text(yaml.safe_dump({"accounting": "basic", "scheduler": {"period": 0.2}}))
    log = (tmp_path / f"serve-{port}.log").open("ab")
    process = subprocess.Popen(
        [
            sys.executable,
            *("-m", "dpsched", "serve", "--kubernetes", f"--db={db}", f"--config={config}"),
            *(f"--port={port}", f"--kube-server={cluster_url}", "--kube-insecure"),
            "--webhook-port=0",
        ],
        env={**os.environ, "DPSCHED_ADMIN_TOKEN": ADMIN},
        stdout=log,
        stderr=log,
    )

    def up() -> bool:
        assert process.poll() is None, (tmp_path / f"serve-{port}.log").read_text()
        try:
            return httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    wait_until(up, timeout=60, what="dpsched serve --kubernetes")
    return process


def test_a_killed_operator_process_loses_and_doubles_nothing(tmp_path: Path) -> None:
    """SIGKILL the whole `serve --kubernetes` process mid-run; what changed while it was
    down is applied once by the next one, and nothing is applied twice."""
    db = new_database("sqlite", tmp_path, None)
    port = free_port()
    with running_emulated_cluster() as cluster:
        process = serve_kubernetes(tmp_path, db, cluster.url, port)
        try:
            block = {"apiVersion": API, "kind": "PrivateBlock", "metadata": {"name": "b"}}
            cluster.create(API, "privateblocks", None, {**block, "spec": {"epsilon": 1.0}})
            meta = {"name": "c", "namespace": "team-a"}
            body = {"apiVersion": API, "kind": "PrivacyClaim", "metadata": meta}
            spec = {"blocks": ["b"], "demand": {"epsilon": 0.4}}
            made = cluster.create(API, "privacyclaims", "team-a", {**body, "spec": spec})

            def phase() -> str | None:
                found = cluster.get(API, "privacyclaims", "team-a", "c") or {}
                return (found.get("status") or {}).get("phase")

            wait_until(lambda: phase() == "Allocated", timeout=30, what="the grant")
            process.kill()
            process.wait(30)
            patch = {"spec": {"consumedFraction": 0.5}}
            cluster.patch(API, "privacyclaims", "team-a", "c", patch)
            process = serve_kubernetes(tmp_path, db, cluster.url, port)

            def consumed() -> float:
                found = cluster.get(API, "privacyclaims", "team-a", "c") or {}
                return float((found.get("status") or {}).get("consumedFraction", 0.0))

            wait_until(lambda: consumed() == 0.5, timeout=30, what="the consumption")
            time.sleep(1.0)  # any second application would have landed by now
            uid = made["metadata"]["uid"]
            with httpx.Client(
                base_url=f"http://127.0.0.1:{port}",
                headers={"Authorization": f"Bearer {ADMIN}"},
            ) as admin:
                rows = admin.get("/v1/audit", params={"limit": 10_000}).json()["rows"]
                view = admin.get(
                    f"/v1/claims/c@{uid}", headers={"X-Dpsched-Tenant": "k8s.team-a"}
                ).json()
            ops = [r["op"] for r in rows if uid in str(r["args"]) or uid in str(r["request_id"])]
            assert ops.count("submit") == 1 and ops.count("allocate") == 1
            assert ops.count("consume") == 1
            assert view["consumed"]["b"] == [0.2]
        finally:
            process.send_signal(signal.SIGTERM)
            process.wait(30)
