"""Gradient transforms: decay, clipping, noise and masks on the optimizer side.

The counterpart of NxPenalties' ``polaris_integration.exs``. A transform rewrites the
gradients before the optimizer uses them, with the ``(init, update)`` shape of optax:
``chain`` applies its members in reading order, ``masked`` restricts one to some leaves
(no decay on biases), the states record what happened (the pre-clip norm), and the same
transform drives a torch optimizer through a step pre-hook.

Run: python examples/optimizer_transforms.py   (needs numpy; the torch part needs torch)
"""

import importlib.util


def main() -> None:
    if importlib.util.find_spec("numpy") is None:
        print("this example needs numpy: pip install 'arraypenalties[numpy]'")
        return
    import numpy as np

    from arraypenalties import transforms as T

    params = {"w": np.asarray([[3.0, 4.0], [0.0, 1.0]]), "b": np.asarray([1.0, -1.0])}
    grads = {"w": np.asarray([[30.0, 40.0], [0.0, 0.0]]), "b": np.asarray([0.0, 0.0])}
    no_bias = lambda tree: {name: name != "b" for name in tree}  # noqa: E731
    tx = T.chain(
        T.clip_by_global_norm(max_norm=5.0),
        T.masked(T.add_l2_decay(decay=0.1), no_bias),
        T.add_gradient_noise(variance=1e-4, seed=0),
    )
    state = tx.init(params)
    for step in range(3):
        updates, state = tx.update(grads, state, params)
        print(
            f"update {step}: w {np.round(updates['w'].ravel(), 4)}, b {np.round(updates['b'], 4)}"
        )
    print("pre-clip global norm in the state:", state[0].norm)
    assert np.isclose(state[0].norm, 50.0)

    # chain order matters: decay then clip clips the decayed gradient
    clip_last = T.chain(T.add_l2_decay(decay=1.0), T.clip_by_global_norm(max_norm=1.0))
    out, _ = clip_last.update(grads, clip_last.init(params), params)
    norm = np.sqrt(sum((u**2).sum() for u in out.values()))
    print(f"chain(add_l2_decay, clip_by_global_norm): global norm {norm:.4f}")
    assert np.isclose(norm, 1.0)

    # unit-wise adaptive gradient clipping: each row (torch layout) clipped on its own
    agc = T.adaptive_gradient_clipping(clip_factor=0.01)
    clipped, _ = agc.update(grads, agc.init(params), params)
    print("AGC, per-row gradient norms:", np.round(np.linalg.norm(clipped["w"], axis=1), 4))

    if importlib.util.find_spec("torch") is None:
        print("(skipping the torch part: torch is not installed)")
        return
    import torch

    from arraypenalties.integrations.torch import apply_transforms

    torch.manual_seed(0)
    model = torch.nn.Linear(4, 2)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    with apply_transforms(optimizer, T.clip_by_global_norm(max_norm=0.5)) as hook:
        for _ in range(3):
            optimizer.zero_grad()
            (model(torch.randn(8, 4)) ** 2).sum().backward()
            optimizer.step()  # the pre-hook clipped p.grad first
            print(f"torch: gradient norm before clipping {hook.state.norm.item():.4f}")


if __name__ == "__main__":
    main()
