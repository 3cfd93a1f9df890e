"""The jax train step of ``arraypenalties.integrations.jax`` versus a hand-written one.

    python benchmarks/bench_training_jax.py [--quick] [--json PATH]

A 3-layer MLP (inputs 128, hidden 256 and 256, 10 classes; batch 256, float32)
trained with cross-entropy + an entropy bonus on the output (1e-2) + L2 on the
kernels (1e-4, biases excluded) + L1 on the first hidden activation (1e-5),
gradients clipped by global norm (1.0) before adam. Rows:

- ``step``: ``make_train_step`` versus the same loss, clipping and adam written
  by hand in jax and optax, one ``jax.jit`` (target <= 1.02);
- ``scheduled step``: the same with the L2 weight on a linear warm-up (weights
  computed on the host each step and passed as an array) versus the
  hand-written step with constant weights (target <= 1.02);
- ``schedule, 20 steps``: the wall time of 20 steps with a changing weight,
  ours versus the pipeline rebuilt by ``apply_scheduled_weights`` and closed
  over by a fresh ``jax.jit`` each step (what recompiles); the compilation
  counts are in the last column (ours: 1 at any number of steps).

``--quick`` takes fewer repeats and a smaller model.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

try:
    from benchmarks._cli import build_parser, target_table, write_json
    from benchmarks._timing import compare
except ImportError:  # run as a script: the helpers sit next to this file
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from _cli import build_parser, target_table, write_json
    from _timing import compare

W_ENTROPY, W_L2, W_ACT, MAX_NORM, LR = 1e-2, 1e-4, 1e-5, 1.0, 1e-3
FULL = {"repeats": 25, "min_time": 0.05, "warmup": 3}
QUICK = {"repeats": 3, "min_time": 0.005, "warmup": 1}
SIZES, QUICK_SIZES = (128, 256, 256, 10, 256), (16, 32, 32, 4, 32)  # in, h1, h2, out, batch


@dataclass(frozen=True)
class Row:
    framework: str
    case: str
    ours_us: float
    reference_us: float
    ratio: float
    target: str
    compilations: str


def _problem(sizes: tuple[int, ...]) -> tuple[Any, Any, Any]:
    import jax.numpy as jnp

    d_in, h1, h2, d_out, batch = sizes
    rng = np.random.default_rng(0)
    shapes = [(d_in, h1), (h1, h2), (h2, d_out)]
    params = {
        f"layer{i}": {
            "kernel": jnp.asarray(rng.normal(size=s) / np.sqrt(s[0]), dtype=jnp.float32),
            "bias": jnp.zeros(s[1], dtype=jnp.float32),
        }
        for i, s in enumerate(shapes)
    }
    x = jnp.asarray(rng.normal(size=(batch, d_in)), dtype=jnp.float32)
    y = jnp.asarray(rng.integers(0, d_out, size=batch))
    return params, x, y


def _apply(params: Any, x: Any) -> tuple[Any, Any]:
    import jax

    h1 = jax.nn.relu(x @ params["layer0"]["kernel"] + params["layer0"]["bias"])
    h2 = jax.nn.relu(h1 @ params["layer1"]["kernel"] + params["layer1"]["bias"])
    logits = h2 @ params["layer2"]["kernel"] + params["layer2"]["bias"]
    return jax.nn.log_softmax(logits), {"layer0": {"act": (h1,)}}


def _nll(logprobs: Any, y: Any) -> Any:
    import jax.numpy as jnp

    return -jnp.mean(jnp.take_along_axis(logprobs, y[:, None], axis=1))


def _ours(schedule: Any = None) -> Any:
    import optax

    from arraypenalties import l1, l2, pipeline
    from arraypenalties import transforms as T
    from arraypenalties.integrations.jax import make_train_step

    return make_train_step(
        _apply,
        _nll,
        optax.adam(LR),
        penalties=pipeline([("entropy", {"weight": W_ENTROPY, "opts": {"mode": "bonus"}})]),
        parameter_penalties={"l2": (l2, W_L2, {"exclude": "bias$"})},
        activity={"layer0/act": (l1, W_ACT)},
        has_aux=True,
        transforms=T.clip_by_global_norm(max_norm=MAX_NORM),
        weight_schedules=schedule,
    )


def _hand_written(with_our_functions: bool = False) -> tuple[Callable[..., Any], Any]:
    """The step by hand: plain jnp + optax, or (``with_our_functions``) our penalties and clip."""
    import jax
    import jax.numpy as jnp
    import optax

    from arraypenalties import entropy, l1, l2
    from arraypenalties import transforms as T
    from arraypenalties.integrations.optax import to_optax

    clip = to_optax(T.clip_by_global_norm(max_norm=MAX_NORM)) if with_our_functions else None
    optimizer = optax.chain(clip or optax.clip_by_global_norm(MAX_NORM), optax.adam(LR))

    def loss(params: Any, x: Any, y: Any) -> tuple[Any, Any]:
        logprobs, inter = _apply(params, x)
        base = _nll(logprobs, y)
        h = inter["layer0"]["act"][0]
        if with_our_functions:
            bonus = entropy(logprobs, mode="bonus")
            kernels = sum(l2(layer["kernel"]) for layer in params.values())
            act = l1(h)
        else:
            bonus = jnp.mean(jnp.sum(jnp.exp(logprobs) * logprobs, axis=-1))
            kernels = sum(jnp.sum(layer["kernel"] ** 2) for layer in params.values())
            act = jnp.sum(jnp.abs(h))
        total = base + W_ENTROPY * bonus + W_L2 * kernels + W_ACT * act
        return total, {"loss": total, "base_loss": base}

    @jax.jit
    def step(params: Any, opt_state: Any, x: Any, y: Any) -> Any:
        grads, metrics = jax.grad(loss, has_aux=True)(params, x, y)
        updates, opt_state = optimizer.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, metrics

    return step, optimizer


def _rebuilt_each_step(params: Any, x: Any, y: Any, steps: int) -> tuple[float, int]:
    """The pre-integration recipe: a pipeline with scheduled weights, jitted each step."""
    import jax
    import optax

    from arraypenalties import l2, pipeline, tree_penalty
    from arraypenalties.schedules import apply_scheduled_weights, linear, weight_schedule

    schedule = weight_schedule({"entropy": linear(0.0, W_ENTROPY, steps=steps)})
    base = pipeline([("entropy", {"weight": 0.0, "opts": {"mode": "bonus"}})])
    optimizer = optax.chain(optax.clip_by_global_norm(MAX_NORM), optax.adam(LR))
    opt_state, traces = optimizer.init(params), [0]
    start = time.perf_counter()
    for index in range(steps):
        weighted = apply_scheduled_weights(base, schedule(index))

        def loss(params: Any, weighted: Any = weighted) -> Any:
            traces[0] += 1
            logprobs, _ = _apply(params, x)
            return (
                _nll(logprobs, y)
                + weighted.compute_total(logprobs)
                + W_L2 * tree_penalty(l2, params)
            )

        @jax.jit
        def step(params: Any, opt_state: Any, loss: Any = loss) -> Any:
            grads = jax.grad(loss)(params)
            updates, opt_state = optimizer.update(grads, opt_state, params)
            return optax.apply_updates(params, updates), opt_state

        params, opt_state = jax.block_until_ready(step(params, opt_state))
    return time.perf_counter() - start, traces[0]


class CompileCounter:
    """Counts XLA compilations (jax's monitoring events) while it is active."""

    EVENT = "/jax/core/compile/backend_compile_duration"

    def __init__(self) -> None:
        self.count = 0

    def _listen(self, name: str, duration: float, **kwargs: Any) -> None:
        self.count += name == self.EVENT

    def __enter__(self) -> CompileCounter:
        import jax

        jax.monitoring.register_event_duration_secs_listener(self._listen)
        return self

    def __exit__(self, *exc: object) -> None:
        import jax

        jax.monitoring.unregister_event_duration_listener(self._listen)


def run(*, quick: bool = False) -> list[Row]:
    import jax

    from arraypenalties.schedules import linear

    settings, sizes = (QUICK, QUICK_SIZES) if quick else (FULL, SIZES)
    params, x, y = _problem(sizes)
    hand, optimizer = _hand_written()
    hand_ours, _ = _hand_written(with_our_functions=True)
    ours = _ours()
    scheduled = _ours({"l2": linear(0.0, W_L2, steps=1000)})
    ours_state, hand_state = ours.init(params), optimizer.init(params)
    _, _, metrics = ours(params, ours_state, (x, y), 0)
    _, _, reference = hand(params, hand_state, x, y)
    np.testing.assert_allclose(float(metrics["loss"]), float(reference["loss"]), rtol=1e-5)
    counter = iter(range(10**9))
    timings = compare(
        lambda: ours(params, ours_state, (x, y), 0),
        lambda: scheduled(params, ours_state, (x, y), next(counter) % 1000),
        lambda: hand(params, hand_state, x, y),
        lambda: hand_ours(params, ours_state, x, y),
        sync=jax.block_until_ready,
        **settings,
    )
    ours_t, scheduled_t, hand_t, hand_ours_t = (t.median * 1e6 for t in timings)
    steps = 3 if quick else 20
    state = ours.init(params)
    fresh = _ours({"entropy": linear(0.0, W_ENTROPY, steps=steps)})
    start, current = time.perf_counter(), params
    with CompileCounter() as ours_compiles:
        for index in range(steps):
            current, state, _ = jax.block_until_ready(fresh(current, state, (x, y), index))
    ours_wall = time.perf_counter() - start
    with CompileCounter() as rebuilt_compiles:
        rebuilt_wall, rebuilt_traces = _rebuilt_each_step(params, x, y, steps)
    return [
        Row(
            "jax",
            "step vs hand-written jitted step",
            ours_t,
            hand_t,
            ours_t / hand_t,
            "<= 1.02",
            "-",
        ),
        Row(
            "jax",
            "step vs hand-written with our penalty functions",
            ours_t,
            hand_ours_t,
            ours_t / hand_ours_t,
            "<= 1.02",
            "-",
        ),
        Row(
            "jax",
            "scheduled step vs hand-written (constant)",
            scheduled_t,
            hand_t,
            scheduled_t / hand_t,
            "<= 1.02",
            "-",
        ),
        Row(
            "jax",
            f"schedule, {steps} steps (wall) vs rebuilt + jit each step",
            ours_wall * 1e6,
            rebuilt_wall * 1e6,
            ours_wall / rebuilt_wall,
            "compile once",
            f"{ours_compiles.count} / {rebuilt_compiles.count} ({rebuilt_traces} traces)",
        ),
    ]


def format_table(rows: list[Row], sizes: tuple[int, ...]) -> str:
    d_in, h1, h2, d_out, batch = sizes
    title = f"MLP {d_in}-{h1}-{h2}-{d_out}, batch {batch}, float32; adam + clipping"
    return target_table(title, rows, digits=3, extra="compiles ours / ref")


def main(argv: list[str] | None = None) -> int:
    args = build_parser(__doc__, "fewer repeats, a smaller model").parse_args(argv)
    rows = run(quick=args.quick)
    print(format_table(rows, QUICK_SIZES if args.quick else SIZES))
    if args.json:
        write_json(args.json, {"quick": args.quick, "results": [asdict(row) for row in rows]})
    return 0


if __name__ == "__main__":
    sys.exit(main())
