"""Every error path ends in one line on stderr and exit status 2, before any output."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml
from tests.test_cli import EXAMPLES, dpsched

FIG1 = str(EXAMPLES / "fig1-basic.yaml")


def one_line_error(run: object, *fragments: str) -> str:
    assert run.returncode == 2, (run.stdout, run.stderr)  # type: ignore[attr-defined]
    stderr = run.stderr  # type: ignore[attr-defined]
    assert "Traceback" not in stderr and "Warning" not in stderr
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1, stderr
    assert lines[0].startswith("error: ")
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    return str(lines[0])


def test_json_output_into_a_missing_directory_fails_before_running(tmp_path: Path) -> None:
    run = dpsched("schedule", FIG1, "--json", str(tmp_path / "nope" / "r.json"))
    one_line_error(run, "--json", "does not exist")
    assert run.stdout == ""


def test_json_output_onto_a_directory_fails_before_running(tmp_path: Path) -> None:
    for command in (["schedule", FIG1], ["compare", FIG1], ["curve", "gaussian", "-p", "sigma=1"]):
        run = dpsched(*command, "--json", str(tmp_path))
        one_line_error(run, "--json", "is a directory")
        assert run.stdout == ""


def test_a_binary_instance_file_is_one_line(tmp_path: Path) -> None:
    path = tmp_path / "binary.yaml"
    path.write_bytes(b"\xff\xfe\x00garbage")
    one_line_error(dpsched("schedule", str(path)), "instance", "is not UTF-8", "0xff")


def test_a_directory_as_instance_is_one_line(tmp_path: Path) -> None:
    one_line_error(dpsched("schedule", str(tmp_path)), "is a directory")


def test_yaml_syntax_error_names_file_line_and_column(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("accounting: basic\nblocks:\n  - {id: b0, epsilon: 1\ntasks: []\n")
    line = one_line_error(dpsched("schedule", str(path)), f"{path}:", "invalid YAML")
    assert ":4:" in line or ":3:" in line  # where the unclosed mapping is noticed
    path.write_text("a: 1\n b: 2\n")
    one_line_error(dpsched("schedule", str(path)), f"{path}:2:3: invalid YAML: mapping values")


def test_yaml_duplicate_keys_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "dup.yaml"
    path.write_text("accounting: basic\naccounting: rdp\nblocks: [{id: b0, epsilon: 1}]\n")
    one_line_error(dpsched("schedule", str(path)), "duplicate", "accounting")


def test_json_syntax_error_names_file_line_and_column(tmp_path: Path) -> None:
    path = tmp_path / "bad.json"
    path.write_text('{"accounting": "basic",\n "blocks": [1, 2,]\n}\n')
    one_line_error(dpsched("schedule", str(path)), f"{path}:2:", "invalid JSON")


def selector_instance(tmp_path: Path, blocks: object) -> str:
    data = {
        "accounting": "basic",
        "blocks": [
            {"id": f"b{j}", "epsilon": 1, "dataset": "web", "dimensions": {"time": j}}
            for j in range(3)
        ],
        "tasks": [{"id": "t0", "blocks": blocks, "demand": {"epsilon": 0.1}}],
    }
    path = tmp_path / "selectors.yaml"
    path.write_text(yaml.safe_dump(data))
    return str(path)


@pytest.mark.parametrize(
    ("blocks", "fragments"),
    [
        (
            {"dataset": "web", "where": ["tme >= 1"]},
            ["tasks.t0.blocks.where[0]", "no block of dataset 'web' has dimension 'tme'"],
        ),
        ({"dataset": "wbe"}, ["tasks.t0.blocks.dataset", "unknown dataset 'wbe'", "web"]),
        ({"most_recent": 2, "dataset": "wbe"}, ["tasks.t0.blocks.dataset", "unknown dataset"]),
        (
            {"dataset": "web", "where": ["time >>= 1"]},
            ["tasks.t0.blocks.where", "cannot parse condition 'time >>= 1'"],
        ),
        (
            {"dataset": "web", "where": ["time == early"]},
            ["tasks.t0.blocks.where[0]", "'time' is a number on every block"],
        ),
    ],
)
def test_selector_typos_are_input_errors(
    tmp_path: Path, blocks: object, fragments: list[str]
) -> None:
    one_line_error(dpsched("schedule", selector_instance(tmp_path, blocks)), *fragments)


def test_a_selector_matching_no_block_by_value_is_a_rejection_with_its_reason(
    tmp_path: Path,
) -> None:
    path = selector_instance(tmp_path, {"dataset": "web", "where": ["time >= 100"]})
    out = tmp_path / "r.json"
    run = dpsched("schedule", path, "--json", str(out))
    assert run.returncode == 0, run.stderr
    report = json.loads(out.read_text())
    assert report["rejected"] == [
        {"id": "t0", "reason": "its selector matches no block (needs at least 1)"}
    ]
    assert "its selector matches no block" in run.stdout


def test_huge_numbers_are_refused_or_rejected_without_warnings(tmp_path: Path) -> None:
    path = tmp_path / "huge.yaml"
    data = {
        "accounting": "basic",
        "blocks": [{"id": "b0", "epsilon": 1e308}],
        "tasks": [{"id": "t0", "blocks": ["b0"], "demand": {"epsilon": 1e308}}],
    }
    path.write_text(yaml.safe_dump(data))
    one_line_error(dpsched("schedule", str(path)), "blocks.b0.epsilon", "less than or equal")
    data["blocks"] = [{"id": "b0", "epsilon": 1e6}]
    data["tasks"] = [
        {"id": f"t{i}", "blocks": ["b0"], "demand": {"epsilon": value}}
        for i, value in enumerate([1e308, 1e308, 5e5, 5e5])
    ]
    path.write_text(yaml.safe_dump(data))
    out = tmp_path / "r.json"
    run = dpsched("schedule", str(path), "--json", str(out))
    assert run.returncode == 0, run.stderr
    assert "Warning" not in run.stderr
    assert re.search(r"\d{20}", run.stdout) is None  # no 300-digit numbers
    report = json.loads(out.read_text())
    assert [r["id"] for r in report["rejected"]] == ["t0", "t1"]
    assert report["n_allocated"] == 2


def test_bad_policy_names_and_values_are_one_line(tmp_path: Path) -> None:
    missing = str(tmp_path / "not-loaded.yaml")  # checked after the options
    one_line_error(dpsched("schedule", missing, "--policy", "dpak"), "--policy", "'dpak'")
    one_line_error(dpsched("schedule", missing, "-o", "eta=2"), "dpack option.eta")
    one_line_error(dpsched("compare", FIG1, "--policies", "fcfs,bogus"), "--policies", "bogus")
    one_line_error(dpsched("curve", "gaussian", "-p", "sigma=1", "--alphas", "2,x"), "--alphas")
    one_line_error(dpsched("curve", "gaussian", "-p", "sigma=-1"), "mechanism.sigma")
    one_line_error(dpsched("reproduce", "dpack-99"), "FIGURE", "unknown figure")


def test_simulator_output_paths_are_checked_first(tmp_path: Path) -> None:
    config = Path(__file__).resolve().parents[1] / "configs" / "privatekube-single-block.yaml"
    blocker = tmp_path / "file"
    blocker.write_text("")
    one_line_error(dpsched("simulate", str(config), "--out", str(blocker)), "--out")
    one_line_error(
        dpsched("sweep", str(config), "--out", str(tmp_path / "missing" / "s.csv")), "--out"
    )
