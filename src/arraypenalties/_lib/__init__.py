"""Floor 1 of the package: errors, checks, the namespace seam and pure Array API helpers.

Nothing here imports anything of arraypenalties above ``_lib`` (import-linter
enforces it), and nothing here knows a framework: framework facts live in
:mod:`arraypenalties.backends`.
"""
