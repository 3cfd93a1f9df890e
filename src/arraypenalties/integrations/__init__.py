"""Opt-in training-loop integrations; each module imports its framework.

- :mod:`arraypenalties.integrations.torch`: ``wrap_loss``, ``parameter_penalty``,
  ``ActivityRegularizer``, ``make_train_step`` and ``apply_transforms``;
- :mod:`arraypenalties.integrations.jax`: a jitted optax ``make_train_step``;
- :mod:`arraypenalties.integrations.flax`: ``activity_penalty`` over sown values;
- :mod:`arraypenalties.integrations.keras`: a Keras 3 ``Regularizer``;
- :mod:`arraypenalties.integrations.optax`: ``to_optax(tx)``, an optax
  ``GradientTransformation`` usable inside ``optax.chain``.

``import arraypenalties`` imports none of them: import the one you need.
"""

__all__: list[str] = []
