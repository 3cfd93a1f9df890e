"""The Tinker adapter: tracking cost and adapter overhead, as ratios measured in one process.

    python benchmarks/bench_tinker.py [--quick] [--json PATH]

A Tinker custom-loss step on the client: the loss function ``forward_backward_custom``
calls, then the backward it runs on the returned loss (``loss.backward()``). The
batch is 8 datums × 512 tokens of float32 log-probs (``[T]``, 64 prompt positions
weighted 0), a policy-gradient base loss and 4 built-in terms (k3 KL to reference
log-probs, l1 on probabilities, l2, output magnitude). Rows:

- ``tracking``: the Tinkex scheme (every term evaluated three times: its value, its
  own gradient, the total's gradient; one host sync per norm) divided by ours
  (one forward and one backward per term, the total by linearity and attached to
  the returned loss): how many times faster ours is (target >= 2);
- ``adapter``: ``as_custom_loss_fn`` without tracking versus a hand-written loss fn
  summing the same four terms and the base and returning ``.item()`` metrics
  (target <= 1.10);
- ``built-ins + adapter``: the same, against the whole total written in plain torch
  (no target: what the built-ins' masking, reference alignment and checks cost).

Prints a markdown table of medians; ``--quick`` takes fewer, shorter repeats and a
smaller batch.
"""

from __future__ import annotations

import math
import os
import sys
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

try:
    from benchmarks._cli import build_parser, installed_frameworks, target_table, write_json
    from benchmarks._timing import compare
except ImportError:  # run as a script: the helpers sit next to this file
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from _cli import build_parser, installed_frameworks, target_table, write_json
    from _timing import compare

BATCH, QUICK_BATCH = (8, 512), (4, 64)
FULL = {"repeats": 41, "min_time": 0.05, "warmup": 3}
QUICK = {"repeats": 3, "min_time": 0.005, "warmup": 1}
WEIGHTS = {
    "kl_divergence": 0.1,
    "l1_sparsity": 1e-3,
    "l2_weight_decay": 1e-3,
    "output_magnitude": 1e-2,
}


@dataclass(frozen=True)
class Row:
    framework: str
    case: str
    ours_us: float
    reference_us: float
    ratio: float
    target: str


class TensorDataLike:
    """What ``tinker.TensorData`` offers a loss: ``.to_torch()`` (``torch.from_numpy``)."""

    def __init__(self, array: np.ndarray) -> None:
        self.array = array

    def to_torch(self) -> Any:
        import torch

        return torch.from_numpy(self.array)


class Datum:
    def __init__(self, **inputs: np.ndarray) -> None:
        self.loss_fn_inputs = {name: TensorDataLike(value) for name, value in inputs.items()}


def make_batch(datums: int, tokens: int) -> tuple[list[Datum], list[np.ndarray]]:
    rng = np.random.default_rng(0)
    prompt = tokens // 8
    data, logprobs = [], []
    for _ in range(datums):
        lp = np.log(rng.uniform(0.01, 1.0, size=tokens)).astype(np.float32)
        weights = np.r_[np.zeros(prompt), np.ones(tokens - prompt)].astype(np.float32)
        data.append(
            Datum(
                weights=weights,
                advantages=rng.normal(size=tokens).astype(np.float32),
                ref_logprobs=(lp + rng.normal(0, 0.2, size=tokens)).astype(np.float32),
            )
        )
        logprobs.append(lp)
    return data, logprobs


