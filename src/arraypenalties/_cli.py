"""``python -m arraypenalties info|demo``: installed frameworks, backends, a worked example.

Application code: unlike the library it converts 0-d arrays to Python floats, to print them.
"""

from __future__ import annotations

import argparse
import os
import sys
import warnings
from collections.abc import Sequence
from typing import Any

import arraypenalties
from arraypenalties.backends import Backend
from arraypenalties.backends._frameworks import FRAMEWORKS

__all__ = ["DEMO_BACKENDS", "DEMO_X", "KNOWN_BACKENDS", "build_parser", "main"]

DEMO_X = (0.5, -1.0, 2.0, -0.25, 0.0, 1.5)
DEMO_BACKENDS = ("numpy", "torch", "jax", "array_api_strict", "dask")
# what `demo --backends` accepts: cupy runs only where a GPU is, so it is not in the default
KNOWN_BACKENDS = (*DEMO_BACKENDS, "cupy")
DEMO_PIPELINE = (
    arraypenalties.Pipeline(name="demo")
    .add("l1", "l1", weight=0.1)
    .add("l2", "l2", opts={"lam": 0.5})
    .add("elastic_net", "elastic_net", weight=0.5, opts={"l1_ratio": 0.5})
)
_FD_NOTE = (
    "finite differences: central differences in float64, 2n penalty evaluations per "
    "gradient; approximate (FiniteDifferenceWarning). torch and jax use exact autodiff."
)
_SUBGRADIENT_NOTE = (
    "|x| has no derivative at x = 0.0; backends pick their own subgradient there "
    "(torch and finite differences 0, jax 1), so l1 and elastic_net grad norms may differ."
)


def _gradient_method(backend: Backend) -> str:
    if not backend.has_gradients:
        return "n/a (values only)"
    return "autodiff" if backend.exact else "finite differences"


def _format_table(header: Sequence[str], rows: Sequence[Sequence[str]], align: str = "") -> str:
    """Aligned plain-text table; ``align`` has one ``"l"`` or ``"r"`` per column (default l)."""
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    align = align.ljust(len(header), "l")

    def line(cells: Sequence[str]) -> str:
        padded = (
            cell.rjust(width) if how == "r" else cell.ljust(width)
            for cell, width, how in zip(cells, widths, align, strict=True)
        )
        return "  ".join(padded).rstrip()

    rule = "  ".join("-" * width for width in widths)
    return "\n".join([line(header), rule, *(line(row) for row in rows)])


def _backend_row(name: str) -> list[str]:
    framework = FRAMEWORKS.get(name)
    if framework is None:  # registered by the user: no demo array to ask with
        return [name, "?", "?", "registered here (not a built-in framework)"]
    if framework.needs_gpu and framework.unavailable():
        return [name, "-", "-", "unusable: no GPU"]
    try:
        with framework.float64():
            backend = arraypenalties.get_backend(framework.array([0.0]))
    except Exception as exc:  # report, do not crash: `info` is a diagnostic
        return [name, "?", "?", f"error: {type(exc).__name__}: {exc}"]
    exact = "yes" if backend.exact else "no"
    gradients = "yes" if backend.has_gradients else "values only"
    return [name, exact, gradients, _gradient_method(backend)]


def run_info() -> int:
    """Print versions, devices and registered backends; return the exit status (0)."""
    print(f"arraypenalties {arraypenalties.__version__} (Python {sys.version.split()[0]})\n")
    rows = []
    for name, framework in FRAMEWORKS.items():
        version = framework.version()
        devices = framework.devices() if version is not None else ""
        rows.append([name, version or "not installed", devices])
    print(_format_table(["framework", "version", "devices"], rows) + "\n")
    header = ["backend", "exact autodiff", "gradients", "gradient method"]
    print(_format_table(header, [_backend_row(n) for n in arraypenalties.available_backends()]))
    return 0


def _shares(metrics: dict[str, Any]) -> dict[str, str]:
    """Each entry's share of ``Σ wᵢ·‖∇fᵢ‖``: which penalty pulls hardest."""
    pulls = {
        entry.name: entry.weight * metrics[f"{entry.name}_grad_norm"] for entry in DEMO_PIPELINE
    }
    whole = sum(pulls.values())
    return {name: f"{100 * pull / whole:.1f}%" if whole else "-" for name, pull in pulls.items()}


def _demo_rows(framework: str) -> list[list[str]]:
    with FRAMEWORKS[framework].float64():
        x = FRAMEWORKS[framework].array(DEMO_X)
        backend = arraypenalties.get_backend(x)
        _, metrics = DEMO_PIPELINE.compute(x, track_grad_norms=backend.has_gradients)
    method = _gradient_method(backend)
    shares = _shares(metrics) if backend.has_gradients else {}
    rows = []
    for entry in DEMO_PIPELINE:
        norm = metrics.get(f"{entry.name}_grad_norm")
        rows.append(
            [
                framework,
                entry.name,
                f"{metrics[entry.name]:.6f}",
                f"{metrics[f'{entry.name}_weighted']:.6f}",
                "-" if norm is None else f"{norm:.6f}",
                shares.get(entry.name, "-"),
                method,
            ]
        )
    total_norm = metrics.get("total_grad_norm")
    norm_cell = "-" if total_norm is None else f"{total_norm:.6f}"
    rows.append([framework, "total", "-", f"{metrics['total']:.6f}", norm_cell, "-", method])
    return rows


