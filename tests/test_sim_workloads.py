"""Workload generators, the Alibaba-DP CSV format, and config validation."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from dpsched.budget import DEFAULT_ALPHAS, Accounting, rdp_to_epsilon
from dpsched.errors import InputError
from dpsched.sim.config import load_config, parse_config
from dpsched.sim.workloads.alibaba import (
    COLUMNS,
    CPU_FAMILIES,
    GPU_FAMILIES,
    MAX_BLOCKS,
    AlibabaSyntheticParams,
    alibaba_synthetic,
    read_alibaba_csv,
    write_alibaba_csv,
)
from dpsched.sim.workloads.base import Task
from dpsched.sim.workloads.microbenchmark import (
    BUCKET_ALPHAS,
    curve_buckets,
    exact_share,
    pool_mechanisms,
)
from dpsched.sim.workloads.registry import GENERATORS, generate_tasks
from dpsched.sim.workloads.sampling import normalized, normalizing_capacity

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
ARTIFACT_CSV = CONFIGS / "data" / "alibaba-dp-2000.csv"


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
    """§6.2: 620 dp-accounting curves, at least one per best-alpha bucket, outliers out."""
    assert len(pool_mechanisms()) == 620
    buckets = curve_buckets()
    assert set(buckets) == set(BUCKET_ALPHAS)
    for alpha, curves in buckets.items():
        assert curves, f"no curve with best alpha {alpha}"
        for _, curve in curves:
            norm = normalized(curve)
            assert DEFAULT_ALPHAS[int(np.argmin(norm))] == alpha
            assert 0.01 < np.min(norm) < 1.0


def test_microbenchmark_shift_keeps_the_rise_away_from_the_best_order() -> None:
    """Shifting (not scaling) to eps_min: a curve that is sharp in absolute terms stays
    sharp, so a task costs many eps_min away from its best order."""
    usable = normalizing_capacity() > 0
    for _, curve in curve_buckets()[64.0][:5]:
        norm = normalized(curve)
        shifted = normalized(exact_share(curve, 0.005))
        assert np.argmin(shifted) == np.argmin(norm)
        assert np.min(shifted) == pytest.approx(0.005)
        rise = (norm - np.min(norm))[usable]
        np.testing.assert_allclose((shifted - 0.005)[usable], rise, rtol=1e-9, atol=1e-12)
    # A best-order-64 task at order 5 costs well over ten eps_min on average.
    at_five = [normalized(exact_share(c, 0.005))[6] for _, c in curve_buckets()[64.0]]
    assert np.mean(at_five) > 10 * 0.005


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
    assert {t.name.split("-eps=")[0] for t in tasks} == set(CPU_FAMILIES + GPU_FAMILIES)
    assert {t.weight for t in tasks} == {1.0} and {t.selection for t in tasks} == {"most_recent"}
    assert all(t.demand.delta == pytest.approx(1 / (1000 * t.n_blocks)) for t in tasks)
    assert np.median(blocks) < blocks.mean()  # heavy tail


def test_alibaba_synthetic_is_reproducible_and_grows_by_appending() -> None:
    """Same seed, same tasks (gaps included); a larger load only adds tasks at the end."""

    def fingerprint(tasks: list[Task]) -> list[object]:
        return [(t.name, t.n_blocks, t.gap, t.demand.rdp) for t in tasks]

    short = alibaba_synthetic(1000, 5, AlibabaSyntheticParams(), 90)
    longer = alibaba_synthetic(6000, 5, AlibabaSyntheticParams(), 90)
    assert fingerprint(short) == fingerprint(
        alibaba_synthetic(1000, 5, AlibabaSyntheticParams(), 90)
    )
    assert fingerprint(longer[:1000]) == fingerprint(short)
    assert fingerprint(short) != fingerprint(
        alibaba_synthetic(1000, 6, AlibabaSyntheticParams(), 90)
    )


@dataclass(frozen=True)
class Marginals:
    family: dict[str, float]
    epsilon_p10_p50_p90: tuple[float, float, float]
    blocks_single: float
    blocks_median_p90_mean: tuple[float, float, float]
    eps_min_p25_p50_p75: tuple[float, float, float]
    best_alpha_5: float
    gap_mean_median: tuple[float, float]


ARTIFACT_CSV_MARGINALS = Marginals(
    family={
        "dp_ftrl": 0.322,
        "gaussian": 0.203,
        "laplace": 0.190,
        "subsampled_gaussian": 0.176,
        "subsampled_laplace": 0.110,
    },
    epsilon_p10_p50_p90=(0.107, 0.151, 0.386),
    blocks_single=0.232,
    blocks_median_p90_mean=(4.0, 21.0, 8.63),
    eps_min_p25_p50_p75=(0.0026, 0.0053, 0.0188),
    best_alpha_5=0.959,
    gap_mean_median=(0.984, 0.672),
)
"""Marginals of the DPack artifact's 2,000-task Alibaba-DP CSV
(configs/data/alibaba-dp-2000.csv), computed once from it; a test below recomputes them."""


def _marginals(tasks: list[Task], epsilons: np.ndarray) -> Marginals:
    families = [t.name.split("-eps")[0] for t in tasks]
    blocks = np.array([t.n_blocks for t in tasks])
    norm = normalized(np.array([t.demand.curve(DEFAULT_ALPHAS) for t in tasks]))
    best = np.asarray(DEFAULT_ALPHAS)[norm.argmin(axis=1)]
    gaps = np.array([t.gap for t in tasks], dtype=float)
    p10, p50, p90 = np.percentile(epsilons, [10, 50, 90])
    q25, q50, q75 = np.percentile(norm.min(axis=1), [25, 50, 75])
    return Marginals(
        family={f: families.count(f) / len(tasks) for f in set(families)},
        epsilon_p10_p50_p90=(p10, p50, p90),
        blocks_single=float(np.mean(blocks == 1)),
        blocks_median_p90_mean=(
            float(np.median(blocks)),
            float(np.percentile(blocks, 90)),
            float(blocks.mean()),
        ),
        eps_min_p25_p50_p75=(q25, q50, q75),
        best_alpha_5=float(np.mean(best == 5)),
        gap_mean_median=(float(gaps.mean()), float(np.median(gaps))),
    )


def _assert_close_marginals(got: Marginals, want: Marginals) -> None:
    assert set(got.family) == set(want.family)
    for name, share in want.family.items():
        assert got.family[name] == pytest.approx(share, abs=0.03), name
    assert got.epsilon_p10_p50_p90 == pytest.approx(want.epsilon_p10_p50_p90, rel=0.1)
    assert got.blocks_single == pytest.approx(want.blocks_single, abs=0.03)
    median, p90, mean = got.blocks_median_p90_mean
    want_median, want_p90, want_mean = want.blocks_median_p90_mean
    assert median == want_median
    assert p90 == pytest.approx(want_p90, rel=0.15)
    assert mean == pytest.approx(want_mean, rel=0.1)
    assert got.eps_min_p25_p50_p75 == pytest.approx(want.eps_min_p25_p50_p75, rel=0.15)
    assert got.best_alpha_5 == pytest.approx(want.best_alpha_5, abs=0.02)
    assert got.gap_mean_median == pytest.approx(want.gap_mean_median, rel=0.05)


def test_alibaba_synthetic_marginals_match_the_artifact_csv() -> None:
    """DPack §6.3's mapping with fitted proxies: mechanism shares after the filters,
    epsilon, blocks, smallest normalised demand, best orders and gaps as in the CSV."""
    tasks = alibaba_synthetic(10_000, 0, AlibabaSyntheticParams(), 90)
    epsilons = np.array([float(t.name.split("-eps=")[1]) for t in tasks])
    _assert_close_marginals(_marginals(tasks, epsilons), ARTIFACT_CSV_MARGINALS)


def test_artifact_csv_marginals_are_the_recorded_ones() -> None:
    """The recorded marginals are the artifact CSV's (the file is in the repository:
    without it this fails, it never skips)."""
    assert ARTIFACT_CSV.is_file(), f"the DPack artifact's CSV is missing: {ARTIFACT_CSV}"
    tasks = read_alibaba_csv(ARTIFACT_CSV)
    epsilons = np.array([t.demand.basic_epsilon for t in tasks])
    _assert_close_marginals(_marginals(tasks, epsilons), ARTIFACT_CSV_MARGINALS)


def test_alibaba_synthetic_subsampled_curves_land_in_the_calibration_band() -> None:
    """A subsampled task's curve converts (dp-accounting, its delta) to 0.9-1 x its epsilon,
    as the artifact's noise search leaves it."""
    tasks = alibaba_synthetic(400, 1, AlibabaSyntheticParams(), 90)
    subsampled = [t for t in tasks if t.name.startswith("subsampled")]
    assert len(subsampled) > 50
    for task in subsampled:
        target = float(task.name.split("-eps=")[1])
        got = rdp_to_epsilon(DEFAULT_ALPHAS, task.demand.curve(DEFAULT_ALPHAS), task.demand.delta)
        assert 0.9 * target * (1 - 1e-9) <= got <= target * (1 + 1e-9)


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
