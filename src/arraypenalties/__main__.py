"""``python -m arraypenalties info|demo``: see :mod:`arraypenalties._cli`."""

from __future__ import annotations

from arraypenalties._cli import main

__all__ = ["main"]

if __name__ == "__main__":
    raise SystemExit(main())
