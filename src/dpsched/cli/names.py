"""Names the help texts list, kept here so that `--help` needs no heavy import.

A test checks each tuple against the registry it mirrors.
"""

POLICY_NAMES = ("fcfs", "dpf", "area", "dpack", "optimal", "rr")
MECHANISM_NAMES = (
    "laplace",
    "gaussian",
    "subsampled_gaussian",
    "subsampled_laplace",
    "dp_ftrl",
    "composition",
)
FIGURE_NAMES = (
    "dpack-4a",
    "dpack-4b",
    "dpack-5",
    "dpack-6a",
    "dpack-6b",
    "dpack-7a",
    "dpack-7b",
    "dpack-9",
    "privatekube-6",
    "privatekube-10",
    "privatekube-12",
)
