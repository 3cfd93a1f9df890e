"""Constraints: orthogonality of representations and consistency between two views.

The counterpart of NxPenalties' ``constraints.exs``: the three orthogonality modes on rows
that are orthogonal, nearly so and collinear; the reshaping ``axis`` of rank-3 inputs; and
the consistency metrics between a clean and a perturbed prediction.

Run: python examples/constraints.py   (needs numpy)
"""

import importlib.util


def main() -> None:
    if importlib.util.find_spec("numpy") is None:
        print("this example needs numpy: pip install 'arraypenalties[numpy]'")
        return
    import numpy as np

    from arraypenalties import consistency, orthogonality

    cases = {
        "orthogonal rows": np.eye(3),
        "nearly orthogonal": np.asarray([[1.0, 0.1, 0.0], [0.0, 1.0, 0.1], [0.1, 0.0, 1.0]]),
        "collinear rows": np.asarray([[1.0, 1.0, 0.0], [2.0, 2.0, 0.0], [0.0, 0.0, 1.0]]),
    }
    print(f"{'':20} {'soft':>8} {'hard':>8} {'spectral':>9}")
    for name, x in cases.items():
        values = [orthogonality(x, mode=mode) for mode in ("soft", "hard", "spectral")]
        print(f"{name:20} " + " ".join(f"{v:8.4f}" for v in values))
    # collinear rows: after normalisation two rows are equal, so G has two off-diagonal 1s
    assert np.isclose(orthogonality(cases["collinear rows"], mode="soft"), 2.0)
    # spectral: the largest singular value of G − I, squared (the SRIP penalty)
    rows = cases["nearly orthogonal"] / np.linalg.norm(cases["nearly orthogonal"], axis=1)[:, None]
    sigma = np.linalg.norm(rows @ rows.T - np.eye(3), ord=2)
    assert np.isclose(orthogonality(cases["nearly orthogonal"], mode="spectral"), sigma**2)

    hidden = np.random.default_rng(0).normal(size=(2, 4, 8))  # [batch, sequence, features]
    for axis in ("rows", "sequence", "vocabulary"):
        label = f"axis={axis!r}"
        print(
            f"orthogonality(hidden [2, 4, 8], {label:18}) = {orthogonality(hidden, axis=axis):.4f}"
        )

    clean = np.asarray([[0.2, 0.5, 0.3], [0.9, 0.05, 0.05]])
    noisy = clean + np.asarray([[0.05, -0.05, 0.0], [-0.1, 0.05, 0.05]])
    for metric in ("mse", "l1", "cosine"):
        label = f"metric={metric!r}"
        value = consistency(clean, noisy, metric=metric)
        print(f"consistency(clean, noisy, {label:15}) = {value:.6f}")
    print("per row, cosine:", consistency(clean, noisy, metric="cosine", reduction="none"))
    assert np.isclose(consistency(clean, noisy), np.mean((clean - noisy) ** 2))


if __name__ == "__main__":
    main()
