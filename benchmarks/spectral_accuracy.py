"""Accuracy of ``orthogonality(mode="spectral")`` (power iteration) over random inputs.

Not a speed benchmark: it measures the relative error of the 50-step power
iteration against the exact squared spectral norm (``numpy.linalg.eigvalsh``,
float64), grouped by ``ρ = |λ₂| / |λ₁|``, the ratio of the two largest
eigenvalue magnitudes of ``G − I`` (``G = M Mᵀ`` of the row-normalised input).
The error of power iteration is about ``(c₂ / c₁)² ρ^200`` where ``c₁, c₂`` are
the start vector's components along the two top eigenvectors; the factor
``(c₂ / c₁)²`` has no upper bound, so this reports what random inputs show.

Inputs: ``n × d`` matrices with ``n, d`` drawn from 2..40, in three families
(Gaussian; rows clustered around 1–3 centres, which brings the top
eigenvalues close together; Gaussian with scaled columns), float64.

Run ``python benchmarks/spectral_accuracy.py [--samples N] [--seed S]``; it
prints one markdown row per ρ bin.
"""

from __future__ import annotations

import argparse
import itertools
from dataclasses import dataclass

import numpy as np

from arraypenalties import orthogonality

__all__ = ["BINS", "Bin", "measure", "random_input"]

BINS = (0.0, 0.8, 0.85, 0.9, 0.93, 0.95, 0.97, 0.99, 1.0)


@dataclass(frozen=True)
class Bin:
    """The inputs whose ``ρ`` lies in ``(low, high]``."""

    low: float
    high: float
    count: int
    max_error: float  # the largest relative error (true − estimate) / true
    max_overestimate: float  # the largest (estimate − true) / true; ~1e-15 (rounding)


def random_input(rng: np.random.Generator, index: int) -> np.ndarray:
    """One ``n × d`` input of the family ``index % 3``."""
    n, d = int(rng.integers(2, 41)), int(rng.integers(2, 41))
    family = index % 3
    if family == 0:
        return rng.normal(size=(n, d))
    if family == 1:  # clustered rows: near-degenerate top eigenvalues
        k = int(rng.integers(1, 4))
        centres = rng.normal(size=(k, d))
        return centres[rng.integers(0, k, n)] + 0.3 * rng.normal(size=(n, d))
    return rng.normal(size=(n, d)) * rng.uniform(0.1, 3.0, size=d)


def _exact(x: np.ndarray) -> tuple[float, float]:
    """``(σ_max(G − I)², ρ)`` in float64 from the eigenvalues of ``G − I``."""
    m = x / np.linalg.norm(x, axis=1, keepdims=True)
    magnitudes = np.sort(np.abs(np.linalg.eigvalsh(m @ m.T - np.eye(len(m)))))[::-1]
    return float(magnitudes[0] ** 2), float(magnitudes[1] / magnitudes[0])


def measure(samples: int, seed: int = 0) -> list[Bin]:
    """Relative errors of ``samples`` random inputs, grouped into :data:`BINS` of ``ρ``."""
    rng = np.random.default_rng(seed)
    ratios, errors = [], []
    for index in range(samples):
        x = random_input(rng, index)
        true, ratio = _exact(x)
        estimate = float(orthogonality(x, mode="spectral"))
        ratios.append(ratio)
        errors.append((true - estimate) / true)
    rho, err = np.asarray(ratios), np.asarray(errors)
    bins = []
    for low, high in itertools.pairwise(BINS):
        chosen = (rho > low) & (rho <= high)
        if chosen.any():
            worst, over = float(err[chosen].max()), float(-err[chosen].min())
            bins.append(Bin(low, high, int(chosen.sum()), worst, max(over, 0.0)))
    return bins


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=20_000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    print(f"{args.samples} random inputs, seed {args.seed}")
    print("| rho | inputs | largest relative error | largest overestimate |")
    print("|---|---:|---:|---:|")
    for row in measure(args.samples, args.seed):
        print(
            f"| ({row.low}, {row.high}] | {row.count} | {row.max_error:.2g} "
            f"| {row.max_overestimate:.1g} |"
        )


if __name__ == "__main__":
    main()
