"""Keras 3 ``model.fit`` with our ``Regularizer`` versus ``keras.regularizers.L2``, per epoch.

    python benchmarks/bench_training_keras.py [--quick] [--json PATH] [--frameworks jax,torch]

An MLP (inputs 64, hidden 256 and 256, 10 classes; 4,096 samples, batch 128,
adam) whose two hidden kernels carry an L2 regularizer of weight 1e-4: ours,
``Regularizer("l2", weight=1e-4)``, against Keras's own
``keras.regularizers.L2(1e-4)`` (the same value, ``1e-4 · Σ w²``). One row per
Keras backend (``--frameworks`` names backends; default: jax and torch where
installed): the median time of one ``fit`` epoch, ours / Keras (target <= 1.05).
Keras reads its backend at import, so each backend is measured in a child
process of this script.

``--quick`` takes fewer repeats and fewer samples.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

try:
    from benchmarks._cli import build_parser, write_json
    from benchmarks._timing import compare
except ImportError:  # run as a script: the helpers sit next to this file
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from _cli import build_parser, write_json
    from _timing import compare

WEIGHT = 1e-4
FULL = {"repeats": 15, "min_time": 0.0, "warmup": 2, "samples": 4096}
QUICK = {"repeats": 2, "min_time": 0.0, "warmup": 1, "samples": 256}
BACKENDS = ("jax", "torch")


@dataclass(frozen=True)
class Row:
    framework: str
    case: str
    ours_us: float
    native_us: float
    ratio: float
    target: str


def _model(regularizer: Any) -> Any:
    import keras

    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [
            keras.Input((64,)),
            keras.layers.Dense(256, activation="relu", kernel_regularizer=regularizer),
            keras.layers.Dense(256, activation="relu", kernel_regularizer=regularizer),
            keras.layers.Dense(10),
        ]
    )
    model.compile(
        optimizer="adam", loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    )
    return model


def measure(backend: str, quick: bool, torch_threads: int) -> Row:
    """One backend, in this process (``KERAS_BACKEND`` must already be ``backend``)."""
    if backend == "torch" and torch_threads:
        import torch

        torch.set_num_threads(torch_threads)
    import keras

    from arraypenalties.integrations.keras import Regularizer

    assert keras.backend.backend() == backend, (keras.backend.backend(), backend)
    settings = dict(QUICK if quick else FULL)
    samples = settings.pop("samples")
    rng = np.random.default_rng(0)
    x = rng.normal(size=(samples, 64)).astype("float32")
    y = rng.integers(0, 10, size=samples)
    ours = _model(Regularizer("l2", weight=WEIGHT))
    theirs = _model(keras.regularizers.L2(WEIGHT))
    ours_terms = [float(keras.ops.convert_to_numpy(v)) for v in ours.losses]
    theirs_terms = [float(keras.ops.convert_to_numpy(v)) for v in theirs.losses]
    np.testing.assert_allclose(ours_terms, theirs_terms, rtol=1e-6)  # same values, same seed

    def epoch(model: Any) -> Any:
        return model.fit(x, y, batch_size=128, epochs=1, verbose=0, shuffle=False)

    ours_t, theirs_t = compare(lambda: epoch(ours), lambda: epoch(theirs), **settings)
    return Row(
        f"keras/{backend}",
        f"fit epoch ({samples} samples, batch 128)",
        ours_t.median * 1e6,
        theirs_t.median * 1e6,
        ours_t.median / theirs_t.median,
        "<= 1.05",
    )


def run(
    *, quick: bool = False, frameworks: tuple[str, ...] | None = None, torch_threads: int = 1
) -> list[Row]:
    """Every Keras backend asked for (and installed), each in a child process."""
    rows = []
    for backend in frameworks or BACKENDS:
        if importlib.util.find_spec("keras") is None or importlib.util.find_spec(backend) is None:
            print(f"note: keras or {backend} is not installed; the keras/{backend} row is skipped")
            continue
        command = [sys.executable, os.path.abspath(__file__), "--child", backend]
        command += ["--torch-threads", str(torch_threads)]
        result = subprocess.run(
            command + (["--quick"] if quick else []),
            env={**os.environ, "KERAS_BACKEND": backend},
            capture_output=True,
            text=True,
            check=True,
        )
        rows.append(Row(**json.loads(result.stdout.strip().splitlines()[-1])))
    return rows


def format_table(rows: list[Row]) -> str:
    lines = [
        f"MLP 64-256-256-10, L2 {WEIGHT:g} on both hidden kernels, adam",
        "",
        "| Keras backend | case | ours (µs) | keras.regularizers.L2 (µs) | ratio | target |",
        "|---|---|---:|---:|---:|---|",
    ]
    lines += [
        f"| {r.framework} | {r.case} | {r.ours_us:,.0f} | {r.native_us:,.0f} | "
        f"{r.ratio:.3f} | {r.target} |"
        for r in rows
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser(__doc__, "fewer repeats, fewer samples")
    parser.add_argument("--child", help=f"measure one Keras backend here ({BACKENDS})")
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(asdict(measure(args.child, args.quick, args.torch_threads))))
        return 0
    rows = run(quick=args.quick, frameworks=args.frameworks, torch_threads=args.torch_threads)
    print(format_table(rows))
    if args.json:
        write_json(args.json, {"quick": args.quick, "results": [asdict(row) for row in rows]})
    return 0


if __name__ == "__main__":
    sys.exit(main())
