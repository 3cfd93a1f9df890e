"""The same penalty call on every installed array library, with its gradient.

Run: python examples/same_call_every_backend.py
"""

import importlib.util
import warnings

from arraypenalties import FiniteDifferenceWarning, elastic_net, get_backend, l1, l2

VALUES = [0.5, -1.0, 2.0, -0.25]


def arrays() -> dict:
    """One float64 array per installed library; none of them is required."""
    found = {}
    if importlib.util.find_spec("numpy"):
        import numpy as np

        found["numpy"] = np.asarray(VALUES)
    if importlib.util.find_spec("torch"):
        import torch

        found["torch"] = torch.tensor(VALUES, dtype=torch.float64)
    if importlib.util.find_spec("numpy") and importlib.util.find_spec("jax"):  # jax needs numpy
        import jax

        jax.config.update("jax_enable_x64", True)
        found["jax"] = jax.numpy.asarray(VALUES)
    if importlib.util.find_spec("numpy") and importlib.util.find_spec("array_api_strict"):
        import array_api_strict

        found["array_api_strict"] = array_api_strict.asarray(VALUES, dtype=array_api_strict.float64)
    return found


def main() -> None:
    found = arrays()
    if not found:
        print(
            "no array library is installed: pip install 'arraypenalties[numpy]' (or [torch], [jax])"
        )
        return
    for name, x in found.items():
        backend = get_backend(x)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FiniteDifferenceWarning)  # numpy: approximate
            grad = backend.grad(lambda v: l2(v, lam=0.5), x)
        print(
            f"{name:>16}: l1={float(l1(x)):.4f} l2={float(l2(x, lam=0.5)):.4f} "
            f"elastic_net={float(elastic_net(x, l1_ratio=0.3)):.4f} "
            f"grad l2={[round(float(g), 6) for g in grad]} "
            f"({'autodiff' if backend.exact else 'finite differences'})"
        )


if __name__ == "__main__":
    main()
