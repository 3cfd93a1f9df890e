"""The site's figures, drawn with matplotlib at ``make docs`` time (never committed).

Run: python docs/_scripts/figures.py OUTPUT_DIR

- ``grad_share.png``: each penalty's share of the gradient pull during a tracked training run
  (``Pipeline.compute(track_grad_norms=True)`` at every step of a small torch loop);
- ``schedules.png``: the weight schedules' curves over one run;
- ``benchmarks.png``: the ratios of every table in ``docs/benchmarks.md``, as bars;
- ``kl_near_zero.png``: KL and its gradient as a probability goes to zero, ours against the
  clamped and masked form of NxPenalties.
"""

from __future__ import annotations

import math
import pathlib
import re
import sys

import matplotlib

matplotlib.use("Agg")  # files only, no display

import matplotlib.pyplot as plt
import numpy as np

ROOT = pathlib.Path(__file__).resolve().parents[2]
COLORS = ("#3f51b5", "#ff7043", "#26a69a", "#ab47bc", "#8d6e63")


def grad_share(out: pathlib.Path) -> None:
    """Softmax regression with three penalties on its weight matrix, tracked every step."""
    import torch

    from arraypenalties import Pipeline

    torch.manual_seed(0)
    inputs, labels = torch.randn(256, 16), torch.randint(0, 4, (256,))
    weights = torch.nn.Parameter(0.1 * torch.randn(16, 4))
    optimizer = torch.optim.SGD([weights], lr=0.5)
    reg = (
        Pipeline(name="reg")
        .add("l1", "l1", weight=2e-3)
        .add("l2", "l2", weight=2e-3)
        .add("orthogonality", "orthogonality", weight=2e-2, opts={"axis": "vocabulary"})
    )
    names = [entry.name for entry in reg]
    shares: dict[str, list[float]] = {name: [] for name in names}
    steps = range(150)
    for _ in steps:
        penalty, metrics = reg.compute(weights, track_grad_norms=True)
        pulls = {e.name: e.weight * metrics[f"{e.name}_grad_norm"] for e in reg}
        whole = sum(pulls.values())
        for name in names:
            shares[name].append(pulls[name] / whole)
        loss = torch.nn.functional.cross_entropy(inputs @ weights, labels) + penalty
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    fig, ax = plt.subplots(figsize=(7, 3.4))
    ax.stackplot(list(steps), *(shares[n] for n in names), labels=names, colors=COLORS)
    ax.set(xlabel="training step", ylabel="share of Σ wᵢ·‖∇fᵢ‖", xlim=(0, len(steps) - 1))
    ax.set_ylim(0, 1)
    ax.set_title("Which penalty pulls hardest: gradient-norm shares from a tracked run")
    ax.legend(loc="upper right", framealpha=0.9)
    fig.tight_layout()
    fig.savefig(out / "grad_share.png", dpi=110)
    plt.close(fig)


def schedules(out: pathlib.Path) -> None:
    from arraypenalties import schedules as S

    total = 1000
    curves = {
        "constant(0.05)": S.constant(0.05),
        "linear(0, 0.1)": S.linear(0.0, 0.1),
        "warmup(0.1, steps=200, then=cosine(0.1))": S.warmup(0.1, steps=200, then=S.cosine(0.1)),
        "exponential_decay(0.1, rate=0.5, steps=250)": S.exponential_decay(
            0.1, rate=0.5, steps=250
        ),
        "exponential_decay(..., staircase=True)": S.exponential_decay(
            0.1, rate=0.5, steps=250, staircase=True
        ),
        "cosine(0.1)": S.cosine(0.1),
    }
    steps = np.arange(total + 1)
    fig, ax = plt.subplots(figsize=(9, 3.6))
    for (label, schedule), style in zip(
        curves.items(), ["-", "-", "-", "-", "--", "-"], strict=True
    ):
        ax.plot(steps, [schedule(int(s), total) for s in steps], style, label=label)
    ax.set(xlabel="step (total = 1000)", ylabel="weight", xlim=(0, total))
    ax.set_title("Weight schedules")
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    fig.tight_layout()
    fig.savefig(out / "schedules.png", dpi=110)
    plt.close(fig)


def benchmark_tables(text: str) -> list[tuple[str, list[str], list[float]]]:
    """``(section, labels, ratios)`` for every table with a ``ratio`` column."""
    tables, section, lines = [], "", text.splitlines()
    i = 0
    while i < len(lines):
        if lines[i].startswith("#"):
            section = lines[i].lstrip("#").strip()
        header = [cell.strip() for cell in lines[i].strip().strip("|").split("|")]
        if lines[i].startswith("|") and "ratio" in header:
            column = header.index("ratio")
            keep = [j for j, name in enumerate(header) if not _is_number_column(name)]
            labels, ratios = [], []
            i += 2  # the header and the |---| rule
            while i < len(lines) and lines[i].startswith("|"):
                cells = [cell.strip() for cell in lines[i].strip().strip("|").split("|")]
                labels.append(" · ".join(cells[j] for j in keep))
                ratios.append(float(cells[column]))
                i += 1
            tables.append((section, labels, ratios))
            continue
        i += 1
    return tables


