"""Scheduling policies over array problems, and the step that applies one to a ledger."""

from dpsched.policies.packing import PackResult, greedy_pack
from dpsched.policies.problem import Problem
from dpsched.policies.registry import POLICIES, Policy, get_policy
from dpsched.policies.result import PolicyResult, Status
from dpsched.policies.round import RoundMemory, RoundNeeds
from dpsched.policies.step import StepOutcome, problem_from_ledger, schedule_step

__all__ = [
    "POLICIES",
    "PackResult",
    "Policy",
    "PolicyResult",
    "Problem",
    "RoundMemory",
    "RoundNeeds",
    "Status",
    "StepOutcome",
    "get_policy",
    "greedy_pack",
    "problem_from_ledger",
    "schedule_step",
]
