"""PyTorch backend: ``torch.autograd.grad``; loaded only once a tensor is seen."""

from __future__ import annotations

import operator
from collections.abc import Callable, Sequence
from typing import Any

import torch
import torch.func

from arraypenalties._lib.errors import BackendError
from arraypenalties.backends import _torch_kernels
from arraypenalties.backends._base import (
    CPU_CHUNK_BYTES,
    Array,
    Backend,
    ScalarFn,
    check_differentiable_input,
    check_scalar_output,
    int_seed,
    rng_type_error,
)

# torch's CPU chunks: this many bytes of one input per intra-op thread, at most
# CPU_CHUNK_BYTES. torch runs a chunk's kernels one after another, each over the whole
# chunk split between the threads, so a chunk and its two temporaries stay in each core's
# L2 cache. At 1 thread (2 MiB L2) over [4096, 32000] float32, against 2 MiB chunks: the
# entropy of logits 204 vs 249 ms, the KL's gradient 1.16 vs 1.33 s.
CHUNK_BYTES_PER_THREAD = 512 << 10


def _check_autograd(x: torch.Tensor) -> None:
    """Raise :class:`BackendError` where autograd cannot run (it would give wrong zeros)."""
    if torch.is_inference_mode_enabled():
        msg = (
            "gradients cannot be computed inside torch.inference_mode() (autograd records "
            "nothing there); compute them outside it, or use torch.no_grad() for the rest"
        )
        raise BackendError(msg)
    if x.is_inference():
        msg = (
            "`x` is an inference tensor (created under torch.inference_mode()) and cannot "
            "take part in autograd; pass x.clone() made outside inference mode"
        )
        raise BackendError(msg)


def _grad_input(x: torch.Tensor, create_graph: bool) -> torch.Tensor:
    # With create_graph, an x that is already part of a graph (a generator's output,
    # say) is used as is, so the result is differentiable all the way back.
    if create_graph and x.requires_grad:
        return x
    return x.detach().requires_grad_(True)


# autograd nodes that raise when they are differentiated: the backward of an operation
# without a double-backward formula (flash / efficient scaled-dot-product attention, ...)
# and the backward of a custom Function marked @once_differentiable
_NO_DOUBLE_BACKWARD = frozenset(
    {"torch::autograd::NotImplemented", "torch::autograd::DelayedError"}
)
_WORKAROUNDS = (
    "Workarounds: for torch.nn.functional.scaled_dot_product_attention, select the math "
    "kernel around the call (`with torch.nn.attention.sdpa_kernel("
    "torch.nn.attention.SDPBackend.MATH):`), which has double backward; or regularise with "
    "arraypenalties.output_magnitude_penalty, which needs no second-order gradient"
)


def _node_without_double_backward(grad: torch.Tensor) -> Any:
    """The first node of ``grad``'s graph that raises when differentiated, or None.

    Such a node only fails when the caller later back-propagates through ``grad``,
    far from the cause; finding it now lets the error name the operation. The walk
    visits every node once (about 1 µs each).
    """
    root = grad.grad_fn
    if root is None:
        return None
    seen = {root}
    stack = [root]
    while stack:
        node = stack.pop()
        if node.name() in _NO_DOUBLE_BACKWARD:
            return node
        for child, _ in node.next_functions:
            if child is not None and child not in seen:
                seen.add(child)
                stack.append(child)
    return None


def _failing_operation(grad: torch.Tensor, node: Any) -> str:
    """The autograd engine's own message for ``node``: run the second backward up to it."""
    for child, output_nr in node.next_functions:
        if child is None:
            continue
        edge = torch.autograd.graph.GradientEdge(child, output_nr)
        try:
            torch.autograd.grad(
                grad, [edge], torch.ones_like(grad), retain_graph=True, allow_unused=True
            )
        except RuntimeError as error:
            return str(error)
    names = [child.name() for child, _ in node.next_functions if child is not None]
    return f"the backward of {', '.join(names) or 'an operation'} is not differentiable"


