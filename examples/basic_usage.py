"""Basic usage: the norm penalties, their options and reductions, added to a loss.

The counterpart of NxPenalties' ``basic_usage.exs``: ``l1``, ``l2`` (with ``center`` and
``clip``) and ``elastic_net`` on one array, each reduction, and a regularised loss.

Run: python examples/basic_usage.py   (needs numpy)
"""

import importlib.util


def main() -> None:
    if importlib.util.find_spec("numpy") is None:
        print("this example needs numpy: pip install 'arraypenalties[numpy]'")
        return
    import numpy as np

    from arraypenalties import elastic_net, l1, l2

    w = np.asarray([0.5, -1.0, 2.0, -0.25, 0.0, 1.5])
    print("w =", w)
    print(f"l1(w)                       = {l1(w):.4f}   (sum |w|)")
    print(f"l1(w, reduction='mean')     = {l1(w, reduction='mean'):.4f}   (mean |w|)")
    print(f"l2(w, lam=0.5)              = {l2(w, lam=0.5):.4f}   (0.5 · sum w², no factor ½)")
    print(f"l2(w, center='mean')        = {l2(w, center='mean'):.4f}   (spread around the mean)")
    print(f"l2(w, clip=1.0)             = {l2(w, clip=1.0):.4f}   (each |w| capped at 1)")
    print(f"elastic_net(w, l1_ratio=0.3) = {elastic_net(w, l1_ratio=0.3):.4f}")
    print("l1(w, reduction='none')     =", l1(w, reduction="none"))

    # the same numbers by hand, in float64
    assert np.isclose(l1(w), np.abs(w).sum())
    assert np.isclose(l2(w, lam=0.5), 0.5 * (w**2).sum())
    assert np.isclose(l2(w, center="mean"), ((w - w.mean()) ** 2).sum())
    assert np.isclose(l2(w, clip=1.0), (np.clip(w, -1, 1) ** 2).sum())
    assert np.isclose(elastic_net(w, l1_ratio=0.3), 0.3 * np.abs(w).sum() + 0.7 * (w**2).sum())

    # a penalty is a quantity to ADD to a loss you minimise
    x, y = np.asarray([[1.0, 2.0], [3.0, 4.0]]), np.asarray([1.0, 2.0])
    weights = np.asarray([0.3, 0.1])
    data_loss = np.mean((x @ weights - y) ** 2)
    loss = data_loss + l2(weights, lam=1e-2)
    print(f"data loss {data_loss:.4f} + 0.01 · l2(weights) = {loss:.4f}")
    result = l1(w)
    print(f"a result is a 0-d {type(result).__name__} of dtype {result.dtype}: {result!r}")


if __name__ == "__main__":
    main()
