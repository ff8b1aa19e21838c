"""Workload generators, the Alibaba-DP CSV format, and config validation."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from dpsched.budget import DEFAULT_ALPHAS, Accounting
from dpsched.errors import InputError
from dpsched.sim.config import load_config, parse_config
from dpsched.sim.workloads.alibaba import (
    COLUMNS,
    MAX_BLOCKS,
    AlibabaSyntheticParams,
    alibaba_synthetic,
    read_alibaba_csv,
    write_alibaba_csv,
)
from dpsched.sim.workloads.microbenchmark import BUCKET_ALPHAS, curve_buckets
from dpsched.sim.workloads.registry import GENERATORS, generate_tasks
from dpsched.sim.workloads.sampling import normalized

CONFIGS = Path(__file__).resolve().parents[1] / "configs"


def _fingerprint(name: str, seed: int, params: dict[str, object] | None = None) -> list[object]:
    tasks = generate_tasks(name, n_tasks=50, seed=seed, params=params or {}, n_blocks=20)
    return [(t.name, t.n_blocks, t.weight, tuple(t.demand.curve(DEFAULT_ALPHAS))) for t in tasks]


@pytest.mark.parametrize("name", list(GENERATORS))
def test_generators_are_reproducible_from_their_seed(name: str) -> None:
    assert _fingerprint(name, 3) == _fingerprint(name, 3)
    assert _fingerprint(name, 3) != _fingerprint(name, 4)


@pytest.mark.parametrize("name", list(GENERATORS))
def test_generator_params_refuse_unknown_keys(name: str) -> None:
    with pytest.raises(InputError, match=r"workload\.params\.nonsense: unknown key"):
        generate_tasks(name, n_tasks=5, seed=0, params={"nonsense": 1}, n_blocks=5)


def test_microbenchmark_has_a_curve_for_every_best_alpha_bucket() -> None:
    buckets = curve_buckets()
    assert set(buckets) == set(BUCKET_ALPHAS)
    for alpha, curves in buckets.items():
        assert curves, f"no curve with best alpha {alpha}"
        for _, curve in curves:
            norm = normalized(curve)
            assert DEFAULT_ALPHAS[int(np.argmin(norm))] == alpha
            assert np.min(norm) == pytest.approx(1.0)


def test_microbenchmark_knobs_shape_the_workload() -> None:
    same = generate_tasks(
        "microbenchmark",
        n_tasks=200,
        seed=0,
        params={"mu_blocks": 4, "sigma_blocks": 0, "sigma_alpha": 0, "eps_min": 0.02},
        n_blocks=10,
    )
    assert {t.n_blocks for t in same} == {4}
    for task in same:
        norm = normalized(task.demand.curve(DEFAULT_ALPHAS))
        assert DEFAULT_ALPHAS[int(np.argmin(norm))] == 5
        assert np.min(norm) == pytest.approx(0.02)
    spread = generate_tasks(
        "microbenchmark",
        n_tasks=400,
        seed=0,
        params={"mu_blocks": 4, "sigma_blocks": 3, "sigma_alpha": 3},
        n_blocks=10,
    )
    sizes = {t.n_blocks for t in spread}
    assert len(sizes) > 4 and min(sizes) >= 1 and max(sizes) <= 10
    best = {
        DEFAULT_ALPHAS[int(np.argmin(normalized(t.demand.curve(DEFAULT_ALPHAS))))] for t in spread
    }
    assert len(best) >= 5


def test_privatekube_mix_and_block_choice() -> None:
    tasks = generate_tasks(
        "privatekube",
        n_tasks=2000,
        seed=1,
        params={"last_block_probability": 0.75},
        n_blocks=20,
    )
    mice = [t for t in tasks if t.name == "mice"]
    assert 0.7 < len(mice) / len(tasks) < 0.8
    assert {t.demand.basic_epsilon for t in mice} == {0.1}
    assert {t.demand.basic_epsilon for t in tasks if t.name == "elephant"} == {1.0}
    assert 0.7 < sum(t.n_blocks == 1 for t in tasks) / len(tasks) < 0.8
    assert {t.n_blocks for t in tasks} == {1, 10}


def test_amazon_weights_only_change_weights() -> None:
    plain = generate_tasks("amazon", n_tasks=300, seed=2, params={}, n_blocks=50)
    weighted = generate_tasks("amazon", n_tasks=300, seed=2, params={"weights": True}, n_blocks=50)
    assert [t.name for t in plain] == [t.name for t in weighted]
    assert {t.weight for t in plain} == {1.0}
    large = {t.weight for t in weighted if t.name.startswith("dp-sgd")}
    small = {t.weight for t in weighted if t.name.startswith("statistics")}
    assert large <= {10.0, 50.0, 100.0, 500.0} and small <= {1.0, 5.0, 10.0, 50.0}
    assert all(1 <= t.n_blocks <= 20 for t in plain)
    assert all(t.n_blocks == 1 for t in plain if t.name.startswith("statistics"))


def test_alibaba_synthetic_respects_the_alibaba_filters() -> None:
    tasks = alibaba_synthetic(3000, 0, AlibabaSyntheticParams(), 100)
    blocks = np.array([t.n_blocks for t in tasks])
    assert blocks.min() >= 1 and blocks.max() <= MAX_BLOCKS
    eps_min = np.array([normalized(t.demand.curve(DEFAULT_ALPHAS)).min() for t in tasks])
    assert eps_min.min() >= 1e-3 - 1e-12 and eps_min.max() <= 1.0 + 1e-12
    families = {t.name for t in tasks}
    assert {"cpu-laplace", "cpu-gaussian", "cpu-subsampled_laplace"} <= families
    assert {"gpu-subsampled_gaussian", "gpu-dp_ftrl"} <= families
    assert np.median(blocks) < blocks.mean()  # heavy tail


def test_alibaba_csv_round_trip(tmp_path: Path) -> None:
    tasks = generate_tasks("mixed", n_tasks=30, seed=0, params={}, n_blocks=10)
    arrivals = np.cumsum(np.full(30, 0.5))
    path = tmp_path / "tasks.csv"
    write_alibaba_csv(path, tasks, arrivals)
    header = path.read_text().splitlines()[0].split(",")
    assert tuple(header) == COLUMNS
    back = read_alibaba_csv(path)
    assert len(back) == 30
    for original, replay in zip(tasks, back, strict=True):
        assert replay.n_blocks == original.n_blocks
        assert replay.selection == original.selection
        assert replay.gap == pytest.approx(0.5)
        np.testing.assert_allclose(
            replay.demand.curve(DEFAULT_ALPHAS), original.demand.curve(DEFAULT_ALPHAS)
        )
        assert replay.demand.basic_epsilon == pytest.approx(original.demand.basic_epsilon)
    assert len(read_alibaba_csv(path, n_tasks=7)) == 7


def test_alibaba_csv_errors_name_line_and_column(tmp_path: Path) -> None:
    path = tmp_path / "bad.csv"
    good = '1.0,1e-07,3,1,LatestBlocksFirst,t,"[2, 4]","[0.1, 0.2]",0.5,"[0.01, 0.02]"'
    bad = '1.0,1e-07,0,1,LatestBlocksFirst,t,"[2, 4]","[0.1, 0.2]",0.5,"[0.01, 0.02]"'
    path.write_text(",".join(COLUMNS) + "\n" + good + "\n" + bad + "\n")
    with pytest.raises(InputError, match=r"bad\.csv line 3\.n_blocks"):
        read_alibaba_csv(path)
    path.write_text("epsilon,delta\n1,0.1\n")
    with pytest.raises(InputError, match="lacks columns"):
        read_alibaba_csv(path)
    path.write_text(",".join(COLUMNS) + "\n" + good + "\n")
    (task,) = read_alibaba_csv(path)
    with pytest.raises(InputError, match=r"alphas: .*no value at orders"):
        task.demand.spec(Accounting("rdp", (2.0, 3.0)))
    assert task.demand.spec(Accounting("rdp", (2.0, 4.0))).model_dump() == {"rdp": (0.1, 0.2)}


BASE = {"workload": {"name": "mixed", "n_tasks": 10}}


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"colour": 1}, r"config\.colour: unknown key"),
        ({"scheduler.unlocking.kind": "per_step"}, r"config\.scheduler\.unlocking: .*needs n"),
        ({"scheduler.policy": "magic"}, r"config\.scheduler: .*unknown policy 'magic'"),
        ({"scheduler.options": {"eta": 2}}, r"dpack option\.eta"),
        (
            {
                "scheduler.mode": "offline",
                "scheduler.unlocking": {"kind": "lifetime", "lifetime": 5},
            },
            r"offline mode",
        ),
        ({"blocks.total": 0}, r"config\.blocks\.total"),
        ({"workload.name": "nope"}, r"unknown workload 'nope'"),
        ({"workload.params": {"sigma": 1}}, r"workload\.params\.sigma: unknown key"),
        ({"alphas": [3, 2]}, r"alphas\[1\]"),
        ({"scheduler.period": -1}, r"config\.scheduler\.period"),
    ],
)
def test_bad_configs_name_the_key(overrides: dict[str, object], message: str) -> None:
    with pytest.raises(InputError, match=message):
        parse_config(BASE, overrides)


@pytest.mark.parametrize("path", sorted(CONFIGS.glob("*.yaml")), ids=lambda p: p.name)
def test_shipped_configs_are_valid(path: Path) -> None:
    config = load_config(path)
    assert config.workload.name
