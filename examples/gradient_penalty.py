"""Gradient penalties: keep a model's input gradient near a target norm.

The counterpart of NxPenalties' ``gradient_penalty.exs``: ``gradient_penalty`` with one
global norm and per sample, ``interpolated_gradient_penalty`` (WGAN-GP, one α per sample,
seeded) differentiated into a critic's parameters, ``output_magnitude_penalty`` as the
first-order proxy, and the finite-difference value on numpy. See ``wgan_gp.py`` for a
whole training run.

Run: python examples/gradient_penalty.py   (needs torch)
"""

import importlib.util
import math
import warnings


def main() -> None:
    if importlib.util.find_spec("torch") is None:
        print("this example needs torch: pip install 'arraypenalties[torch]'")
        return
    import torch

    from arraypenalties import (
        FiniteDifferenceWarning,
        gradient_penalty,
        interpolated_gradient_penalty,
        output_magnitude_penalty,
    )

    x = torch.log(torch.tensor([[0.5, 0.5]]))
    value = gradient_penalty(torch.sum, x)  # ∇ sum = [1, 1]: (√2 − 1)²
    expected = (math.sqrt(2) - 1) ** 2
    print(
        f"gradient_penalty(sum, [[ln .5, ln .5]]) = {value:.6f}  ((sqrt 2 - 1)^2 = {expected:.6f})"
    )

    torch.manual_seed(0)
    critic = torch.nn.Sequential(torch.nn.Linear(2, 32), torch.nn.Tanh(), torch.nn.Linear(32, 1))
    real, fake = torch.randn(64, 2) + 2.0, torch.randn(64, 2)
    batch = torch.cat([real[:4], fake[:4]])
    global_gp = gradient_penalty(lambda v: critic(v).sum(), batch)
    per_sample = gradient_penalty(lambda v: critic(v).sum(), batch, batch_axis=0)
    print(f"on 8 points: one global norm {global_gp:.4f}, per-sample norms {per_sample:.4f}")

    optimizer = torch.optim.Adam(critic.parameters(), lr=1e-2)
    rng = torch.Generator().manual_seed(1)  # the source of α: reproducible
    for step in range(201):
        gp = interpolated_gradient_penalty(lambda v: critic(v).sum(), fake, real, rng=rng)
        loss = critic(fake).mean() - critic(real).mean() + 10.0 * gp
        optimizer.zero_grad()
        loss.backward()  # the penalty's gradient reaches the critic's parameters
        optimizer.step()
        if step % 50 == 0:
            print(
                f"step {step:3d}: critic loss {loss.item():+.4f}, gradient penalty {gp.item():.4f}"
            )
    interpolates = torch.lerp(real, fake, torch.rand(64, 1, generator=rng)).requires_grad_(True)
    (grads,) = torch.autograd.grad(critic(interpolates).sum(), interpolates)
    norm = grads.norm(dim=1).mean().item()
    print(f"critic gradient norm on fresh interpolates: {norm:.3f} (target 1)")
    assert 0.5 < norm < 1.5

    activations = torch.randn(16, 8) * 3.0
    print(
        f"output_magnitude_penalty (RMS {activations.pow(2).mean().sqrt():.3f} vs 1): "
        f"{output_magnitude_penalty(activations):.4f}"
    )

    import numpy as np

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", FiniteDifferenceWarning)
        fd = gradient_penalty(np.sum, np.log(np.asarray([[0.5, 0.5]])))
    print(f"numpy (finite differences, {len(caught)} FiniteDifferenceWarning): {fd:.6f}")
    assert abs(fd - (math.sqrt(2) - 1) ** 2) < 1e-6


if __name__ == "__main__":
    main()
