"""Elastic-net regularised linear regression in PyTorch: the penalty drives
irrelevant weights towards zero while the loss fits the relevant ones.

Run: python examples/sparse_regression_torch.py   (needs torch)
"""

import importlib.util
import sys

from arraypenalties import elastic_net


def main() -> None:
    if importlib.util.find_spec("torch") is None:
        print("this example needs torch: pip install 'arraypenalties[torch]'")
        return
    import torch

    generator = torch.Generator().manual_seed(0)
    inputs = torch.randn(256, 8, generator=generator)
    true_weights = torch.tensor([2.0, -3.0, 0, 0, 0, 0, 0, 1.5])
    targets = inputs @ true_weights + 0.01 * torch.randn(256, generator=generator)

    weights = torch.zeros(8, requires_grad=True)
    optimizer = torch.optim.SGD([weights], lr=0.05)
    for _ in range(300):
        optimizer.zero_grad()
        fit = torch.mean((inputs @ weights - targets) ** 2)
        loss = fit + elastic_net(weights, lam=0.02, l1_ratio=0.9)
        loss.backward()
        optimizer.step()

    learned = weights.detach()
    print("learned weights:", [round(w, 3) for w in learned.tolist()])
    irrelevant = learned[2:7].abs().max().item()
    relevant = learned[[0, 1, 7]].abs().min().item()
    print(f"largest irrelevant |w| = {irrelevant:.3f}, smallest relevant |w| = {relevant:.3f}")
    if not irrelevant < 0.05 < relevant:
        sys.exit("unexpected: the penalty did not separate relevant from irrelevant weights")


if __name__ == "__main__":
    main()
