"""What the torch integrations share: penalty and option checks, the wrapped module."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import torch

from arraypenalties._lib.checks import check_callable, check_real
from arraypenalties._lib.errors import InvalidTypeError, UnknownNameError
from arraypenalties._lib.namespace import describe_type
from arraypenalties.pipelines import known_penalties

__all__ = [
    "check_opts",
    "check_penalty",
    "check_weight",
    "inner_module",
    "zero_like_module",
]


def check_penalty(penalty: object, name: str) -> Callable[..., Any]:
    """A callable ``penalty(x, **opts)``, or the function of a one-input built-in name."""
    if isinstance(penalty, str):
        known = known_penalties()
        if known.get(penalty, (None, 0))[1] != 1:
            one_input = sorted(key for key, (_, count) in known.items() if count == 1)
            msg = f"`{name}` {penalty!r} is not a one-input built-in or registered penalty; "
            msg += f"use one of {one_input}"
            raise UnknownNameError(msg)
        return known[penalty][0]
    return check_callable(penalty, name, what="a function penalty(x, **opts) or a built-in name")


def check_weight(weight: object, name: str) -> float:
    return check_real(weight, name)


def check_opts(opts: object, name: str) -> dict[str, Any]:
    if opts is None:
        return {}
    if not isinstance(opts, Mapping) or not all(isinstance(key, str) for key in opts):
        msg = f"`{name}` must be a mapping of option names to values or None; got {opts!r}"
        raise InvalidTypeError(msg)
    return dict(opts)


def inner_module(model: object, name: str = "model") -> torch.nn.Module:
    """The module whose names users write: DDP's ``.module``, ``torch.compile``'s original.

    ``DistributedDataParallel`` prefixes every name with ``module.`` and a compiled
    module with ``_orig_mod.``; the integrations name parameters and submodules as
    the model the user built names them, so the same regular expressions and paths
    work with and without the wrappers.
    """
    if not isinstance(model, torch.nn.Module):
        msg = f"`{name}` must be a torch.nn.Module; got {describe_type(model)}"
        raise InvalidTypeError(msg)
    module: torch.nn.Module = model
    while True:
        if isinstance(module, torch.nn.parallel.DistributedDataParallel):
            module = module.module
            continue
        original = getattr(module, "_orig_mod", None)  # torch._dynamo's OptimizedModule
        if not isinstance(original, torch.nn.Module):
            return module
        module = original


def zero_like_module(module: torch.nn.Module) -> torch.Tensor:
    """A 0-d zero of the module's first floating parameter's dtype and device (float32 CPU)."""
    for param in module.parameters():
        if param.is_floating_point():
            return torch.zeros((), dtype=param.dtype, device=param.device)
    return torch.zeros(())
