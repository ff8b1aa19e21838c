"""A durable engine with a front end's own state and operation beside the ledger, and a
history to journal: what the journal tests (test_durable.py, test_cli_service.py) share.

Kept out of the test modules so that it is imported once, under one name: its record
type registers its operation name (`core.records`), and pytest imports a test module
under its file name while `from tests.test_... import` imports it again under another.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import pytest

from dpsched.budget import Accounting
from dpsched.core import BlockSpec, PerArrival
from dpsched.core.records import Operation
from dpsched.engine.durable import Context, DurableEngine, FrontEndState
from dpsched.engine.journal import Journal
from dpsched.errors import DpschedError

ACCOUNTING = Accounting("rdp", (2.0, 4.0, 8.0))


@dataclass(frozen=True)
class TeamJoined(Operation):
    """A front end's own operation (`Tenants` replays it)."""

    op: ClassVar[str] = "test_team_joined"
    name: str


class Tenants(FrontEndState):
    """A front end's own state, journaled beside the ledger's."""

    def __init__(self) -> None:
        self.names: list[str] = []

    def reset(self) -> None:
        self.names = []

    def snapshot(self) -> dict[str, Any]:
        return {"names": list(self.names)}

    def load(self, data: dict[str, Any], arrays: dict[str, Any]) -> None:
        self.names = list(data["names"])

    def restore(self, operation: Operation) -> None:
        assert isinstance(operation, TeamJoined)
        self.names.append(operation.name)


def journal(url: str) -> Journal:
    Journal(url, check=False).upgrade()
    return Journal(url)


def open_engine(url: str, snapshot_every: int = 10_000) -> tuple[DurableEngine, Tenants]:
    tenants = Tenants()
    durable = DurableEngine.open(
        journal(url),
        ACCOUNTING,
        PerArrival(2),
        "dpack",
        state=tenants,
        snapshot_every=snapshot_every,
    )
    return durable, tenants


def some_history(durable: DurableEngine, tenants: Tenants, rounds: int = 6) -> None:
    """Blocks, claims, rounds, consumption, a release and a refused operation."""
    who = Context(tenant="team-a", actor="alice")
    tenants.names.append("team-a")
    durable.record(TeamJoined("team-a"), who, 0.0)
    durable.commit()
    for step in range(rounds):
        now = float(step)
        with durable.acting(who, now) as engine:
            engine.add_block(BlockSpec(id=f"b{step}", capacity=(0.5, 1.0, 1.5)), now)
            for k in range(3):
                engine.submit(
                    {
                        "id": f"c{step}-{k}",
                        "blocks": {"most_recent": 1 + k % 2},
                        "demand": {"rdp": [0.2 + 0.1 * k, 0.3, 0.4]},
                        "timeout": 4,
                    },
                    now,
                )
            granted = engine.round(now).granted
            if granted:
                engine.consume(granted[0], request_id=f"use-{step}", time=now, fraction=0.5)
            if len(granted) > 1:
                engine.release(granted[1], request_id=f"free-{step}", time=now)
            with pytest.raises(DpschedError):  # refused: changes and journals nothing
                engine.release("no-such-claim", request_id=f"bad-{step}", time=now)
        durable.commit()
