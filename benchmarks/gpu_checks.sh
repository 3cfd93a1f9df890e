#!/usr/bin/env bash
# The GPU checks in one command, for a machine with a CUDA GPU (CI has none and never
# runs this): the GPU tests and the divergence suites (jax and cupy on the GPU), then
# benchmarks/bench_divergences_gpu.py. Results go to $OUT (default /tmp/gpu-checks).
# Python packages missing there can be given as wheels in .whl/ (installed to /tmp/site).
set -uo pipefail
OUT=${OUT:-/tmp/gpu-checks}
mkdir -p "$OUT"
if compgen -G ".whl/*.whl" >/dev/null; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
        --target /tmp/site .whl/*.whl || exit 1
    export PYTHONPATH=/tmp/site
fi
export PYTHONPATH="src:${PYTHONPATH:-}" PYTHONUNBUFFERED=1
export XLA_PYTHON_CLIENT_PREALLOCATE=false  # jax and torch (and test workers) share the GPU
nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.sm,clocks.mem --format=csv \
    | tee "$OUT/gpu.txt"
python3 -c "import torch, jax, cupy, numpy; print('torch', torch.__version__, torch.cuda.is_available(), '| jax', jax.__version__, jax.devices(), '| cupy', cupy.__version__, '| numpy', numpy.__version__)" \
    | tee -a "$OUT/gpu.txt"
timeout "${TEST_TIMEOUT:-240}" python3 -m pytest tests/test_gpu.py tests/test_divergences_scale.py \
    tests/test_divergences_logits.py tests/test_divergences.py -q -p no:cacheprovider \
    -p no:benchmark -n "${WORKERS:-8}" -rs >"$OUT/tests.txt" 2>&1
echo "tests: exit $?"
grep -E "passed|failed|error" "$OUT/tests.txt" | tail -3
grep -E "^(FAILED|ERROR)" "$OUT/tests.txt" | head -20
timeout "${BENCH_TIMEOUT:-300}" python3 benchmarks/bench_divergences_gpu.py \
    --json "$OUT/bench_gpu.json" >"$OUT/bench_gpu.txt" 2>&1
echo "bench: exit $?"
cat "$OUT/bench_gpu.txt"
