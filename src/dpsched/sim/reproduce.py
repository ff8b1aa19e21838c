"""The papers' headline figures, as sweeps over shipped configs, with their claims checked.

Each figure is a base config, a swept key (the x axis), a few series (policies or
accounting modes) and the qualitative claims the paper makes about it. `--quick`
shrinks the grids so `reproduce all --quick` fits a CI budget; the claims are
checked either way and reported as PASS / FAIL, never silently dropped.
"""

from __future__ import annotations

import itertools
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from dpsched.errors import InputError
from dpsched.sim.plotting import axis_label, line_figure, save
from dpsched.sim.results import write_csv
from dpsched.sim.sweep import Row, run_cells


@dataclass(frozen=True)
class Series:
    label: str
    overrides: Mapping[str, Any]
    applies_x: bool = True
    """False for a baseline the swept key does not apply to (drawn as a flat line)."""
    max_x: float | None = None
    """Skip x values above this (Optimal where it stops being tractable)."""


@dataclass(frozen=True)
class Check:
    claim: str
    holds: Callable[[dict[str, dict[Any, float]]], bool]
    """Given {series: {x: mean metric}}, does the paper's claim hold on our run?"""


@dataclass(frozen=True)
class FigureSpec:
    name: str
    title: str
    source: str
    base: Mapping[str, Any]
    x: str
    x_values: Sequence[Any]
    quick_x_values: Sequence[Any]
    series: Sequence[Series]
    metrics: Sequence[str] = ("n_allocated",)
    quick_overrides: Mapping[str, Any] = field(default_factory=dict)
    checks: Sequence[Check] = ()
    log_x: bool = False
    legend: str = "policy"
    """What the series are (the legend's title)."""


def _ordered(*names: str, strict: bool = False) -> Check:
    """names[0] >= names[1] >= ... at every x, and the first strictly above the last
    (with `strict`, each strictly above the next)."""

    def holds(means: dict[str, dict[Any, float]]) -> bool:
        xs = sorted(set.intersection(*(set(means.get(n, {})) for n in names)))
        if not xs:
            return False
        for x in xs:
            values = [means[n][x] for n in names]
            if any(a < b or (strict and a == b) for a, b in itertools.pairwise(values)):
                return False
            if not values[0] > values[-1]:
                return False
        return True

    if strict:
        return Check(f"{' > '.join(names)} at every x", holds)
    return Check(f"{' >= '.join(names)} at every x ({names[0]} > {names[-1]})", holds)


def _ratio_at_least(
    a: str,
    b: str,
    factor: float,
    where: str = "all",
    *,
    give: int = 0,
    from_x: float | None = None,
) -> Check:
    """`a` >= factor x `b` at the chosen x (less `give` claims: where identical claims tie
    exactly, which of them a greedy order takes decides one claim either way).

    where: "all" (every x, or every x >= `from_x`), "last" (the largest x), "some"
    (at least one x), "best" (`a`'s best value against `b`'s best value)."""

    def holds(means: dict[str, dict[Any, float]]) -> bool:
        xs = sorted(set(means.get(a, {})) & set(means.get(b, {})))
        if from_x is not None:
            xs = [x for x in xs if x >= from_x]
        if not xs:
            return False
        if where == "last":
            xs = xs[-1:]
        if where == "best":
            return max(means[a].values()) >= factor * max(means[b].values())
        meets = [means[a][x] >= factor * means[b][x] - give - 1e-9 for x in xs]
        return any(meets) if where == "some" else all(meets)

    scope = {
        "all": "at every x" if from_x is None else f"at every x >= {from_x:g}",
        "last": "at the largest x",
        "some": "at some x",
        "best": "at its best x",
    }[where]
    less = f" - {give} claim{'s' if give > 1 else ''}" if give else ""
    return Check(f"{a} >= {factor:g} x {b}{less} {scope}", holds)


def _ratio_at_most(a: str, b: str, factor: float) -> Check:
    """`a` <= factor x `b` at every x: no room for `a` to improve on `b`."""

    def holds(means: dict[str, dict[Any, float]]) -> bool:
        xs = sorted(set(means.get(a, {})) & set(means.get(b, {})))
        return bool(xs) and all(means[a][x] <= factor * means[b][x] + 1e-9 for x in xs)

    return Check(f"{a} <= {factor:g} x {b} at every x", holds)


