"""Loading offline instances: the same ledger from YAML or JSON, and progress reports."""

from __future__ import annotations

import json
from pathlib import Path

import yaml
from tests.test_cli import EXAMPLES

from dpsched.core import snapshot
from dpsched.offline import load_instance
from dpsched.offline.instance import PROGRESS_EVERY


def test_yaml_and_json_of_one_instance_load_identically(tmp_path: Path) -> None:
    for name in ("fig1-basic.yaml", "fig3-rdp.yaml", "mixed-150.yaml"):
        data = yaml.safe_load((EXAMPLES / name).read_text())
        as_json = tmp_path / f"{name}.json"
        as_json.write_text(json.dumps(data))
        from_yaml = snapshot.to_dict(load_instance(EXAMPLES / name).ledger())
        assert snapshot.to_dict(load_instance(as_json).ledger()) == from_yaml


def test_loading_reports_progress_up_to_every_task(tmp_path: Path) -> None:
    n = PROGRESS_EVERY + 5
    data = {
        "accounting": "basic",
        "blocks": [{"id": "b0", "epsilon": 1}],
        "tasks": [
            {"id": f"t{i}", "blocks": ["b0"], "demand": {"epsilon": 0.001}} for i in range(n)
        ],
    }
    path = tmp_path / "many.json"
    path.write_text(json.dumps(data))
    seen: list[tuple[str, int, int]] = []
    instance = load_instance(path, lambda phase, done, total: seen.append((phase, done, total)))
    assert instance.n_tasks == n
    assert seen[0] == ("reading many.json", 0, 0)
    checks = [s for s in seen if s[0] == "checking tasks"]
    assert [c[1] for c in checks] == [0, PROGRESS_EVERY, n] and all(c[2] == n for c in checks)
