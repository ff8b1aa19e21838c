"""Seeded workload generators producing blocks and claim specs."""

from dpsched.sim.workloads.base import Workload
from dpsched.sim.workloads.calibration import calibrated_mechanism
from dpsched.sim.workloads.mixed import mixed, recent_heavy_tail

__all__ = ["Workload", "calibrated_mechanism", "mixed", "recent_heavy_tail"]
