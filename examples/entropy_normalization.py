"""Entropy: the bonus and penalty signs, normalisation by ln V, and temperature.

The counterpart of NxPenalties' ``entropy_normalization.exs``. Normalised entropy lies in
[0, 1] whatever the vocabulary size, so one weight suits models of every width. The signs
follow the rule that a penalty is ADDED to a minimised loss: ``mode="bonus"`` returns −H
(minimising it raises the entropy), ``mode="penalty"`` returns +H.

Run: python examples/entropy_normalization.py   (needs numpy)
"""

import importlib.util
import math


def main() -> None:
    if importlib.util.find_spec("numpy") is None:
        print("this example needs numpy: pip install 'arraypenalties[numpy]'")
        return
    import numpy as np

    from arraypenalties import entropy, entropy_value

    def log_softmax(z: np.ndarray) -> np.ndarray:
        z = z - z.max(axis=-1, keepdims=True)
        return z - np.log(np.exp(z).sum(axis=-1, keepdims=True))

    print(f"{'V':>6} {'H(uniform)':>11} {'ln V':>8} {'normalised':>11}")
    for size in (2, 10, 1000, 50000):
        uniform = np.full(size, -math.log(size))
        h = entropy_value(uniform)
        normalised = entropy_value(uniform, normalize=True)
        print(f"{size:6d} {h:11.4f} {math.log(size):8.4f} {normalised:11.4f}")
        assert np.isclose(h, math.log(size))

    logits = np.asarray([[2.0, 1.0, 0.1, -1.0]])
    lp = log_softmax(logits)
    h = entropy_value(lp)
    print(f"\nlogits {logits[0]}: H = {h:.4f}")
    print(f"  entropy(mode='bonus')   = {entropy(lp, mode='bonus'):+.4f}  (-H: add it to raise H)")
    print(
        f"  entropy(mode='penalty') = {entropy(lp, mode='penalty'):+.4f}  (+H: add it to sharpen)"
    )
    assert np.isclose(entropy(lp, mode="bonus"), -h)
    assert np.isclose(entropy(lp, mode="penalty"), h)

    print("temperature renormalises log_softmax(logprobs / T) first:")
    for temperature in (0.25, 0.5, 1.0, 2.0, 4.0):
        value = entropy_value(lp, temperature=temperature, normalize=True)
        print(f"  T = {temperature:4}: normalised H = {value:.4f}")
        p = np.exp(log_softmax(lp / temperature))
        assert np.isclose(value, -(p * np.log(p)).sum() / math.log(4))


if __name__ == "__main__":
    main()
