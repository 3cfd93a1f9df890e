"""Moved to :func:`arraypenalties.backends.primitives.to_floats`; re-exported for old imports."""

from arraypenalties.backends.primitives import to_floats as to_floats