def _torch_rows(batch: tuple[int, int], settings: dict[str, Any]) -> Iterator[Row]:
    import torch

    from arraypenalties import tinker as apt

    data, arrays = make_batch(*batch)
    specs = [
        apt.kl_to_reference("ref_logprobs", weight=WEIGHTS["kl_divergence"], estimator="k3"),
        apt.l1(weight=WEIGHTS["l1_sparsity"], target="probs", reduction="mean"),
        apt.l2(weight=WEIGHTS["l2_weight_decay"], reduction="mean"),
        apt.output_magnitude(weight=WEIGHTS["output_magnitude"]),
    ]

    def base(data: Any, lps: Any) -> Any:
        num = sum(
            (
                d.loss_fn_inputs["weights"].to_torch()
                * d.loss_fn_inputs["advantages"].to_torch()
                * lp
            ).sum()
            for d, lp in zip(data, lps, strict=True)
        )
        return -num / sum(d.loss_fn_inputs["weights"].to_torch().sum() for d in data)

    def by_hand_specs(data: Any, lps: Any) -> Any:
        """What a user writes without the adapter: the same terms, summed, .item() metrics."""
        b = base(data, lps)
        values = [spec.fn(data, lps) for spec in specs]
        total = b + sum(spec.weight * v for spec, v in zip(specs, values, strict=True))
        metrics = {spec.name: v.item() for spec, v in zip(specs, values, strict=True)}
        return total, {"base": b.item(), "total": total.item(), **metrics}

    def plain_torch(data: Any, lps: Any) -> Any:
        """The whole total in plain torch: masked, concatenated, no checks."""
        w = torch.cat([d.loss_fn_inputs["weights"].to_torch() for d in data])
        ref = torch.cat([d.loss_fn_inputs["ref_logprobs"].to_torch() for d in data])
        x = torch.cat(list(lps))
        den = w.sum()
        r = ref - x
        kl = (w * (torch.expm1(r) - r)).sum() / den
        l1 = (w * torch.exp(x)).sum() / den
        l2 = (w * x * x).sum() / den
        kept = x[w != 0]
        magnitude = (torch.sqrt(torch.mean(kept * kept)) - 1.0) ** 2
        b = base(data, lps)
        terms = (kl, l1, l2, magnitude)
        total = b + sum(wt * t for wt, t in zip(WEIGHTS.values(), terms, strict=True))
        return total, {
            "base": b.item(),
            "total": total.item(),
            **{name: t.item() for name, t in zip(WEIGHTS, terms, strict=True)},
        }

    def tinkex_scheme(data: Any, lps: Any) -> Any:
        """Tinkex: values, then each term's own gradient and the total's, each from scratch."""
        b = base(data, lps)
        values = [spec.fn(data, lps) for spec in specs]
        total = b + sum(spec.weight * v for spec, v in zip(specs, values, strict=True))
        metrics = {spec.name: v.item() for spec, v in zip(specs, values, strict=True)}
        fns = [base] + [spec.fn for spec in specs]
        for index, fn in enumerate(fns):
            leaves = [lp.detach().requires_grad_(True) for lp in lps]
            grads = torch.autograd.grad(fn(data, leaves), leaves, allow_unused=True)
            squares = sum((g * g).sum() for g in grads if g is not None)
            metrics[f"grad_norm_{index}"] = math.sqrt(float(squares))
        leaves = [lp.detach().requires_grad_(True) for lp in lps]
        again = base(data, leaves) + sum(spec.weight * spec.fn(data, leaves) for spec in specs)
        grads = torch.autograd.grad(again, leaves)
        metrics["total_grad_norm"] = math.sqrt(float(sum((g * g).sum() for g in grads)))
        return total, metrics

    ours = apt.as_custom_loss_fn(base, specs)
    ours_tracked = apt.as_custom_loss_fn(base, specs, track_grad_norms=True)

    def step(loss_fn: Callable[..., Any]) -> Callable[[], Any]:
        """What the SDK runs on the client: the loss fn, then backward on fresh leaves."""

        def run() -> Any:
            leaves = [torch.from_numpy(a).requires_grad_(True) for a in arrays]
            loss, metrics = loss_fn(data, leaves)
            loss.backward()
            return metrics

        return run

    # same math on every side, else the ratios mean nothing
    leaves = [torch.from_numpy(a).requires_grad_(True) for a in arrays]
    reference = plain_torch(data, leaves)[0].item()
    for fn in (ours, ours_tracked, by_hand_specs, tinkex_scheme):
        np.testing.assert_allclose(fn(data, leaves)[0].item(), reference, rtol=1e-5)

    tinkex, tracked = compare(step(tinkex_scheme), step(ours_tracked), **settings)
    yield Row(
        "torch",
        "tracking: Tinkex scheme / ours (times faster)",
        tinkex.median * 1e6,
        tracked.median * 1e6,
        tinkex.median / tracked.median,
        ">= 2",
    )
    adapter, by_hand, plain = compare(
        step(ours), step(by_hand_specs), step(plain_torch), **settings
    )
    yield Row(
        "torch",
        "adapter (no tracking) vs hand-written sum of the same terms",
        adapter.median * 1e6,
        by_hand.median * 1e6,
        adapter.median / by_hand.median,
        "<= 1.10",
    )
    yield Row(
        "torch",
        "built-ins + adapter vs the total in plain torch",
        adapter.median * 1e6,
        plain.median * 1e6,
        adapter.median / plain.median,
        "none (informative)",
    )


def run(
    *, quick: bool = False, frameworks: tuple[str, ...] | None = None, torch_threads: int = 1
) -> list[Row]:
    """Measure the torch rows (the adapter is torch-only); see the module docstring."""
    settings, batch = (QUICK, QUICK_BATCH) if quick else (FULL, BATCH)
    rows: list[Row] = []
    for _, make_rows in installed_frameworks({"torch": _torch_rows}, frameworks, torch_threads):
        rows.extend(make_rows(batch, settings))
    return rows


def format_table(rows: list[Row], batch: tuple[int, int]) -> str:
    title = f"{batch[0]} datums x {batch[1]} tokens float32, base + 4 terms, loss fn + backward"
    return target_table(title, rows)


def main(argv: list[str] | None = None) -> int:
    args = build_parser(__doc__, "fewer repeats, smaller batch").parse_args(argv)
    rows = run(quick=args.quick, frameworks=args.frameworks, torch_threads=args.torch_threads)
    print(format_table(rows, QUICK_BATCH if args.quick else BATCH))
    if args.json:
        write_json(args.json, {"results": [asdict(row) for row in rows]})
    return 0


if __name__ == "__main__":
    sys.exit(main())
