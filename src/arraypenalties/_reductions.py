"""Moved to :mod:`arraypenalties.backends.primitives`; re-exported for old imports."""

from arraypenalties.backends.primitives import as_array as as_array
from arraypenalties.backends.primitives import reduce as reduce