def _gain_grows(a: str, b: str) -> Check:
    """a / b is higher at every x above the smallest than at the smallest x."""

    def holds(means: dict[str, dict[Any, float]]) -> bool:
        xs = sorted(set(means.get(a, {})) & set(means.get(b, {})))
        if len(xs) < 2 or any(means[b][x] <= 0 for x in xs):
            return False
        gain = [means[a][x] / means[b][x] for x in xs]
        return all(g > gain[0] for g in gain[1:])

    return Check(f"{a} / {b} higher at every x than at the smallest x", holds)


OPTIMAL = {"scheduler.policy": "optimal", "scheduler.options": {"time_limit": 60}}
QUICK_OPTIMAL_LIMIT = {"scheduler.options": {"time_limit": 10}}
OFFLINE_POLICIES = (
    Series("dpf", {"scheduler.policy": "dpf"}),
    Series("dpack", {"scheduler.policy": "dpack"}),
)
ONLINE_POLICIES = (
    Series("fcfs", {"scheduler.policy": "fcfs"}),
    Series("dpf", {"scheduler.policy": "dpf"}),
    Series("dpack", {"scheduler.policy": "dpack"}),
)
ALIBABA_ONLINE = {
    "blocks": {"initial": 1, "total": 90},
    "workload": {"name": "alibaba-synthetic", "n_tasks": 60000},
    "scheduler": {"mode": "batch", "period": 10, "unlocking": {"kind": "lifetime", "lifetime": 30}},
}
"""DPack §6.3's setting as its artifact runs it (`experiments/plot_alibaba.py`): a batch
every T = 10 time units, each block's budget unlocked linearly over 30 (its
`data_lifetime` 30 in n = 1,000 steps). With a batch every time unit and 1/50 unlocked
per batch instead, FCFS beats DPF at 10,000 tasks, on this workload (fcfs 5,659, dpf
5,273, dpack 6,076) as on the artifact's own CSV resampled to 10,000 tasks (5,655 /
5,268 / 6,014): there, the unlocking decides FCFS's place, not the workload."""
AMAZON = {
    "blocks": {"initial": 1, "total": 50},
    "workload": {"name": "amazon", "n_tasks": 15000, "params": {"mice_fraction": 0.5}},
    "scheduler": {"mode": "batch", "period": 1, "unlocking": {"kind": "per_step", "n": 50}},
}
"""DPack's Amazon Reviews variant: elephants and mice half and half, as the artifact's
generator draws them (`generate_curves.py privatekube`: `laplace_mice_fraction` 0.5)
and as the paper's "81% of the tasks with a best alpha of 5" implies (the eps 5
elephants' best order is 4: a sixth of the tasks; with PrivateKube's 25% elephants
only a twelfth)."""

