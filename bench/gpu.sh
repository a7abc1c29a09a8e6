#!/usr/bin/env bash
# GPU benchmark (bench/gpu.py) on a stock JAX GPU image: needs python3 with jax[cuda], flax, optax and
# numpy; writes $OUT/gpu_bench.json and $OUT/gpu_bench.txt (OUT defaults to ./bench_out).
#   bash bench/gpu.sh [--dry_run] [--budget_s 420]
set -euo pipefail
cd "$(dirname "$0")/.."
export OUT="${OUT:-$PWD/bench_out}"
export XLA_PYTHON_CLIENT_MEM_FRACTION="${XLA_PYTHON_CLIENT_MEM_FRACTION:-0.95}"
PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" exec "${PYTHON:-python3}" -m bench.gpu "$@"
