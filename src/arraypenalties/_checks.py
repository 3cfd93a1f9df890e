"""Moved to :mod:`arraypenalties._lib.checks`; this re-export keeps old imports working."""

from arraypenalties._lib.checks import *  # noqa: F403
