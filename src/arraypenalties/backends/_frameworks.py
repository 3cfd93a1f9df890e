"""What the command line asks about an installed framework, one record per framework.

The pip distributions that provide it, its devices, whether it can run here and
how to build a float64 demo array: facts about frameworks, so they live with the
backends (``python -m arraypenalties info|demo`` only reads them). Namespaces are
loaded by ``import`` statements, never by a name read from the command line.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import importlib.util
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = ["FRAMEWORKS", "Framework"]

_CUPY_HINT = "pip install cupy-cuda12x (or the wheel for your CUDA); it needs an NVIDIA GPU"


def _numpy() -> Any:
    import numpy

    return numpy


def _torch() -> Any:
    import torch

    return torch


def _jax_numpy() -> Any:
    import jax.numpy

    return jax.numpy


def _array_api_strict() -> Any:
    import array_api_strict

    return array_api_strict


def _dask_array() -> Any:
    import dask.array

    return dask.array


def _cupy() -> Any:
    import cupy

    return cupy


def _torch_devices() -> str:
    import torch

    cuda = torch.cuda.device_count() if torch.cuda.is_available() else 0
    return ", ".join(["cpu", *(f"cuda:{i}" for i in range(cuda))])


def _jax_devices() -> str:
    import jax

    return ", ".join(f"{device.platform}:{device.id}" for device in jax.devices())


def _cupy_devices() -> str:
    try:
        import cupy

        count = int(cupy.cuda.runtime.getDeviceCount())
    except Exception:  # no driver, no GPU or a broken CUDA install
        return "no GPU"
    return f"{count} GPU(s)" if count else "no GPU"


@contextlib.contextmanager
def _jax_float64() -> Iterator[None]:
    """Enable jax's float64 for the block only and restore the previous setting."""
    import jax

    config: Any = jax.config  # untyped in jax's stubs
    previous = config.read("jax_enable_x64")
    config.update("jax_enable_x64", True)
    try:
        yield
    finally:
        config.update("jax_enable_x64", previous)


@dataclass(frozen=True)
class Framework:
    """One framework as ``info`` and ``demo`` see it.

    Attributes
    ----------
    name : str
        The import name (``"torch"``, ``"array_api_strict"``).
    distributions : tuple of str
        Pip distributions that provide it (cupy ships one wheel per CUDA major).
    namespace : callable or None
        Imports and returns its Array API namespace (None: not an array framework, jaxlib).
    list_devices : callable or None
        Describes its devices (None: no such notion).
    needs_gpu : bool
        Arrays live on a GPU only (cupy).
    float64_scope : callable or None
        A context manager that enables float64 (jax keeps it off by default).
    """

    name: str
    distributions: tuple[str, ...]
    namespace: Callable[[], Any] | None
    list_devices: Callable[[], str] | None = None
    needs_gpu: bool = False
    float64_scope: Callable[[], contextlib.AbstractContextManager[None]] | None = None

    def version(self) -> str | None:
        """The installed version, or None when no distribution of it is installed."""
        for distribution in self.distributions:
            with contextlib.suppress(importlib.metadata.PackageNotFoundError):
                return importlib.metadata.version(distribution)
        return None

    def devices(self) -> str:
        """Its devices, ``""`` for frameworks without that notion, the error if it is broken."""
        if self.list_devices is None:
            return ""
        try:
            return self.list_devices()
        except Exception as exc:  # a broken install must not crash `info`
            return f"error: {type(exc).__name__}: {exc}"

    def unavailable(self) -> str:
        """Why it cannot run here, or ``""`` when it can."""
        if importlib.util.find_spec(self.name) is None:
            return "not installed" + (f" ({_CUPY_HINT})" if self.needs_gpu else "")
        if self.needs_gpu and _cupy_devices() == "no GPU":
            return "installed, but there is no usable GPU (cupy arrays live on an NVIDIA GPU)"
        return ""

    def float64(self) -> contextlib.AbstractContextManager[None]:
        """A block in which its float64 arrays can be made."""
        return contextlib.nullcontext() if self.float64_scope is None else self.float64_scope()

    def array(self, values: Sequence[float]) -> Any:
        """``values`` as a float64 array of this framework (inside :meth:`float64` for jax)."""
        if self.namespace is None:
            msg = f"{self.name} has no array namespace"
            raise TypeError(msg)
        xp = self.namespace()
        return xp.asarray(list(values), dtype=xp.float64)


FRAMEWORKS: dict[str, Framework] = {
    framework.name: framework
    for framework in (
        Framework("numpy", ("numpy",), _numpy),
        Framework("torch", ("torch",), _torch, _torch_devices),
        Framework("jax", ("jax",), _jax_numpy, _jax_devices, float64_scope=_jax_float64),
        Framework("jaxlib", ("jaxlib",), None),
        Framework("array_api_strict", ("array-api-strict",), _array_api_strict),
        Framework("dask", ("dask",), _dask_array),
        Framework(
            "cupy",
            ("cupy", "cupy-cuda13x", "cupy-cuda12x", "cupy-cuda11x"),
            _cupy,
            _cupy_devices,
            needs_gpu=True,
        ),
    )
}