FIGURES: dict[str, FigureSpec] = {
    f.name: f
    for f in (
        FigureSpec(
            "dpack-4a",
            "Block heterogeneity (offline microbenchmark, 20 blocks, 80 tasks)",
            "DPack Fig. 4a",
            {
                "blocks": {"initial": 20},
                "workload": {
                    "name": "microbenchmark",
                    "n_tasks": 80,
                    "params": {"eps_min": 0.1, "mu_blocks": 10, "sigma_alpha": 0},
                },
                "scheduler": {"mode": "offline"},
            },
            "workload.params.sigma_blocks",
            [0, 1, 2, 4, 6, 8, 10],
            [0, 4, 10],
            (*OFFLINE_POLICIES, Series("optimal", OPTIMAL)),
            checks=(
                # At sigma_blocks = 0 every task has the same best-order demand on the same
                # number of blocks: efficiencies tie exactly and the tie-break decides a claim.
                _ratio_at_least("dpack", "dpf", 1.0, give=1),
                _ratio_at_least("dpack", "dpf", 1.3, "last"),
                # "Across the entire spectrum of heterogeneity, DPack closely tracks the
                # optimal solution, staying within 23% of it."
                _ratio_at_least("dpack", "optimal", 0.77),
            ),
        ),
        FigureSpec(
            "dpack-4b",
            "Best-alpha heterogeneity (offline microbenchmark, 1 block, 400 tasks)",
            "DPack Fig. 4b",
            {
                "blocks": {"initial": 1},
                "workload": {
                    "name": "microbenchmark",
                    "n_tasks": 400,
                    "params": {"eps_min": 0.005, "mu_blocks": 1, "sigma_blocks": 0},
                },
                "scheduler": {"mode": "offline"},
            },
            "workload.params.sigma_alpha",
            [0, 1, 2, 3, 4],
            [0, 1, 2, 4],
            (*OFFLINE_POLICIES, Series("optimal", OPTIMAL)),
            checks=(
                _ratio_at_least("dpack", "dpf", 1.0),
                # "For workloads with low heterogeneity [...] DPack does not provide
                # significant improvement. As heterogeneity in either dimension increases,
                # DPack to outperform DPF, presenting significant improvement [...] for
                # over [...] 2 stdev in best alphas: [...] 67%". Our gain peaks at
                # sigma_alpha 1 (README: the artifact weighs buckets differently).
                _gain_grows("dpack", "dpf"),
                _ratio_at_least("dpack", "dpf", 1.25, "some"),
                _ratio_at_least("dpack", "optimal", 0.97),
            ),
        ),
        FigureSpec(
            "dpack-5",
            "Scaling with load (offline microbenchmark, 7 blocks)",
            "DPack Fig. 5",
            {
                "blocks": {"initial": 7},
                "workload": {
                    "name": "microbenchmark",
                    "n_tasks": 100,
                    "params": {
                        "eps_min": 0.01,
                        "mu_blocks": 1,
                        "sigma_blocks": 10,
                        "sigma_alpha": 4,
                    },
                },
                "scheduler": {"mode": "offline"},
            },
            "workload.n_tasks",
            [50, 100, 200, 400, 800, 1600, 3200],
            [50, 100, 200, 800],
            (*OFFLINE_POLICIES, Series("optimal", OPTIMAL, max_x=200)),
            metrics=("n_allocated", "scheduler_time_s"),
            checks=(
                # "DPF performs the worst [...] DPack [...] schedules more tasks when it has
                # a larger pool of tasks to choose from". With 50 tasks most fit and DPF's
                # order can be as good as any (seed 0: DPF 38 = Optimal, DPack 33).
                _ratio_at_least("dpack", "dpf", 1.0, from_x=100),
                _ratio_at_least("dpack", "dpf", 1.2, "last"),
                # "DPack matches Optimal (up to Optimal's 200 task limit)": 0.87 of it at 50
                # tasks, 1.0 at 100, 0.98 at 200 here.
                _ratio_at_least("dpack", "optimal", 0.85),
            ),
            log_x=True,
        ),
        FigureSpec(
            "dpack-6a",
            "Alibaba-DP-shaped (SYNTHETIC) online, 90 blocks: allocated vs submitted",
            "DPack Fig. 6a",
            ALIBABA_ONLINE,
            "workload.n_tasks",
            [5000, 10000, 20000, 40000, 60000],
            [5000, 10000, 20000],
            ONLINE_POLICIES,
            checks=(
                # "both DPF and DPack can allocate more tasks [...] This is not the case
                # with FCFS [...] DPack allocates 22-43% more tasks than DPF".
                _ordered("dpack", "dpf", "fcfs", strict=True),
                _ratio_at_least("dpack", "dpf", 1.3, "last"),
            ),
        ),
        FigureSpec(
            "dpack-6b",
            "Alibaba-DP-shaped (SYNTHETIC) online, 60k tasks: allocated vs blocks",
            "DPack Fig. 6b",
            ALIBABA_ONLINE,
            "blocks.total",
            [30, 60, 90, 120],
            [30, 60, 90],
            ONLINE_POLICIES,
            quick_overrides={"workload.n_tasks": 20000},
            checks=(
                # "DPack consistently outperforms DPF, scheduling 30-71% more tasks."
                _ordered("dpack", "dpf", "fcfs", strict=True),
                _ratio_at_least("dpack", "dpf", 1.3),
            ),
        ),
        FigureSpec(
            "dpack-7a",
            "Amazon Reviews (DPack's half-elephant mix), 50 daily blocks, no weights",
            "DPack Fig. 7a",
            AMAZON,
            "workload.n_tasks",
            [5000, 15000, 30000, 60000],
            [5000, 30000],
            ONLINE_POLICIES,
            metrics=("total_weight",),
            # "all schedulers perform largely the same on this workload"
            checks=(
                _ratio_at_least("dpack", "dpf", 0.95),
                _ratio_at_most("dpack", "dpf", 1.05),
            ),
        ),
        FigureSpec(
            "dpack-7b",
            "Amazon Reviews (DPack's half-elephant mix) with random weights, 50 daily blocks",
            "DPack Fig. 7b",
            {
                **AMAZON,
                "workload": {
                    "name": "amazon",
                    "n_tasks": 15000,
                    "params": {"mice_fraction": 0.5, "weights": True},
                },
            },
            "workload.n_tasks",
            [5000, 15000, 30000, 60000],
            [5000, 30000],
            ONLINE_POLICIES,
            metrics=("total_weight",),
            # "DPack now outperforms DPF by 9-50%": once the budget is scarce (from 600
            # tasks a day; below, every policy grants all but the eps 5 elephants).
            checks=(
                _ratio_at_least("dpack", "dpf", 1.0),
                _ratio_at_least("dpack", "dpf", 1.09, "last"),
            ),
        ),
        FigureSpec(
            "dpack-9",
            "Batch period T (Alibaba-DP-shaped SYNTHETIC, 90 blocks, 20k tasks)",
            "DPack Fig. 9",
            {**ALIBABA_ONLINE, "workload": {"name": "alibaba-synthetic", "n_tasks": 20000}},
            "scheduler.period",
            [1, 2, 5, 10, 20],
            [1, 5, 20],
            ONLINE_POLICIES,
            metrics=("n_allocated", "mean_delay"),
            quick_overrides={"workload.n_tasks": 5000},
            # "DPack consistently outperforms DPF [...] in this experiment" and "T=1 [...]
            # is already giving batches large enough to separate DPack from FCFS". (Our
            # FCFS beats DPF at T = 1 on the full grid: 8,087 against 7,461.)
            checks=(
                _ratio_at_least("dpack", "dpf", 1.0),
                _ordered("dpack", "fcfs", strict=True),
            ),
        ),
        FigureSpec(
            "privatekube-6",
            "Single block, basic composition: DPF-N vs FCFS vs RR-N over N",
            "PrivateKube Fig. 6",
            {
                "accounting": "basic",
                "blocks": {"initial": 1},
                "workload": {
                    "name": "privatekube",
                    "n_tasks": 500,
                    "arrival": {"kind": "poisson", "rate": 1.0},
                },
                "scheduler": {"mode": "on_arrival", "timeout": 300},
            },
            "scheduler.unlocking.n",
            [1, 25, 50, 75, 100, 125, 150, 175, 200],
            [1, 50, 100, 150],
            (
                Series("fcfs", {"scheduler.policy": "fcfs"}, applies_x=False),
                Series(
                    "dpf", {"scheduler.policy": "dpf", "scheduler.unlocking.kind": "per_arrival"}
                ),
                Series("rr", {"scheduler.policy": "rr", "scheduler.unlocking.kind": "per_arrival"}),
            ),
            quick_overrides={"workload.n_tasks": 300},
            checks=(
                _ratio_at_least("dpf", "fcfs", 1.5, "best"),
                _ratio_at_least("dpf", "rr", 1.5, "best"),
            ),
        ),
        FigureSpec(
            "privatekube-10",
            "Basic composition vs Renyi DP (DPF-N, 50 blocks, 4x PrivateKube's basic load)",
            "PrivateKube Fig. 10",
            {
                "blocks": {"initial": 1, "total": 50},
                "workload": {
                    "name": "privatekube",
                    "n_tasks": 25600,
                    "params": {"last_block_probability": 0.75},
                    "arrival": {"kind": "poisson", "rate": 512.0},
                },
                "scheduler": {
                    "policy": "dpf",
                    "mode": "on_arrival",
                    "timeout": 30,
                    "unlocking": {"kind": "per_arrival", "n": 100},
                },
            },
            "scheduler.unlocking.n",
            [50, 100, 200, 400],
            [100, 400],
            (
                Series("basic", {"accounting": "basic"}),
                Series("rdp", {"accounting": "rdp"}),
            ),
            quick_overrides={
                "blocks.total": 20,
                "workload.n_tasks": 10240,
            },
            checks=(_ratio_at_least("rdp", "basic", 2.0),),
            legend="accounting",
        ),
        FigureSpec(
            "privatekube-12",
            "Event vs User-Time vs User DP (DPF-N, Renyi, Amazon-shaped)",
            "PrivateKube Fig. 12a",
            {
                "blocks": {"initial": 1, "total": 50, "epsilon": 10, "delta": 1e-7},
                "workload": {
                    "name": "amazon",
                    "n_tasks": 15000,
                    "arrival": {"kind": "poisson", "rate": 300.0},
                },
                "scheduler": {
                    "policy": "dpf",
                    "mode": "batch",
                    "period": 1,
                    "unlocking": {"kind": "per_arrival", "n": 100},
                },
                "semantics": {"users_per_period": 1000, "group": 5000, "epsilon_count": 0.1},
            },
            "scheduler.unlocking.n",
            [50, 100, 200, 400],
            [100, 400],
            (
                Series("event", {"semantics.kind": "event"}),
                Series("user_time", {"semantics.kind": "user_time"}),
                Series("user", {"semantics.kind": "user"}),
            ),
            checks=(_ordered("event", "user_time", "user"),),
            legend="DP semantics",
        ),
    )
}


