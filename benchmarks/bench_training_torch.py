"""make_train_step versus the same training step written by hand, in one process (torch).

    python benchmarks/bench_training_torch.py [--quick] [--json PATH] [--torch-threads N]

A 3-layer MLP (784 → 256 → 256 → 10, ReLU) on batches of 256, float32,
cross-entropy, SGD with momentum. Both sides do the same work: four output
penalties (l1, l2, output magnitude, entropy bonus of the softmax; the l1
weight warmed up linearly), an L2 parameter penalty without biases, an L1
activity penalty on the first hidden layer, the same global-norm gradient clip
(``clip_by_global_norm``; by hand through the ``apply_transforms`` optimizer
hook), and every metric (loss, base loss, penalty total, each term raw and
weighted) copied to the host once per step. The hand-written loop captures the
activity with a forward hook and tracks gradient norms with
``torch.autograd.grad(..., retain_graph=True)``, as a PyTorch user would. Rows
(each timed call runs 10 steps, so tracking every 10 steps is included once per
call):

- ``track_every=10`` versus the hand loop tracking every 10 steps (target <= 1.05);
- ``track_every=0`` versus the hand loop without tracking (target <= 1.02);
- a tracked step (``track_every=1``, N = 4 terms) versus an untracked one (target <= 1.6).

``--quick`` uses a smaller MLP and batch and fewer, shorter repeats (smoke run).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

try:
    from benchmarks._cli import bench_main, installed_frameworks
    from benchmarks._timing import compare
except ImportError:  # run as a script: the helpers sit next to this file
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from _cli import bench_main, installed_frameworks
    from _timing import compare

# one call (10 steps) per repeat and many repeats: the medians of short, interleaved
# repeats resist the load bursts of a shared machine better than a few long repeats
FULL = {"repeats": 41, "min_time": 0.01, "warmup": 2}
QUICK = {"repeats": 3, "min_time": 0.005, "warmup": 1}
SIZES = {"full": (784, 256, 256), "quick": (32, 16, 32)}  # inputs, hidden, batch
STEPS_PER_CALL = 10
WEIGHTS = {"l1": 1e-4, "l2": 1e-4, "magnitude": 1e-3, "entropy": 1e-3}
DECAY, ACTIVITY, MAX_NORM, WARMUP = 1e-4, 1e-5, 1.0, 100


@dataclass(frozen=True)
class Row:
    framework: str
    case: str
    ours_us: float  # per step (medians)
    reference_us: float
    ratio: float
    target: str


def _entropy_bonus(out: Any) -> Any:
    import torch

    from arraypenalties import entropy

    return entropy(torch.log_softmax(out, dim=-1), mode="bonus")


def _setup(inputs: int, hidden: int, batch: int) -> dict[str, Any]:
    import torch

    generator = torch.Generator().manual_seed(0)
    x = torch.randn(batch, inputs, generator=generator)
    y = torch.randint(0, 10, (batch,), generator=generator)

    def model() -> Any:
        torch.manual_seed(0)
        return torch.nn.Sequential(
            torch.nn.Linear(inputs, hidden),
            torch.nn.ReLU(),
            torch.nn.Linear(hidden, hidden),
            torch.nn.ReLU(),
            torch.nn.Linear(hidden, 10),
        )

    return {"x": x, "y": y, "model": model}


def _ours(setup: dict[str, Any], track_every: int) -> Callable[[], Any]:
    import torch

    from arraypenalties import Pipeline, output_magnitude_penalty
    from arraypenalties.integrations.torch import make_train_step
    from arraypenalties.schedules import warmup
    from arraypenalties.transforms import clip_by_global_norm

    model = setup["model"]()
    penalties = (
        Pipeline()
        .add("l1", "l1", weight=WEIGHTS["l1"])
        .add("l2", "l2", weight=WEIGHTS["l2"])
        .add("magnitude", output_magnitude_penalty, weight=WEIGHTS["magnitude"])
        .add("entropy", _entropy_bonus, weight=WEIGHTS["entropy"])
    )
    step = make_train_step(
        model,
        torch.nn.functional.cross_entropy,
        torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9),
        penalties=penalties,
        parameter_penalties={"l2": ("l2", DECAY, {"exclude": "bias$"})},
        activity={"1": ("l1", ACTIVITY)},
        transforms=clip_by_global_norm(max_norm=MAX_NORM),
        weight_schedules={"l1": warmup(WEIGHTS["l1"], steps=WARMUP)},
        track_every=track_every,
    )
    x, y = setup["x"], setup["y"]

    def run() -> Any:
        for _ in range(STEPS_PER_CALL):
            metrics = step(x, y)
        return metrics

    return run


def _by_hand(setup: dict[str, Any], track_every: int) -> Callable[[], Any]:
    import torch

    from arraypenalties import l1, l2, output_magnitude_penalty
    from arraypenalties.integrations.torch import apply_transforms
    from arraypenalties.transforms import clip_by_global_norm

    model = setup["model"]()
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)
    apply_transforms(optimizer, clip_by_global_norm(max_norm=MAX_NORM))  # the same transform
    weights = [p for name, p in model.named_parameters() if not name.endswith("bias")]
    captured: list[Any] = []
    model[1].register_forward_hook(lambda module, args, out: captured.append(out))
    x, y = setup["x"], setup["y"]
    counter = [0]

    def step() -> list[float]:
        index = counter[0]
        w_l1 = WEIGHTS["l1"] * min(index / WARMUP, 1.0)
        out = model(x)
        base = torch.nn.functional.cross_entropy(out, y)
        terms = [l1(out), l2(out), output_magnitude_penalty(out), _entropy_bonus(out)]
        scales = [w_l1, WEIGHTS["l2"], WEIGHTS["magnitude"], WEIGHTS["entropy"]]
        weighted = [w * t for w, t in zip(scales, terms, strict=True)]
        decay = torch.stack([l2(p) for p in weights]).sum()
        activity = l1(captured.pop())
        output_total = weighted[0] + weighted[1] + weighted[2] + weighted[3]
        penalty = output_total + DECAY * decay + ACTIVITY * activity
        loss = base + penalty
        norms = []
        if track_every and index % track_every == 0:
            grads = [torch.autograd.grad(t, out, retain_graph=True)[0] for t in terms]
            norms = [torch.linalg.vector_norm(g) for g in grads]
            total = sum(w * g for w, g in zip(scales, grads, strict=True))
            norms.append(torch.linalg.vector_norm(total))
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        counter[0] = index + 1
        parts = [loss, base, penalty, *terms, *weighted, output_total, *norms]
        parts += [decay, DECAY * decay, activity, ACTIVITY * activity]
        return torch.stack([p.detach() for p in parts]).tolist()

    def run() -> Any:
        for _ in range(STEPS_PER_CALL):
            metrics = step()
        return metrics

    return run


def _rows(size: tuple[int, int, int], settings: dict[str, Any]) -> list[Row]:
    setup = _setup(*size)
    rows = []
    cases = [
        ("make_train_step(track_every=10) vs hand loop", 10, "<= 1.05"),
        ("make_train_step(track_every=0) vs hand loop", 0, "<= 1.02"),
    ]
    for case, every, target in cases:
        ours, hand = compare(_ours(setup, every), _by_hand(setup, every), **settings)
        rows.append(
            Row(
                "torch",
                case,
                ours.median / STEPS_PER_CALL * 1e6,
                hand.median / STEPS_PER_CALL * 1e6,
                ours.median / hand.median,
                target,
            )
        )
    tracked, untracked = compare(_ours(setup, 1), _ours(setup, 0), **settings)
    rows.append(
        Row(
            "torch",
            "tracked step (N = 4) vs untracked step",
            tracked.median / STEPS_PER_CALL * 1e6,
            untracked.median / STEPS_PER_CALL * 1e6,
            tracked.median / untracked.median,
            "<= 1.6",
        )
    )
    return rows


def run(
    *, quick: bool = False, frameworks: tuple[str, ...] | None = None, torch_threads: int = 1
) -> list[Row]:
    """The three rows of the module docstring (none when torch is not installed)."""
    settings, size = (QUICK, SIZES["quick"]) if quick else (FULL, SIZES["full"])
    rows: list[Row] = []
    for _, make_rows in installed_frameworks({"torch": _rows}, frameworks, torch_threads):
        rows.extend(make_rows(size, settings))
    return rows


def format_table(rows: list[Row]) -> str:
    lines = [
        "| case | ours µs/step | reference µs/step | ratio | target |",
        "|---|---:|---:|---:|---|",
    ]
    lines += [
        f"| {r.case} | {r.ours_us:,.0f} | {r.reference_us:,.0f} | {r.ratio:.3f} | {r.target} |"
        for r in rows
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(bench_main(__doc__, run, format_table))
