"""Pipelines: several weighted penalties as one object, their metrics, and a config.

The counterpart of NxPenalties' ``pipeline_composition.exs``: build a pipeline by method
chaining or from specs, compute the total and the per-penalty metrics (one host transfer),
change weights and switch entries off (pipelines are immutable), and round-trip the
pipeline through JSON.

Run: python examples/pipeline_composition.py   (needs numpy)
"""

import importlib.util
import json


def main() -> None:
    if importlib.util.find_spec("numpy") is None:
        print("this example needs numpy: pip install 'arraypenalties[numpy]'")
        return
    import numpy as np

    from arraypenalties import Pipeline, pipeline

    reg = (
        Pipeline(name="reg")
        .add("sparsity", "l1", weight=0.1)
        .add("decay", "l2", weight=0.01, opts={"center": "mean"})
        .add("mix", "elastic_net", weight=0.05, opts={"l1_ratio": 0.2})
    )
    print(reg)
    x = np.asarray([1.0, -2.0, 3.0, 0.5])
    total, metrics = reg.compute(x)
    for key, value in metrics.items():
        print(f"  {key:18} {value:.4f}")
    by_hand = (
        0.1 * np.abs(x).sum()
        + 0.01 * ((x - x.mean()) ** 2).sum()
        + 0.05 * (0.2 * np.abs(x).sum() + 0.8 * (x**2).sum())
    )
    assert np.isclose(total, by_hand)
    assert np.isclose(metrics["total"], by_hand)

    # immutable: every change returns a new pipeline
    later = reg.update_weight("sparsity", 0.0).set_enabled("mix", False)
    print("after update_weight / set_enabled:", later)
    print(
        f"  total {later.compute(x)[1]['total']:.4f}"
        f" (the original is unchanged: {reg.compute(x)[1]['total']:.4f})"
    )

    # the same pipeline from specs, and through JSON
    same = pipeline(
        [
            ("l1", {"weight": 0.1, "name": "sparsity"}),
            ("l2", {"weight": 0.01, "opts": {"center": "mean"}, "name": "decay"}),
            ("elastic_net", {"weight": 0.05, "opts": {"l1_ratio": 0.2}, "name": "mix"}),
        ]
    )
    assert same.compute(x)[1] == metrics
    text = json.dumps(reg.to_config())
    print("JSON config:", text[:72], "...")
    assert Pipeline.from_config(json.loads(text)) == reg

    # extra_args override an option for every entry that takes it, for this call only
    _, doubled = reg.compute(x, extra_args={"lam": 2.0})
    print(f"with extra_args={{'lam': 2.0}}: total {doubled['total']:.4f}")


if __name__ == "__main__":
    main()