def check_double_backward(grad: torch.Tensor) -> None:
    """Raise :class:`BackendError` now if ``grad`` cannot be differentiated again."""
    node = _node_without_double_backward(grad)
    if node is None:
        return
    msg = (
        "`fn` uses an operation without double backward, so its gradient cannot be "
        f"differentiated again (second order): {_failing_operation(grad, node)}. {_WORKAROUNDS}"
    )
    raise BackendError(msg)


def _backward(
    value: torch.Tensor, x: torch.Tensor, *, create_graph: bool = False, retain_graph: bool = False
) -> torch.Tensor:
    if not value.requires_grad:  # fn does not depend on x: the gradient is zero
        return torch.zeros_like(x)
    (grad,) = torch.autograd.grad(
        value,
        x,
        retain_graph=retain_graph or create_graph,
        create_graph=create_graph,
        allow_unused=True,
        materialize_grads=True,
    )
    if create_graph:
        check_double_backward(grad)
    return grad


def _checked(fn: ScalarFn) -> ScalarFn:
    def checked(x: Array) -> Array:
        value = fn(x)
        check_scalar_output(value)
        return value

    return checked


class TorchBackend(Backend):
    """Exact gradients through ``torch.autograd.grad``.

    ``create_graph=True`` keeps the gradient differentiable (gradient penalties);
    otherwise ``x`` is detached first, so the call never writes ``.grad`` and
    never keeps the caller's graph alive.
    """

    name = "torch"
    exact = True
    norm_zero_derivative = True  # saves ~80 µs per WGAN-GP step against a double where

    def value_and_grad(
        self, fn: ScalarFn, x: Array, /, *, create_graph: bool = False
    ) -> tuple[Array, Array]:
        check_differentiable_input(x)
        _check_autograd(x)
        x_in = _grad_input(x, create_graph)
        with torch.enable_grad():
            value = fn(x_in)
            check_scalar_output(value)
            grad = _backward(value, x_in, create_graph=create_graph)
        return (value if create_graph else value.detach()), grad

    def per_term_grads(
        self, fns: Sequence[ScalarFn], x: Array, /, *, keep_graph: bool = False
    ) -> tuple[list[Array], list[Array]]:
        """One forward pass of every function, then one backward pass each.

        Without ``keep_graph`` the functions run on one detached leaf; their graphs
        share no nodes, so each backward frees its own graph. With ``keep_graph``
        every backward keeps its graph (``retain_graph``) and the values stay
        differentiable (through ``x`` itself when it requires grad, and through
        whatever the functions close over), so a caller can sum them into a loss
        without a second forward pass. The gradients never accumulate into ``.grad``.
        """
        check_differentiable_input(x)
        _check_autograd(x)
        x_in = x if keep_graph and x.requires_grad else x.detach().requires_grad_(True)
        with torch.enable_grad():
            values = [fn(x_in) for fn in fns]
            for value in values:
                check_scalar_output(value)
            grads = [_backward(value, x_in, retain_graph=keep_graph) for value in values]
        return (values if keep_graph else [value.detach() for value in values]), grads

    def func_grad(self, fn: ScalarFn, x: Array, /) -> Array:
        """``∇ₓ fn(x)`` through ``torch.func.grad``, differentiable again.

        The result stays connected to ``x``'s graph and to every tensor ``fn``
        closes over, like ``grad(..., create_graph=True)``. ``torch.func``
        transforms refuse in-place updates of captured tensors, so a module that
        updates buffers in ``fn`` (train-mode BatchNorm's running statistics)
        raises :class:`BackendError`.
        """
        check_differentiable_input(x)
        _check_autograd(x)
        with torch.enable_grad():
            try:
                grad = torch.func.grad(_checked(fn))(x)
            except RuntimeError as error:
                if "mutate a captured Tensor" not in str(error):
                    raise
                msg = (
                    "`method` 'torch.func' cannot run a function that updates a captured "
                    "tensor in place, such as a train-mode BatchNorm updating its running "
                    "statistics: use method='auto' (torch.autograd.grad, which supports it), "
                    "put the module in eval mode, or call "
                    f"torch.func.replace_all_batch_norm_modules_ on it ({error})"
                )
                raise BackendError(msg) from error
        check_double_backward(grad)
        return grad

    def stop_gradient(self, x: Array, /) -> Array:
        return x.detach()

    def is_compiling(self) -> bool:
        return bool(torch.compiler.is_compiling())

    def logsumexp(
        self, x: Array, /, *, axis: int | tuple[int, ...] | None = None, keepdims: bool = False
    ) -> Array:
        dim = tuple(range(x.ndim)) if axis is None else axis
        return torch.logsumexp(x, dim=dim, keepdim=keepdims)

    def kl_rows(self, lp: Array, lq: Array, /, *, axis: int) -> Array | None:
        return _torch_kernels.kl_rows(lp, lq, axis)

    def neg_entropy_rows(self, lp: Array, /, *, axis: int) -> Array | None:
        return _torch_kernels.neg_entropy_rows(lp, axis)

    def neg_entropy_of_logits_rows(
        self, x: Array, /, *, axis: int, temperature: float
    ) -> Array | None:
        return _torch_kernels.neg_entropy_of_logits_rows(x, axis, temperature)

    def log_softmax(self, x: Array, /, *, axis: int) -> Array | None:
        return _torch_kernels.log_softmax(x, axis)

    def on_accelerator(self, x: Array, /) -> bool:
        return x.device.type not in ("cpu", "meta")

    def cpu_chunk_bytes(self) -> int:
        if self.is_compiling():  # the compiled graph runs whole (no kernels), and
            return CPU_CHUNK_BYTES  # torch.get_num_threads() would break it
        return min(CPU_CHUNK_BYTES, CHUNK_BYTES_PER_THREAD * torch.get_num_threads())

    def chunked_rows(
        self, row_fn: Callable[..., Array], arrays: tuple[Array, ...], /, *, rows_per_chunk: int
    ) -> Array | None:
        return _torch_kernels.chunked_rows(row_fn, arrays, rows_per_chunk)

    def uniform(self, rng: object, shape: tuple[int, ...], dtype: Any, *, like: Array) -> Array:
        generator: torch.Generator | None
        seed = int_seed(rng)
        if rng is None or isinstance(rng, torch.Generator):
            generator = rng
        elif seed is not None:
            generator = _seeded(seed, like.device)
        else:
            raise rng_type_error(rng, "None, an int seed or a torch.Generator")
        return torch.rand(shape, generator=generator, dtype=dtype, device=like.device)

    def normals(self, leaves: Sequence[Array], seed: Any, step: Any, /) -> list[Array]:
        """One ``torch.Generator`` per device, seeded with a SplitMix64 hash of
        ``(seed, step)``; the leaves draw from it in order with ``torch.randn``."""
        mixed = _splitmix64(_splitmix64(operator.index(seed)) ^ operator.index(step)) >> 1
        generators: dict[Any, torch.Generator | None] = {}
        out = []
        for leaf in leaves:
            if leaf.device not in generators:  # torch seeds take 63 bits safely
                generators[leaf.device] = _seeded(mixed, leaf.device)
            generator = generators[leaf.device]
            out.append(
                torch.randn(leaf.shape, generator=generator, dtype=leaf.dtype, device=leaf.device)
            )
        return out


_MASK64 = (1 << 64) - 1


def _seeded(seed: int, device: torch.device) -> torch.Generator | None:
    """A generator on ``device`` seeded with ``seed``; None on "meta" (no values to draw)."""
    if device.type == "meta":
        return None
    return torch.Generator(device=device).manual_seed(seed)


def _splitmix64(value: int) -> int:
    """The SplitMix64 finaliser: a bijective 64-bit mix of well-spread bits."""
    value = (value + 0x9E3779B97F4A7C15) & _MASK64
    value = ((value ^ (value >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    value = ((value ^ (value >> 27)) * 0x94D049BB133111EB) & _MASK64
    return value ^ (value >> 31)
