"""arraypenalties gradient transforms versus optax and native torch, in one process.

    python benchmarks/bench_transforms.py [--quick] [--json PATH] [--frameworks torch,jax]

Prints a markdown table of median per-call times and their ratio ``ours / native``
(1.00 = no overhead) for ``clip_by_global_norm`` and ``adaptive_gradient_clipping``
on a ResNet-50-sized parameter tree (161 leaves, 25.6M float32 values, the real
conv / batch-norm / fc shapes; ``--quick`` divides every width by 4: 1.6M values):

- jax (``jax.jit``): ours against ``optax.clip_by_global_norm`` and
  ``optax.adaptive_grad_clip`` on flax layouts (``[kh, kw, in, out]``, ``unit_axis=-1``);
- torch (eager): the torch adapter's hook (``apply_transforms(...).apply()``,
  which rewrites ``p.grad``) against ``torch.nn.utils.clip_grad_norm_(foreach=True)``
  and against a hand-written in-place unit-wise AGC (torch core has none); plus the
  pure ``tx.update`` (new arrays) against torch's out-of-place foreach clip.

Frameworks that are not installed are skipped with a note.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

from arraypenalties import transforms as T

try:
    from benchmarks._cli import Case, Result, bench_main, format_table, installed_frameworks, timed
except ImportError:  # a script, or loaded from its path: _cli.py sits next to this file
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from _cli import Case, Result, bench_main, format_table, installed_frameworks, timed

MAX_NORM = 1.0
CLIP_FACTOR = 0.01
EPS = 1e-3
FULL = {"repeats": 15, "min_time": 0.05, "warmup": 2}
QUICK = {"repeats": 3, "min_time": 0.002, "warmup": 1}


def resnet50_shapes(*, layout: str = "torch", width_divisor: int = 1) -> dict[str, tuple[int, ...]]:
    """Parameter shapes of torchvision's ResNet-50 (161 tensors, 25,557,032 values).

    ``layout="torch"``: convs ``[out, in, kh, kw]``, fc ``[out, in]``;
    ``layout="flax"``: convs ``[kh, kw, in, out]``, dense ``[in, out]``.
    ``width_divisor`` shrinks every channel count (the quick run uses 4).
    """

    def conv(out: int, inp: int, k: int) -> tuple[int, ...]:
        return (out, inp, k, k) if layout == "torch" else (k, k, inp, out)

    d = width_divisor
    shapes: dict[str, tuple[int, ...]] = {"conv1.weight": conv(64 // d, 3, 7)}
    shapes |= {"bn1.weight": (64 // d,), "bn1.bias": (64 // d,)}
    inp = 64 // d
    for layer, (blocks, width) in enumerate(zip((3, 4, 6, 3), (64, 128, 256, 512), strict=True)):
        w, out = width // d, 4 * width // d
        for block in range(blocks):
            p = f"layer{layer + 1}.{block}."
            for i, (o, n, k) in enumerate(((w, inp, 1), (w, w, 3), (out, w, 1)), start=1):
                shapes[f"{p}conv{i}.weight"] = conv(o, n, k)
                shapes[f"{p}bn{i}.weight"] = shapes[f"{p}bn{i}.bias"] = (o,)
            if block == 0:
                shapes[f"{p}downsample.0.weight"] = conv(out, inp, 1)
                shapes[f"{p}downsample.1.weight"] = shapes[f"{p}downsample.1.bias"] = (out,)
            inp = out
    classes = 1000 // d
    shapes["fc.weight"] = (classes, inp) if layout == "torch" else (inp, classes)
    shapes["fc.bias"] = (classes,)
    return shapes


def _host_tree(shapes: dict[str, tuple[int, ...]], seed: int, scale: float) -> dict[str, Any]:
    rng = np.random.default_rng(seed)
    return {
        name: (scale * rng.standard_normal(shape)).astype(np.float32)
        for name, shape in shapes.items()
    }


def _size(shapes: dict[str, tuple[int, ...]]) -> int:
    return int(sum(np.prod(shape) for shape in shapes.values()))


def _torch_cases(divisor: int) -> Iterator[Case]:
    import torch

    from arraypenalties.integrations.torch import apply_transforms

    shapes = resnet50_shapes(layout="torch", width_divisor=divisor)
    weights = _host_tree(shapes, 0, 0.05)
    grads = _host_tree(shapes, 1, 0.01)  # global norm ≈ 50: the clip really scales

    def model() -> list[torch.nn.Parameter]:
        params = []
        for name in shapes:
            param = torch.nn.Parameter(torch.from_numpy(weights[name].copy()))
            param.grad = torch.from_numpy(grads[name].copy())
            params.append(param)
        return params

    def hook_apply(tx: T.GradientTransformation, params: list[Any]) -> Callable[[], Any]:
        hook = apply_transforms(torch.optim.SGD(params, lr=0.1), tx)
        hook.remove()  # timed through .apply(), the body of the step pre-hook

        def run() -> list[Any]:
            hook.apply()
            return [p.grad for p in params]

        return run

    def native_clip(params: list[Any]) -> Callable[[], Any]:
        def run() -> list[Any]:
            torch.nn.utils.clip_grad_norm_(params, MAX_NORM, foreach=True)
            return [p.grad for p in params]

        return run

    def native_agc(params: list[Any]) -> Callable[[], Any]:
        def run() -> list[Any]:  # unit-wise AGC by hand, in place, as timm / NFNet ports do
            with torch.no_grad():
                for p in params:
                    g = p.grad
                    dims = None if g.ndim <= 1 else tuple(range(1, g.ndim))
                    w_norm = torch.linalg.vector_norm(p, dim=dims, keepdim=g.ndim > 1)
                    g_norm = torch.linalg.vector_norm(g, dim=dims, keepdim=g.ndim > 1)
                    max_norm = w_norm.clamp_(min=EPS).mul_(CLIP_FACTOR)
                    g.mul_((max_norm / g_norm.clamp_(min=1e-6)).clamp_(max=1.0))
            return [p.grad for p in params]

        return run

    size = _size(shapes)
    clip = T.clip_by_global_norm(max_norm=MAX_NORM)
    agc = T.adaptive_gradient_clipping(clip_factor=CLIP_FACTOR, eps=EPS, unit_axis=0)
    yield Case(
        "torch",
        "hook",
        "clip_by_global_norm",
        size,
        hook_apply(clip, model()),
        native_clip(model()),
    )
    yield Case(
        "torch",
        "hook",
        "adaptive_gradient_clipping",
        size,
        hook_apply(agc, model()),
        native_agc(model()),
    )

    grad_list = [torch.from_numpy(grads[name]) for name in shapes]
    state = clip.init(grad_list)

    def pure_ours() -> Any:
        return clip.update(grad_list, state)[0]

    def pure_native() -> Any:  # what clip_grad_norm_ does, writing new tensors
        norm = torch.linalg.vector_norm(torch.stack(torch._foreach_norm(grad_list)))
        return torch._foreach_mul(grad_list, torch.clamp(MAX_NORM / (norm + 1e-6), max=1.0))

    yield Case("torch", "pure", "clip_by_global_norm", size, pure_ours, pure_native)


def _jax_cases(divisor: int) -> Iterator[Case]:
    import jax
    import jax.numpy as jnp
    import optax

    shapes = resnet50_shapes(layout="flax", width_divisor=divisor)
    weights = {k: jnp.asarray(v) for k, v in _host_tree(shapes, 0, 0.05).items()}
    grads = {k: jnp.asarray(v) for k, v in _host_tree(shapes, 1, 0.01).items()}
    size = _size(shapes)
    sync = jax.block_until_ready

    clip, clip_optax = T.clip_by_global_norm(max_norm=MAX_NORM), optax.clip_by_global_norm(MAX_NORM)
    clip_state, optax_state = clip.init(grads), clip_optax.init(grads)
    ours_clip = jax.jit(lambda g: clip.update(g, clip_state)[0])
    optax_clip = jax.jit(lambda g: clip_optax.update(g, optax_state)[0])
    yield Case(
        "jax",
        "jit",
        "clip_by_global_norm",
        size,
        lambda: ours_clip(grads),
        lambda: optax_clip(grads),
        sync,
    )

    agc = T.adaptive_gradient_clipping(clip_factor=CLIP_FACTOR, eps=EPS, unit_axis=-1)
    agc_optax = optax.adaptive_grad_clip(CLIP_FACTOR, eps=EPS)
    ours_agc = jax.jit(lambda g, w: agc.update(g, T.EmptyState(), w)[0])
    optax_agc = jax.jit(lambda g, w: agc_optax.update(g, optax.EmptyState(), w)[0])
    yield Case(
        "jax",
        "jit",
        "adaptive_gradient_clipping",
        size,
        lambda: ours_agc(grads, weights),
        lambda: optax_agc(grads, weights),
        sync,
    )


FRAMEWORKS: dict[str, Callable[[int], Iterator[Case]]] = {"torch": _torch_cases, "jax": _jax_cases}
REQUIRES = {"torch": ("torch",), "jax": ("jax", "optax")}


def _as_numpy(tree: Any) -> list[np.ndarray]:
    leaves = tree.values() if isinstance(tree, dict) else tree
    return [np.asarray(leaf.detach() if hasattr(leaf, "detach") else leaf) for leaf in leaves]


def run(
    *, quick: bool = False, frameworks: tuple[str, ...] | None = None, torch_threads: int = 1
) -> list[Result]:
    """Measure every case of the installed frameworks (see ``bench_penalties.run``)."""
    settings = QUICK if quick else FULL
    divisor = 4 if quick else 1
    results = []
    for _, cases in installed_frameworks(FRAMEWORKS, frameworks, torch_threads, REQUIRES):
        for case in cases(divisor):
            # same math on both sides (first call, on untouched gradients), else no ratio
            for ours, native in zip(_as_numpy(case.ours()), _as_numpy(case.native()), strict=True):
                np.testing.assert_allclose(ours, native, rtol=1e-4, atol=1e-9)
            results.append(
                Result(case.framework, case.mode, case.case, case.size, **timed(case, settings))
            )
    return results


def main(argv: list[str] | None = None) -> int:
    quick_help = "a 1/16-size tree, few repeats"
    return bench_main(
        __doc__, run, format_table, argv, quick_help=quick_help, extra_modules=("optax",)
    )


if __name__ == "__main__":
    sys.exit(main())
