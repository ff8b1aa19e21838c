"""The offline front end: a fixed instance of blocks and tasks, scheduled in one pass."""

from dpsched.offline.instance import Instance, bulk_allocation, load_instance, parse_instance
from dpsched.offline.run import run_policy, schedule_report

__all__ = [
    "Instance",
    "bulk_allocation",
    "load_instance",
    "parse_instance",
    "run_policy",
    "schedule_report",
]
