"""PrivateKube's Fig. 3 pipeline on Kubeflow: allocate -> download -> train -> evaluate ->
consume -> upload. Budget is allocated before any data is read and consumed before the
model leaves the pipeline (upload is the externally visible step).

    python examples/kubeflow/pipeline.py          # writes examples/kubeflow/pipeline.yaml

The dpsched steps read the tenant's token from $DPSCHED_TOKEN: set it from a Secret
(kfp-kubernetes `use_secret_as_env`) in your cluster.
"""

# No `from __future__ import annotations`: kfp reads the components' annotations as types.
import sys
from pathlib import Path

from kfp import compiler, dsl

from dpsched.k8s.kubeflow import allocate, consume

IMAGE = "python:3.11-slim"
allocate_op = dsl.component(allocate, base_image=IMAGE, packages_to_install=["dpsched==0.2.0"])
consume_op = dsl.component(consume, base_image=IMAGE, packages_to_install=["dpsched==0.2.0"])


@dsl.component(base_image=IMAGE)
def download(blocks: list, dataset: str) -> str:
    """Read only the granted blocks (what the budget covers)."""
    return f"{dataset}:{','.join(blocks)}"


@dsl.component(base_image=IMAGE)
def train(data: str, grant: dict, epsilon: float) -> str:
    """Train with the noise the grant calibrated (DP-SGD's noise_multiplier)."""
    return f"model({data}, epsilon={epsilon:.3g}, noise={grant.get('noise_multiplier')})"


@dsl.component(base_image=IMAGE)
def evaluate(model: str) -> float:
    return 0.0 if not model else 1.0


@dsl.component(base_image=IMAGE)
def upload(model: str, consumed: float) -> str:
    """Only reached once the budget is consumed."""
    return f"uploaded {model} ({consumed:.0%} of the grant consumed)"


@dsl.pipeline(name="dpsched-private-training", description="PrivateKube Fig. 3 with dpsched")
def private_training(
    service_url: str = "http://dpsched.dpsched-system.svc:8700",
    dataset: str = "reviews",
    epsilon_low: float = 0.5,
    epsilon_high: float = 2.0,
) -> None:
    grant = allocate_op(
        service_url=service_url,
        claim_id=f"sentiment-{dsl.PIPELINE_JOB_ID_PLACEHOLDER}",
        claim={
            "blocks": {"dataset": dataset, "where": ["time >= 1"]},
            "demand": {
                "mechanism": "subsampled_gaussian",
                "sampling_rate": 0.01,
                "steps": 2000,
                "epsilon": [epsilon_low, epsilon_high],
                "delta": 1e-7,
            },
        },
    )
    data = download(blocks=grant.outputs["blocks"], dataset=dataset)
    model = train(data=data.output, grant=grant.outputs["grant"], epsilon=grant.outputs["epsilon"])
    evaluate(model=model.output)
    spent = consume_op(service_url=service_url, claim_id=grant.outputs["claim_id"], fraction=1.0)
    upload(model=model.output, consumed=spent.output)


def compile_to(path: Path) -> None:
    compiler.Compiler().compile(private_training, str(path))


if __name__ == "__main__":
    compile_to(Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).with_suffix(".yaml"))
