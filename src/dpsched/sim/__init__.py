"""Simulation front end: reproducible workloads (`workloads`), the discrete-event
simulator that drives the shared engine on virtual time (`simulator`; its run config in
`config`, claim arrival times in `arrivals`, its report in `results`), parameter sweeps
(`sweep`), plots (`plotting`) and the papers' figures reproduced with their claims
checked (`reproduce`)."""
