"""Regenerate examples/mixed-150.yaml: `python examples/make_mixed.py`."""

from pathlib import Path

import yaml

from dpsched.sim.workloads import mixed

HEADER = (
    "# The 'mixed' microbenchmark (seed 3): 150 tasks, Laplace / Gaussian / DP-SGD calibrated\n"
    "# to epsilon 0.5 or 1 at delta 1e-7, each on 1 or 10 of 10 blocks of (10, 1e-7).\n"
    "# Curves are computed by dp-accounting when the file is loaded.\n"
)

if __name__ == "__main__":
    data = mixed(150, 10, seed=3).to_instance_dict()
    text = yaml.safe_dump(data, sort_keys=False, default_flow_style=None, width=120)
    Path(__file__).with_name("mixed-150.yaml").write_text(HEADER + text)