def _is_number_column(name: str) -> bool:
    return bool(re.search(r"µs|ratio|target|flops", name))


def benchmarks(out: pathlib.Path) -> None:
    tables = benchmark_tables((ROOT / "docs" / "benchmarks.md").read_text(encoding="utf-8"))
    heights = [0.26 * len(labels) + 0.9 for _, labels, _ in tables]
    fig, axes = plt.subplots(
        len(tables),
        1,
        figsize=(8, sum(heights)),
        squeeze=False,
        gridspec_kw={"height_ratios": heights},
    )
    for ax, (section, labels, ratios) in zip(axes[:, 0], tables, strict=True):
        y = np.arange(len(labels))[::-1]
        colors = [
            COLORS[2] if "faster" in label else COLORS[0] if r <= 1.1 else COLORS[1]
            for label, r in zip(labels, ratios, strict=True)
        ]
        ax.barh(y, ratios, color=colors, height=0.7)
        ax.axvline(1.0, color="black", linewidth=0.8)
        ax.set_yticks(y, labels, fontsize=7)
        ax.set_title(
            f"{section}: ours / native time (1 = the same; green rows: times faster)", fontsize=9
        )
        for yi, r in zip(y, ratios, strict=True):
            ax.text(r, yi, f" {r:.2f}", va="center", fontsize=7)
        ax.set_xlim(0, max(ratios) * 1.15)
    fig.tight_layout()
    fig.savefig(out / "benchmarks.png", dpi=110)
    plt.close(fig)


def clamped_kl(lp, lq):  # type: ignore[no-untyped-def]
    """NxPenalties' form: the log-ratio clamped to ±100 and terms with p ≤ 1e-10 dropped."""
    import torch

    p = torch.exp(lp)
    ratio = torch.clamp(lp - lq, -100.0, 100.0)
    return torch.sum(torch.where(p > 1e-10, p * ratio, torch.zeros_like(p)))


def kl_near_zero(out: pathlib.Path) -> None:
    """p = softmax([0, z]) against q = [1 − 1e-60, 1e-60]: the second probability → 0."""
    import torch

    from arraypenalties import kl_divergence

    small_p = np.logspace(-16, -1, 301)
    lq = torch.log(torch.tensor([1.0 - 1e-60, 1e-60], dtype=torch.float64))
    rows: dict[str, tuple[list[float], list[float]]] = {"ours": ([], []), "clamped": ([], [])}
    for p in small_p:
        for name, fn in (("ours", kl_divergence), ("clamped", clamped_kl)):
            z = torch.tensor(math.log(p / (1 - p)), dtype=torch.float64, requires_grad=True)
            lp = torch.log_softmax(torch.stack([torch.zeros((), dtype=torch.float64), z]), 0)
            value = fn(lp, lq)
            (grad,) = torch.autograd.grad(value, z)
            rows[name][0].append(value.item())
            rows[name][1].append(grad.item())
    fig, (left, right) = plt.subplots(1, 2, figsize=(9, 3.5))
    for (name, (values, grads)), style in zip(rows.items(), ["-", "--"], strict=True):
        label = "arraypenalties" if name == "ours" else "clamped ±100, p ≤ 1e-10 dropped"
        left.loglog(small_p, values, style, label=label)
        right.loglog(small_p, np.abs(grads), style, label=label)
    left.set(xlabel="p₂ (q₂ = 1e-60)", ylabel="KL(P‖Q)", title="value")
    right.set(xlabel="p₂ (q₂ = 1e-60)", ylabel="|∂KL/∂z₂|", title="gradient w.r.t. the logit")
    for ax in (left, right):
        ax.axvline(1e-10, color="grey", linewidth=0.6, linestyle=":")
        ax.legend(fontsize=8)
    fig.suptitle("KL near zero probability: the clamp and the mask change value and gradient")
    fig.tight_layout()
    fig.savefig(out / "kl_near_zero.png", dpi=110)
    plt.close(fig)


def main(argv: list[str]) -> int:
    out = pathlib.Path(argv[0])
    out.mkdir(parents=True, exist_ok=True)
    for draw in (grad_share, schedules, benchmarks, kl_near_zero):
        draw(out)
        print(f"wrote {out / (draw.__name__ + '.png')}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
