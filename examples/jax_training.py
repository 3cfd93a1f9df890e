"""Training a flax MLP with optax and arraypenalties: the whole recipe in one jitted step.

A linen MLP classifies three Gaussian blobs. The loss is cross-entropy plus

- an L2 penalty on the parameters, biases and the LayerNorm scale excluded;
- an L1 penalty on the first hidden activation, which the model ``sow``s;
- an entropy bonus on the output distribution, its weight warmed up linearly;

and the gradients are clipped (adaptive unit-wise clipping, then by global
norm) before adam. ``make_train_step`` compiles the step once: the warm-up
changes the weight every step without recompiling.

Run: python examples/jax_training.py               (shortened: 60 steps)
     python examples/jax_training.py --steps 600   (the full run; needs flax)
"""

import argparse
import importlib.util
import sys

from arraypenalties import entropy, l1, l2, pipeline
from arraypenalties import transforms as T
from arraypenalties.schedules import warmup, weight_schedule


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=60, help="train steps (full run: 600)")
    args = parser.parse_args(argv)
    if any(importlib.util.find_spec(m) is None for m in ("jax", "flax", "optax")):
        print("this example needs jax, flax and optax: pip install 'arraypenalties[flax]'")
        return
    import jax
    import jax.numpy as jnp
    import numpy as np
    import optax
    from flax import linen as nn

    from arraypenalties.integrations.jax import make_train_step

    class MLP(nn.Module):
        @nn.compact
        def __call__(self, x: jax.Array) -> jax.Array:
            h = nn.relu(nn.LayerNorm(name="norm")(nn.Dense(32, name="hidden")(x)))
            self.sow("intermediates", "act", h)
            h = nn.relu(nn.Dense(32, name="hidden2")(h))
            return nn.log_softmax(nn.Dense(3, name="out")(h))

    rng = np.random.default_rng(0)
    centers = rng.normal(size=(3, 8)) * 2.0
    labels = rng.integers(0, 3, size=512)
    inputs = centers[labels] + rng.normal(size=(512, 8))
    batch = (jnp.asarray(inputs, dtype=jnp.float32), jnp.asarray(labels))

    model = MLP()
    params = model.init(jax.random.key(0), batch[0])

    def apply(params: dict, x: jax.Array) -> tuple[jax.Array, dict]:
        return model.apply(params, x, mutable=["intermediates"])

    def nll(logprobs: jax.Array, y: jax.Array) -> jax.Array:
        return -jnp.mean(jnp.take_along_axis(logprobs, y[:, None], axis=1))

    step = make_train_step(
        apply,
        nll,
        optax.adam(1e-2),
        penalties=pipeline([("entropy", {"weight": 0.0, "opts": {"mode": "bonus"}})]),
        parameter_penalties={"l2": (l2, 1e-4, {"exclude": r"bias$|norm/"})},
        activity={"act": (l1, 1e-5)},
        has_aux=True,
        weight_schedules=weight_schedule({"entropy": warmup(0.05, steps=args.steps // 2)}),
        transforms=[
            T.adaptive_gradient_clipping(clip_factor=0.1, unit_axis=-1),
            T.clip_by_global_norm(max_norm=1.0),
        ],
    )
    opt_state = step.init(params)
    columns = ("loss", "base_loss", "entropy", "weight/entropy", "param/l2", "activity/act")
    print(f"| step | {' | '.join(columns)} |")
    print("|---:|" + "---:|" * len(columns))
    history = []
    for index in range(args.steps):
        params, opt_state, metrics = step(params, opt_state, batch, index)
        history.append(metrics)
        if index % max(1, args.steps // 6) == 0 or index == args.steps - 1:
            row = jax.device_get({key: metrics[key] for key in columns})  # one transfer
            print(f"| {index} | " + " | ".join(f"{float(row[k]):.4g}" for k in columns) + " |")
    first, last = float(history[0]["base_loss"]), float(history[-1]["base_loss"])
    accuracy = float(jnp.mean(jnp.argmax(apply(params, batch[0])[0], -1) == batch[1]))
    print(f"base loss {first:.3f} -> {last:.3f}; training accuracy {accuracy:.2%}")
    print(f"entropy of the predictions: {-float(entropy(apply(params, batch[0])[0])):.3f} nats")
    if not last < first:
        sys.exit("unexpected: the loss did not fall")


if __name__ == "__main__":
    main()
