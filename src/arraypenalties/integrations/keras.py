"""Any arraypenalties penalty as a Keras 3 regularizer (imports keras).

Keras reads its backend when it is first imported (``KERAS_BACKEND=jax`` or
``torch``); :class:`Regularizer` works on both, on weights
(``kernel_regularizer=``) and on layer outputs (``activity_regularizer=``,
which Keras divides by the batch size), and survives ``model.save`` /
``keras.saving.load_model`` of a ``.keras`` file.

Examples
--------
>>> import keras
>>> from arraypenalties.integrations.keras import Regularizer
>>> layer = keras.layers.Dense(2, kernel_regularizer=Regularizer("l2", weight=1e-3))
>>> Regularizer("entropy", weight=0.1, mode="bonus").get_config()
{'penalty': 'entropy', 'weight': 0.1, 'opts': {'mode': 'bonus'}}
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from typing import Any

import keras

from arraypenalties._lib.checks import check_callable, check_real
from arraypenalties._lib.errors import InvalidTypeError, InvalidValueError, UnknownNameError
from arraypenalties.pipelines import known_penalties

__all__ = ["Regularizer"]

Array = Any
_CONFIG_KEYS = ("penalty", "weight", "opts")


def _known_penalties() -> dict[str, Callable[..., Array]]:
    """Name → function of every one-input penalty a config may name (built-in or registered)."""
    return {name: fn for name, (fn, inputs) in known_penalties().items() if inputs == 1}


def _resolve(penalty: object) -> tuple[Callable[..., Array], str | None]:
    """The function and its config name (None for a function that has no name)."""
    known = _known_penalties()
    if isinstance(penalty, str):
        if penalty not in known:
            msg = f"`penalty` {penalty!r} is not a known penalty name; known: {sorted(known)}"
            raise UnknownNameError(msg)
        return known[penalty], penalty
    penalty = check_callable(penalty, "penalty", what="a penalty name or a function")
    name = next((key for key, fn in known.items() if fn is penalty), None)
    return penalty, name


def _check_options(fn: Callable[..., Array], opts: Mapping[str, Any]) -> None:
    """Raise naming an option ``fn`` does not accept (at construction, not at the first call)."""
    try:
        parameters = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):  # a builtin without a signature: nothing to check
        return
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters):
        return
    accepted = [p.name for p in parameters if p.kind is inspect.Parameter.KEYWORD_ONLY]
    accepted += [p.name for p in parameters if p.kind is inspect.Parameter.POSITIONAL_OR_KEYWORD]
    unknown = sorted(set(opts) - set(accepted))
    if unknown:
        name = getattr(fn, "__name__", repr(fn))
        msg = f"`opts` {unknown} are not options of {name}; its options are {sorted(accepted)}"
        raise InvalidValueError(msg)


@keras.saving.register_keras_serializable(package="arraypenalties", name="Regularizer")
class Regularizer(keras.regularizers.Regularizer):  # type: ignore[misc]
    """``weight · penalty(x, **opts)`` as a ``keras.regularizers.Regularizer``.

    Parameters
    ----------
    penalty : str or callable
        A penalty name (``"l1"``, ``"l2"``, ``"elastic_net"``, ``"entropy"``,
        ``"orthogonality"``, ``"output_magnitude"``) or a function
        ``penalty(x, **opts) -> 0-d array``.
    weight : float, default 1.0
        Multiplies the penalty.
    **opts
        The penalty's options (``lam=``, ``reduction=``, ``mode=``...), JSON-friendly
        if the model is to be saved.

    Notes
    -----
    ``get_config()`` is ``{"penalty": name, "weight": weight, "opts": {...}}``;
    a function given directly that has no known name raises there, naming it
    (Keras calls ``get_config`` when it saves a model). ``from_config`` only
    looks names up in the known table: nothing in a config is imported or
    called. The class is registered with Keras as ``arraypenalties>Regularizer``,
    so ``keras.saving.load_model`` restores it without ``custom_objects``.

    Examples
    --------
    >>> import numpy as np
    >>> from arraypenalties.integrations.keras import Regularizer
    >>> float(Regularizer("l1", weight=0.1)(np.array([1.0, -2.0, 3.0])))
    0.6000000000000001
    >>> Regularizer.from_config({"penalty": "l2", "weight": 0.5, "opts": {}}).weight
    0.5
    """

    def __init__(self, penalty: str | Callable[..., Array], *, weight: float = 1.0, **opts: Any):
        self.fn, self.penalty_name = _resolve(penalty)
        _check_options(self.fn, opts)
        self.weight = check_real(weight, "weight")
        self.opts = dict(opts)

    def __call__(self, x: Array) -> Array:
        return self.weight * self.fn(keras.ops.convert_to_tensor(x), **self.opts)

    def __repr__(self) -> str:
        label = self.penalty_name or getattr(self.fn, "__name__", repr(self.fn))
        return f"Regularizer({label!r}, weight={self.weight!r}, opts={self.opts!r})"

    def get_config(self) -> dict[str, Any]:
        """``{"penalty": name, "weight": weight, "opts": {...}}`` (raises for unnamed functions)."""
        if self.penalty_name is None:
            msg = (
                f"Regularizer({self.fn!r}) cannot be written to a config: the function is not "
                f"a known penalty name ({sorted(_known_penalties())}); pass the penalty by name"
            )
            raise InvalidValueError(msg)
        return {"penalty": self.penalty_name, "weight": self.weight, "opts": dict(self.opts)}

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> Regularizer:
        """Rebuild from :meth:`get_config` data; the penalty must be a known name."""
        given: object = config
        if not isinstance(given, Mapping):
            msg = f"`config` must be a mapping; got {type(config).__name__}"
            raise InvalidTypeError(msg)
        unknown = sorted(set(config) - set(_CONFIG_KEYS))
        if unknown or "penalty" not in config:
            msg = f"`config` must have keys {list(_CONFIG_KEYS)}; got {sorted(config)}"
            raise InvalidValueError(msg)
        penalty, opts = config["penalty"], config.get("opts", {})
        if not isinstance(penalty, str):
            msg = f"`config['penalty']` must be a penalty name; got {penalty!r}"
            raise InvalidTypeError(msg)
        if not isinstance(opts, Mapping) or not all(isinstance(key, str) for key in opts):
            msg = f"`config['opts']` must be a mapping with str keys; got {opts!r}"
            raise InvalidTypeError(msg)
        return cls(penalty, weight=config.get("weight", 1.0), **opts)
