"""The engine every front end drives: the simulator, the offline commands, the budget
service and the Kubernetes operator run the same rounds on the same ledger code."""

from dpsched.engine.engine import Engine, RoundOutcome

__all__ = ["Engine", "RoundOutcome"]
