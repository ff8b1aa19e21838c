"""Simulation front end: reproducible workloads (and, next, the discrete-event simulator)."""