def _reemit_unexpected(caught: Sequence[warnings.WarningMessage]) -> bool:
    """Re-emit all but the finite-difference warnings; say whether there was one."""
    used_fd = False
    for w in caught:
        if issubclass(w.category, arraypenalties.FiniteDifferenceWarning):
            used_fd = True
        else:
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    return used_fd


def run_demo(backends: Sequence[str] | None = None) -> int:
    """Print the demo table for ``backends`` (default: every installed one).

    Parameters
    ----------
    backends : sequence of str, optional
        Subset of :data:`KNOWN_BACKENDS` (default: :data:`DEMO_BACKENDS`, plus cupy when a
        GPU is there); frameworks that cannot run here are skipped with the reason.

    Returns
    -------
    int
        0 on success; 1 when numpy is missing, a framework failed, or none of ``backends``
        can run.
    """
    if FRAMEWORKS["numpy"].unavailable():
        print("the demo needs numpy: pip install numpy", file=sys.stderr)
        return 1
    status, rows = 0, []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", arraypenalties.FiniteDifferenceWarning)
        for framework in backends or _default_backends():
            reason = _unavailable(framework)
            if reason:
                print(f"skipping {framework}: {reason}", file=sys.stderr)
                continue
            try:
                rows += _demo_rows(framework)
            except Exception as exc:  # one broken framework must not hide the others
                print(f"{framework} failed: {type(exc).__name__}: {exc}", file=sys.stderr)
                status = 1
    used_fd = _reemit_unexpected(caught)
    if not rows:
        asked = ", ".join(backends or _default_backends())
        print(f"nothing to show: none of the backends asked for can run ({asked})", file=sys.stderr)
        return 1
    print(f"x = {list(DEMO_X)} (float64)")
    print(f"{DEMO_PIPELINE!r}\n")
    print(
        "pipeline.compute(x, track_grad_norms=True): value, weighted value, norm of the\n"
        "penalty's (unweighted) gradient, and its share of the pull sum_i w_i * |grad f_i|;\n"
        "the total row has the weighted total and the norm of its gradient.\n"
    )
    header = ["backend", "penalty", "value", "weighted", "grad norm", "share", "gradient method"]
    print(_format_table(header, rows, align="llrrrrl"))
    print(f"\nnote: {_SUBGRADIENT_NOTE}")
    if used_fd:
        print(f"note: {_FD_NOTE}")
    return status


def _unavailable(framework: str) -> str:
    """Why ``framework`` cannot run the demo here, or ``""`` when it can."""
    return FRAMEWORKS[framework].unavailable()


def _default_backends() -> tuple[str, ...]:
    return DEMO_BACKENDS if _unavailable("cupy") else (*DEMO_BACKENDS, "cupy")


def _backend_list(text: str) -> tuple[str, ...]:
    """The comma-separated names, checked against :data:`KNOWN_BACKENDS`, duplicates dropped."""
    names = tuple(dict.fromkeys(name.strip() for name in text.split(",") if name.strip()))
    unknown = [name for name in names if name not in KNOWN_BACKENDS]
    if unknown or not names:
        msg = f"unknown backend(s) {unknown or [text]}; choose from {', '.join(KNOWN_BACKENDS)}"
        raise argparse.ArgumentTypeError(msg)
    return names


def build_parser() -> argparse.ArgumentParser:
    """The ``arraypenalties`` argument parser with its ``info`` and ``demo`` subcommands."""
    parser = argparse.ArgumentParser(
        prog="python -m arraypenalties",
        description="Regularisation penalties for any Array API array.",
    )
    parser.add_argument(
        "--version", action="version", version=f"arraypenalties {arraypenalties.__version__}"
    )
    commands = parser.add_subparsers(dest="command", metavar="{info,demo}")
    commands.add_parser("info", help="installed frameworks, devices and backends")
    demo = commands.add_parser(
        "demo", help="a pipeline's values and gradient-norm shares in each framework"
    )
    demo.add_argument(
        "--backends",
        type=_backend_list,
        default=None,
        metavar="NAMES",
        help=f"comma-separated subset of {','.join(KNOWN_BACKENDS)} (default: all installed)",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line and return its exit status.

    Parameters
    ----------
    argv : sequence of str, optional
        Arguments without the program name; ``sys.argv[1:]`` when omitted.

    Returns
    -------
    int
        0 on success (``--version`` and ``--help`` included), 1 on a runtime failure or when
        the reader of the output went away (a closed pipe), 2 on a usage error or no
        subcommand.
    """
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit_:  # --help (0) or a usage error (2): return, do not exit
        return exit_.code if isinstance(exit_.code, int) else 2 if exit_.code else 0
    if args.command is None:
        parser.print_help(sys.stderr)
        return 2
    try:
        status = run_info() if args.command == "info" else run_demo(args.backends)
        sys.stdout.flush()
    except BrokenPipeError:  # the reader went away (`info | head -3`): stop quietly
        _silence_stdout()
        return 1
    return status


def _silence_stdout() -> None:
    """Point stdout at devnull so the interpreter's final flush cannot raise again."""
    try:
        fileno = sys.stdout.fileno()
    except (AttributeError, OSError, ValueError):  # replaced by a non-file object
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, fileno)
    os.close(devnull)
