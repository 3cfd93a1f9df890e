"""Gradient tracking: which penalty pulls hardest on the parameters, step by step.

The counterpart of NxPenalties' ``gradient_tracking.exs``. ``grad_norm`` gives the norm of
one function's gradient; ``Pipeline.compute(track_grad_norms=True)`` adds each entry's
(unweighted) gradient norm and the norm of the weighted total's gradient to the metrics,
from one forward and one backward per entry. A weight times its entry's norm is that
entry's pull; their shares show which penalty dominates as training goes on.

Run: python examples/gradient_tracking.py   (needs torch)
"""

import importlib.util
import math


def main() -> None:
    if importlib.util.find_spec("torch") is None:
        print("this example needs torch: pip install 'arraypenalties[torch]'")
        return
    import torch

    from arraypenalties import Pipeline, grad_norm, pipeline_grad_norms, total_grad_norm

    x = torch.tensor([1.0, -2.0, 3.0])
    l1_norm, l2_norm = grad_norm(lambda v: v.abs().sum(), x), grad_norm(lambda v: (v * v).sum(), x)
    print(f"grad_norm(sum |x|) = {l1_norm:.4f} (√3 = {math.sqrt(3):.4f})")
    print(f"grad_norm(sum x²)  = {l2_norm:.4f} (√56 = {math.sqrt(56):.4f})")

    reg = (
        Pipeline(name="reg")
        .add("l1", "l1", weight=2e-3)
        .add("l2", "l2", weight=2e-3)
        .add("orthogonality", "orthogonality", weight=2e-2, opts={"axis": "vocabulary"})
    )
    eye = torch.eye(3)  # orthogonal already: the orthogonality entry does not pull
    print("at eye(3):", pipeline_grad_norms(reg, eye), f"total {total_grad_norm(reg, eye):.6f}")

    torch.manual_seed(0)
    inputs, labels = torch.randn(256, 16), torch.randint(0, 4, (256,))
    weights = torch.nn.Parameter(0.1 * torch.randn(16, 4))
    optimizer = torch.optim.SGD([weights], lr=0.5)
    print(f"\n{'step':>4} {'loss':>7} " + " ".join(f"{e.name + ' share':>20}" for e in reg))
    for step in range(101):
        penalty, metrics = reg.compute(weights, track_grad_norms=True)
        loss = torch.nn.functional.cross_entropy(inputs @ weights, labels) + penalty
        optimizer.zero_grad()
        loss.backward()  # the tracked total is still differentiable
        optimizer.step()
        if step % 20 == 0:
            pulls = [e.weight * metrics[f"{e.name}_grad_norm"] for e in reg]
            shares = " ".join(f"{p / sum(pulls):20.1%}" for p in pulls)
            print(f"{step:4d} {loss.item():7.4f} {shares}")
    print("\nmetric keys:", ", ".join(sorted(metrics)))


if __name__ == "__main__":
    main()
