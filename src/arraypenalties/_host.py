"""The one host transfer of :meth:`Pipeline.compute`: a 1-d array to Python floats.

Library code never calls ``float()``, ``bool()`` or ``.item()`` on arrays; this
module is the documented exception. ``Pipeline.compute`` stacks every metric into
one 1-d array on the device and converts it here, once, so a training step pays
one device-to-host synchronisation however many penalties it logs. Tests patch
:func:`to_floats` to count the transfers.
"""

from __future__ import annotations

import sys
from typing import Any

__all__ = ["to_floats"]


def to_floats(values: Any) -> list[float]:
    """Copy a 1-d float32 / float64 array to the host as Python floats, in one transfer.

    torch, jax, numpy and cupy arrays convert with ``tolist`` (one copy). dask
    arrays are computed once first. array-api-strict arrays have no ``tolist``
    and go through DLPack into numpy (which array-api-strict depends on).
    """
    compute = getattr(values, "compute", None)
    if compute is not None and type(values).__module__.startswith("dask"):
        values = compute()
    tolist = getattr(values, "tolist", None)
    if tolist is None:
        values = sys.modules["numpy"].from_dlpack(values)
        tolist = values.tolist
    return [float(value) for value in tolist()]
