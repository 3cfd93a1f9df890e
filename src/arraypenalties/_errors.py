"""Moved to :mod:`arraypenalties._lib.errors`; this re-export keeps old imports working."""

from arraypenalties._lib.errors import *  # noqa: F403
