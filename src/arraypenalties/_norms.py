"""Moved to ``_lib.ops`` and ``backends.primitives``; re-exported for old imports."""

from arraypenalties._lib.ops import safe_sqrt as safe_sqrt
from arraypenalties._lib.ops import vector_norm as vector_norm
from arraypenalties.backends.primitives import safe_vector_norm as safe_vector_norm