@dataclass
class FigureResult:
    spec: FigureSpec
    rows: list[Row]
    means: dict[str, dict[str, dict[Any, float]]]
    """metric -> series -> x -> mean over repeats."""
    checks: list[tuple[str, bool]]
    files: list[Path]


def figure_cells(spec: FigureSpec, quick: bool) -> list[dict[str, Any]]:
    cells = []
    for x in spec.quick_x_values if quick else spec.x_values:
        for series in spec.series:
            if series.max_x is not None and x > series.max_x:
                continue
            cell: dict[str, Any] = {**(spec.quick_overrides if quick else {})}
            cell.update(series.overrides)
            if quick and series.label == "optimal":
                cell.update(QUICK_OPTIMAL_LIMIT)
            if series.applies_x:
                cell[spec.x] = x
            cells.append({"_series": series.label, "_x": x, **cell})
    return cells


def reproduce(
    name: str,
    *,
    quick: bool,
    out: str | Path = "figures",
    workers: int = 1,
    on_row: Callable[[int, Row], None] | None = None,
) -> FigureResult:
    spec = FIGURES.get(name)
    if spec is None:
        raise InputError("figure", f"unknown figure {name!r}; choose from {', '.join(FIGURES)}")
    tagged = figure_cells(spec, quick)
    cells = [{k: v for k, v in c.items() if not k.startswith("_")} for c in tagged]
    rows = run_cells(spec.base, cells, workers=workers, on_row=on_row)
    for tag, row in zip(tagged, rows, strict=True):
        row["series"] = tag["_series"]
        row["x"] = tag["_x"]
    directory = Path(out)
    directory.mkdir(parents=True, exist_ok=True)
    table = directory / f"{name}.csv"
    write_csv(table, rows)
    files = [table, *(save(plot, directory / f) for f, plot in figure_plots(spec, rows).items())]
    means = {metric: _means(rows, metric) for metric in spec.metrics}
    checks = [(c.claim, c.holds(means[spec.metrics[0]])) for c in spec.checks]
    return FigureResult(spec, rows, means, checks, files)


def figure_plots(spec: FigureSpec, rows: Sequence[Mapping[str, Any]]) -> dict[str, Figure]:
    """The figure's plots by file name, one per metric, from its table's rows: those of a
    run, or its CSV read back (`plotting.read_table`), which redraws a figure without
    running it again."""
    plots = {}
    for metric in spec.metrics:
        suffix = "" if len(spec.metrics) == 1 else f"-{metric}"
        plots[f"{spec.name}{suffix}.png"] = line_figure(
            rows,
            x="x",
            y=metric,
            hue="series",
            title=f"{spec.source}: {spec.title}",
            log_x=spec.log_x,
            xlabel=axis_label(spec.x),
            legend=spec.legend,
        )
    return plots


def _means(rows: Sequence[Row], metric: str) -> dict[str, dict[Any, float]]:
    values: dict[str, dict[Any, list[float]]] = defaultdict(lambda: defaultdict(list))
    for row in rows:
        if row.get("error") is None and row.get(metric) is not None:
            values[row["series"]][row["x"]].append(float(row[metric]))
    return {s: {x: float(np.mean(v)) for x, v in xs.items()} for s, xs in values.items()}
