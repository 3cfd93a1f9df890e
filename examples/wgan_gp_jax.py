"""WGAN-GP in JAX on a 2-D toy distribution (eight Gaussians on a circle).

The same experiment as ``wgan_gp.py``: the critic loss adds
``10 · interpolated_gradient_penalty(...)``, which nests ``jax.grad`` inside the
``jax.grad`` of the training step, all under ``jax.jit`` with the random key as an
argument. Plain SGD-with-momentum keeps the example free of other dependencies.

Run: python examples/wgan_gp_jax.py               (shortened: 60 generator steps)
     python examples/wgan_gp_jax.py --steps 400   (the full run; needs jax)
"""

import argparse
import importlib.util
import math
import sys

from arraypenalties import interpolated_gradient_penalty

LAMBDA, CRITIC_STEPS, BATCH, LR, MOMENTUM = 10.0, 5, 256, 2e-3, 0.5


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=60, help="generator steps (full run: 400)")
    args = parser.parse_args(argv)
    if importlib.util.find_spec("jax") is None:
        print("this example needs jax: pip install 'arraypenalties[jax]'")
        return
    import jax
    import jax.numpy as jnp

    angles = 2 * math.pi * jnp.arange(8) / 8
    centers = jnp.stack([jnp.cos(angles), jnp.sin(angles)], axis=1)

    def sample_real(key: jax.Array, n: int) -> jax.Array:
        pick, noise = jax.random.split(key)
        return 2.0 * centers[jax.random.randint(pick, (n,), 0, 8)] + 0.05 * jax.random.normal(
            noise, (n, 2)
        )

    def init(key: jax.Array, sizes: list[int]) -> list[tuple[jax.Array, jax.Array]]:
        keys = jax.random.split(key, len(sizes) - 1)
        return [
            (jax.random.normal(k, (m, n)) * math.sqrt(2.0 / m), jnp.zeros(n))
            for k, m, n in zip(keys, sizes[:-1], sizes[1:], strict=True)
        ]

    def mlp(params: list[tuple[jax.Array, jax.Array]], x: jax.Array) -> jax.Array:
        for w, b in params[:-1]:
            x = jax.nn.relu(x @ w + b)
        w, b = params[-1]
        return x @ w + b

    def critic_loss(critic: list, generator: list, key: jax.Array) -> tuple[jax.Array, jax.Array]:
        k_real, k_noise, k_alpha = jax.random.split(key, 3)
        real = sample_real(k_real, BATCH)
        fake = jax.lax.stop_gradient(mlp(generator, jax.random.normal(k_noise, (BATCH, 2))))
        gp = interpolated_gradient_penalty(
            lambda x: jnp.sum(mlp(critic, x)), fake, real, rng=k_alpha
        )
        return jnp.mean(mlp(critic, fake)) - jnp.mean(mlp(critic, real)) + LAMBDA * gp, gp

    def generator_loss(generator: list, critic: list, key: jax.Array) -> jax.Array:
        return -jnp.mean(mlp(critic, mlp(generator, jax.random.normal(key, (BATCH, 2)))))

    def sgd(params: list, velocity: list, grads: list) -> tuple[list, list]:
        velocity = jax.tree.map(lambda v, g: MOMENTUM * v - LR * g, velocity, grads)
        return jax.tree.map(lambda p, v: p + v, params, velocity), velocity

    @jax.jit
    def train_step(state: tuple, key: jax.Array) -> tuple[tuple, tuple[jax.Array, jax.Array]]:
        critic, generator, c_vel, g_vel = state
        keys = jax.random.split(key, CRITIC_STEPS + 1)

        def critic_step(carry: tuple, k: jax.Array) -> tuple[tuple, tuple[jax.Array, jax.Array]]:
            critic, c_vel = carry
            (loss, gp), grads = jax.value_and_grad(critic_loss, has_aux=True)(critic, generator, k)
            return sgd(critic, c_vel, grads), (loss, gp)

        # scan compiles one critic step instead of CRITIC_STEPS unrolled copies
        (critic, c_vel), (losses, gps) = jax.lax.scan(critic_step, (critic, c_vel), keys[:-1])
        loss, gp = losses[-1], gps[-1]
        g_grads = jax.grad(generator_loss)(generator, critic, keys[-1])
        generator, g_vel = sgd(generator, g_vel, g_grads)
        return (critic, generator, c_vel, g_vel), (loss, gp)

    key = jax.random.key(0)
    k_critic, k_generator, key = jax.random.split(key, 3)
    critic, generator = init(k_critic, [2, 64, 64, 1]), init(k_generator, [2, 64, 64, 2])
    zeros = lambda tree: jax.tree.map(jnp.zeros_like, tree)  # noqa: E731
    state = (critic, generator, zeros(critic), zeros(generator))
    for step in range(1, args.steps + 1):
        key, step_key = jax.random.split(key)
        state, (loss, gp) = train_step(state, step_key)
        if step % max(1, args.steps // 4) == 0:
            print(f"step {step:4d}: critic loss {float(loss):+.3f}, penalty {float(gp):.4f}")

    critic, generator = state[0], state[1]
    k_real, k_noise, k_alpha = jax.random.split(key, 3)
    real = sample_real(k_real, 4 * BATCH)
    fake = mlp(generator, jax.random.normal(k_noise, (4 * BATCH, 2)))
    alpha = jax.random.uniform(k_alpha, (4 * BATCH, 1))
    interpolates = alpha * fake + (1 - alpha) * real
    grads = jax.grad(lambda x: jnp.sum(mlp(critic, x)))(interpolates)
    norms = jnp.linalg.norm(grads, axis=1)
    print(
        f"critic gradient norm on interpolates: mean {float(norms.mean()):.3f}, "
        f"median {float(jnp.median(norms)):.3f} (target 1)"
    )
    if not 0.5 < float(norms.mean()) < 1.5:
        sys.exit("unexpected: the gradient penalty did not hold the critic's norm near 1")


if __name__ == "__main__":
    main()
