"""WGAN-GP in PyTorch on a 2-D toy distribution (eight Gaussians on a circle).

A tiny generator and critic train with the Wasserstein loss plus
``10 · interpolated_gradient_penalty`` (one α per sample, seeded, per-sample norms).
The penalty is differentiated into the critic's parameters, which pulls the critic's
gradient norm on interpolates towards 1; the script prints that norm.

Run: python examples/wgan_gp.py               (shortened: 60 generator steps, a few seconds)
     python examples/wgan_gp.py --steps 400   (the full run; needs torch)
"""

import argparse
import importlib.util
import math
import sys

from arraypenalties import interpolated_gradient_penalty

LAMBDA, CRITIC_STEPS, BATCH = 10.0, 5, 256


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=60, help="generator steps (full run: 400)")
    args = parser.parse_args(argv)
    if importlib.util.find_spec("torch") is None:
        print("this example needs torch: pip install 'arraypenalties[torch]'")
        return
    import torch

    torch.manual_seed(0)
    torch.set_num_threads(1)
    centers = torch.tensor(
        [[math.cos(2 * math.pi * k / 8), math.sin(2 * math.pi * k / 8)] for k in range(8)]
    )

    def sample_real(n: int) -> torch.Tensor:
        return 2.0 * centers[torch.randint(8, (n,))] + 0.05 * torch.randn(n, 2)

    def mlp(n_in: int, n_out: int) -> torch.nn.Module:
        return torch.nn.Sequential(
            torch.nn.Linear(n_in, 64),
            torch.nn.ReLU(),
            torch.nn.Linear(64, 64),
            torch.nn.ReLU(),
            torch.nn.Linear(64, n_out),
        )

    generator, critic = mlp(2, 2), mlp(2, 1)
    g_opt = torch.optim.Adam(generator.parameters(), lr=1e-3, betas=(0.5, 0.9))
    c_opt = torch.optim.Adam(critic.parameters(), lr=1e-3, betas=(0.5, 0.9))
    rng = torch.Generator().manual_seed(1)  # the source of α: reproducible

    def critic_sum(x: torch.Tensor) -> torch.Tensor:
        return critic(x).sum()

    for step in range(1, args.steps + 1):
        for _ in range(CRITIC_STEPS):
            real = sample_real(BATCH)
            fake = generator(torch.randn(BATCH, 2)).detach()
            gp = interpolated_gradient_penalty(critic_sum, fake, real, rng=rng)
            loss = critic(fake).mean() - critic(real).mean() + LAMBDA * gp
            c_opt.zero_grad()
            loss.backward()  # the penalty reaches the critic's parameters
            c_opt.step()
        g_loss = -critic(generator(torch.randn(BATCH, 2))).mean()
        g_opt.zero_grad()
        g_loss.backward()
        g_opt.step()
        if step % max(1, args.steps // 4) == 0:
            print(f"step {step:4d}: critic loss {loss.item():+.3f}, penalty {gp.item():.4f}")

    real = sample_real(4 * BATCH)
    fake = generator(torch.randn(4 * BATCH, 2)).detach()
    alpha = torch.rand(4 * BATCH, 1, generator=rng)
    interpolates = (alpha * fake + (1 - alpha) * real).requires_grad_(True)
    (grads,) = torch.autograd.grad(critic(interpolates).sum(), interpolates)
    norms = grads.norm(dim=1)
    print(
        f"critic gradient norm on interpolates: mean {norms.mean().item():.3f}, "
        f"median {norms.median().item():.3f} (target 1)"
    )
    if not 0.5 < norms.mean().item() < 1.5:
        sys.exit("unexpected: the gradient penalty did not hold the critic's norm near 1")


if __name__ == "__main__":
    main()
