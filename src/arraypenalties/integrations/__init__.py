"""Opt-in adapters to frameworks' optimizers; each module imports its framework.

- :mod:`arraypenalties.integrations.optax`: ``to_optax(tx)``, an optax
  ``GradientTransformation`` usable inside ``optax.chain``;
- :mod:`arraypenalties.integrations.torch`: ``apply_transforms(optimizer, tx)``,
  a step pre-hook rewriting ``p.grad`` of a ``torch.optim.Optimizer``.

``import arraypenalties`` imports neither: import the adapter you need.
"""

__all__: list[str] = []
