"""Moved to ``_lib`` and ``backends.primitives``; re-exported for old imports."""

from arraypenalties._lib.namespace import describe_type as describe_type
from arraypenalties._lib.namespace import device_of as device_of
from arraypenalties._lib.namespace import get_xp as get_xp
from arraypenalties._lib.ops import logsumexp_array_api as logsumexp_array_api
from arraypenalties.backends.primitives import logsumexp as logsumexp
from arraypenalties.backends.primitives import run_fused as run_fused
from arraypenalties.backends.primitives import stop_gradient as stop_gradient
