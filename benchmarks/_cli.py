"""What the benchmark scripts share: the command line, the framework loop, the report.

Every script takes ``--quick``, ``--json PATH``, ``--frameworks`` (comma list) and
``--torch-threads``, and has a ``run(quick=, frameworks=, torch_threads=)`` that
returns dataclass rows. :func:`bench_main` parses the command line, times ``run``,
prints the environment, the markdown table and a footer, and writes the JSON
``{"quick", "wall_s", "environment", "results"}``.

The rows of ``ours`` versus ``native`` benchmarks on a size are :class:`Result`
(made from a :class:`Case` by :func:`timed`), shown by :func:`format_table`.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any, TypeVar

import arraypenalties

try:
    from benchmarks._timing import compare
except ImportError:  # a script, or loaded from its path: _timing.py sits next to this file
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from _timing import compare

__all__ = [
    "Case",
    "Result",
    "bench_main",
    "build_parser",
    "environment",
    "format_table",
    "installed_frameworks",
    "target_table",
    "timed",
    "us",
    "write_json",
]

FRAMEWORK_MODULES = ("numpy", "torch", "jax")

T = TypeVar("T")


@dataclass(frozen=True)
class Case:
    """Two zero-argument callables doing the same math: ours and the native code."""

    framework: str
    mode: str
    case: str
    size: int
    ours: Callable[[], Any]
    native: Callable[[], Any]
    sync: Callable[[Any], Any] | None = None


@dataclass(frozen=True)
class Result:
    framework: str
    mode: str
    case: str
    size: int
    ours_us: float  # medians
    native_us: float
    ratio: float
    ours_min_us: float
    native_min_us: float


def timed(case: Any, settings: Mapping[str, Any]) -> dict[str, float]:
    """Time ``case.ours`` against ``case.native``: the timing fields of a result row."""
    ours, native = compare(case.ours, case.native, sync=case.sync, **settings)
    return {
        "ours_us": ours.median * 1e6,
        "native_us": native.median * 1e6,
        "ratio": ours.median / native.median,
        "ours_min_us": ours.minimum * 1e6,
        "native_min_us": native.minimum * 1e6,
    }


def installed_frameworks(
    factories: Mapping[str, T],
    frameworks: tuple[str, ...] | None,
    torch_threads: int,
    requires: Mapping[str, Sequence[str]] | None = None,
) -> Iterator[tuple[str, T]]:
    """``(name, factory)`` for every framework asked for (all, or ``frameworks``) and installed.

    A framework that is not installed (or, with ``requires``, one of whose modules is
    not) is skipped with a note. Before torch runs, its intra-op threads are set to
    ``torch_threads`` (0 keeps torch's default): one by default, since on a small
    shared machine OpenMP's parallel regions stall whenever another process holds a
    core, adding millisecond outliers to both sides.
    """
    for name, factory in factories.items():
        if frameworks is not None and name not in frameworks:
            continue
        if requires is None:
            if importlib.util.find_spec(name) is None:
                print(f"note: {name} is not installed; its cases are skipped")
                continue
        else:
            missing = [m for m in requires[name] if importlib.util.find_spec(m) is None]
            if missing:
                print(f"note: {', '.join(missing)} not installed; the {name} cases are skipped")
                continue
        if name == "torch" and torch_threads:
            import torch

            torch.set_num_threads(torch_threads)
        yield name, factory


def environment(extra_modules: Sequence[str] = ()) -> dict[str, Any]:
    """Python, platform and the versions of the frameworks (and ``extra_modules``) loaded."""
    info: dict[str, Any] = {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "arraypenalties": arraypenalties.__version__,
    }
    for name in FRAMEWORK_MODULES:
        module = sys.modules.get(name)
        if module is not None:
            info[name] = module.__version__
    torch = sys.modules.get("torch")
    if torch is not None:
        info["torch_threads"] = torch.get_num_threads()
    for name in extra_modules:
        module = sys.modules.get(name)
        if module is not None:
            info[name] = module.__version__
    return info


def us(value: float, *, grouping: bool = False) -> str:
    """Microseconds to show: 2 decimals below 10, 1 below 100, none above (``grouping``: 1,234)."""
    if value < 10:
        return f"{value:.2f}"
    if value < 100:
        return f"{value:.1f}"
    return f"{value:,.0f}" if grouping else f"{value:.0f}"


def format_table(results: list[Result], *, size_label: str = "size") -> str:
    """The results as a markdown table; ``size_label`` names the size column."""
    lines = [
        f"| framework | mode | case | {size_label} | ours µs | native µs | ratio |",
        "|---|---|---|---:|---:|---:|---:|",
    ]
    lines += [
        f"| {r.framework} | {r.mode} | {r.case} | {r.size:,} | {us(r.ours_us)} "
        f"| {us(r.native_us)} | {r.ratio:.2f} |"
        for r in results
    ]
    return "\n".join(lines)


def target_table(title: str, rows: Sequence[Any], *, digits: int = 2, extra: str = "") -> str:
    """Rows measured against a reference with a target (``framework``, ``case``, ``ours_us``,
    ``reference_us``, ``ratio``, ``target``) as a markdown table under ``title``; ``extra``
    names one more column, read from the row attribute ``compilations``."""
    extra_head, extra_rule = (f" {extra} |", "---|") if extra else ("", "")
    lines = [
        title,
        "",
        f"| framework | case | ours (µs) | reference (µs) | ratio | target |{extra_head}",
        f"|---|---|---:|---:|---:|---|{extra_rule}",
    ]
    for r in rows:
        tail = f" {r.compilations} |" if extra else ""
        lines.append(
            f"| {r.framework} | {r.case} | {r.ours_us:,.0f} | {r.reference_us:,.0f} | "
            f"{r.ratio:.{digits}f} | {r.target} |{tail}"
        )
    return "\n".join(lines)


def _framework_list(text: str) -> tuple[str, ...] | None:
    return tuple(text.split(",")) if text else None


def build_parser(description: str, quick_help: str) -> argparse.ArgumentParser:
    """The common options; ``args.frameworks`` is a tuple of names or ``None`` (all)."""
    parser = argparse.ArgumentParser(description=description.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help=quick_help)
    parser.add_argument("--json", metavar="PATH", help="also write the results as JSON")
    parser.add_argument(
        "--frameworks", type=_framework_list, help="comma list, default: every installed one"
    )
    parser.add_argument(
        "--torch-threads", type=int, default=1, help="torch intra-op threads; 0: torch's default"
    )
    return parser


def write_json(path: str, payload: dict[str, Any]) -> None:
    with open(path, "w", encoding="utf-8") as file:
        json.dump(payload, file, indent=2)


def bench_main(
    doc: str,
    run: Callable[..., list[Any]],
    format_table: Callable[[list[Any]], str],
    argv: list[str] | None = None,
    *,
    quick_help: str = "fewer, shorter repeats (smoke run)",
    extra_modules: Sequence[str] = (),
    footer: str = "median per-call times; ratio = ours / native",
) -> int:
    """Parse ``argv``, time ``run``, print the environment, table and ``footer``
    (what the numbers are); maybe JSON."""
    args = build_parser(doc, quick_help).parse_args(argv)
    start = time.perf_counter()
    results = run(quick=args.quick, frameworks=args.frameworks, torch_threads=args.torch_threads)
    wall = time.perf_counter() - start
    env = environment(extra_modules)
    print(", ".join(f"{key} {value}" for key, value in env.items()))
    print()
    print(format_table(results))
    print()
    print(f"{footer}; {'quick' if args.quick else 'full'} run")
    print(f"took {wall:.1f} s")
    if args.json:
        write_json(
            args.json,
            {
                "quick": args.quick,
                "wall_s": wall,
                "environment": env,
                "results": [asdict(result) for result in results],
            },
        )
    return 0
