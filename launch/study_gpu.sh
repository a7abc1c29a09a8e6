#!/usr/bin/env bash
# Issue 10's study on one GPU: the protocol of launch/study_tiny.sh (equal-budget sweep selected on
# validation, 5 paired seeds of wsd runs, cooldown branches, end points compared at the same
# validation loss) with a 27.4M-parameter model (configs/study_gpu.py: 8 blocks of width 512, bf16,
# 256-token rows, 8,192 tokens per outer step) on the same built-in corpus and sources. It runs
# launch/study_tiny.sh's stages with these sizes:
#
#   sweep     launch/sweeps/study_gpu.json: AdamW lr x final-lr fraction, Nexus lr x gamma, 3 x 2
#             each, 200-step wsd runs, up to 2 bracketing extensions per method
#   stable    5 seeds x 2 methods: 400-step wsd runs, checkpoints every 80 steps, each end measured
#   branches  cooldown branches from steps 160 and 240 (ends 200 and 300), each measured
#   report    launch.compare, as in the tiny study
#
#   bash launch/study_gpu.sh [STAGE ...]            # the four stages in order, or those named
#   bash launch/study_gpu.sh setup                  # only the setup every run starts with: wheels,
#                                                   # checks, the corpus (e.g. before a timed run)
#   bash launch/study_gpu.sh --dry_run [STAGE ...]  # the same on a CPU, tiny shapes (or DRY_RUN=1)
#
# For a stock JAX GPU image (Python 3.12 with jax, flax, optax, orbax, absl): when the study's other
# imports are missing, the wheels in WHEELS (default .whl, made by `bash launch/gpu_wheels.sh` where
# pip can download) are installed into WHEELS_TARGET (default /tmp/nexus_site), put on PYTHONPATH.
# OUT (default runs/study_gpu) holds the runs and wall_times.txt; PYTHON (default python3) runs the
# launchers. JOBS runs share the GPU at once (default 20, or one per 5.6 GiB of a smaller GPU, or 12
# when nvidia-smi cannot tell), each allocating on demand up to 0.9/JOBS of the GPU's memory; they
# share a persistent compilation cache.
#
# NEVER RUN ON A GPU YET: its wall time is an estimate, and nothing below was measured on a GPU.
# Estimate on one H200: about 11.5 minutes, 10 to 16 within the ranges assumed:
#   - a training step (8,192 tokens x 177 MFLOP = 1.45 TFLOP) takes 15 ms (10 to 25 ms), ~10% of the
#     bf16 peak for a model this small, bound by kernel launches; an in-training evaluation 0.3 s; a
#     launch.evaluate measurement 6 s of GPU work (4 to 10 s: closeness up to 200 SGD steps, 7 x 500
#     teacher-forced problems, greedy generation of 7 x 32 problems);
#   - a process takes 17 s to start (imports, CUDA, corpus) and 50 s to compile its training and
#     evaluation programs: every sweep setting and every (method, branch step) compiles its own
#     training step (learning rates are constants in it), while programs compiled before load from
#     the cache in ~3 s; launch.evaluate's programs take 40 s the first time, 5 s after;
#   - the GPU is time-sliced between the processes (their GPU work adds up) while their start-up and
#     compiles overlap on the host's cores. Memory: the training step compiled for CPU takes
#     1.95 GiB (memory_analysis), within the 6.3 GiB each of 20 processes may take on an H200.
# Stage by stage: setup 60 s (wheels 10, checks 10, the corpus for Python 3.12 40); sweep 110 s (12
# runs at once: 17 + 50 + 12 x 200 steps x 15 ms + 24 evaluations), then 55 s per round of
# extensions (0 to 2 rounds, both methods' at once); stable 240 s (10 runs: 17 + 33 + 4,000 steps +
# 40 evaluations, then their measurements: 17 + 40 + 10 x 6); branches 215 s (20 runs: 17 + 33 +
# 1,000 steps + 30 evaluations, then their measurements: 17 + 5 + 20 x 6); report 15 s. An 80 GB
# H100 runs 14 jobs at once, so the branches take two rounds there (about a minute more). The first
# GPU run's $OUT/wall_times.txt replaces these figures. A study stopped or overrun resumes when the
# same command runs again; under a limit per command, run `sweep stable`, then `branches report`.
set -euo pipefail
cd "$(dirname "$0")/.."

dry_run="${DRY_RUN:-0}"
stages=()
setup_only=0
for arg in "$@"; do
  case "$arg" in
    --dry_run) dry_run=1 ;;
    sweep | stable | branches | report) stages+=("$arg") ;;
    setup) setup_only=1 ;;
    *)
      echo "error: unknown argument '$arg'; pass --dry_run and/or stages" \
        "(sweep, stable, branches, report), or setup." >&2
      exit 2
      ;;
  esac
done
if ((setup_only)); then
  stages=()
elif ((${#stages[@]} == 0)); then
  stages=(sweep stable branches report)
fi

python="${PYTHON:-python3}"
wheels="${WHEELS:-.whl}"
pythonpath="${PYTHONPATH:-}"
export PYTHON="$python" SPEC=launch/sweeps/study_gpu.json
export PYTHONPATH="$PWD${pythonpath:+:$pythonpath}"

if [[ "$dry_run" == 1 ]]; then
  # The smallest sizes that still make every kind of run: one setting per method, 2 seeds, 12-step
  # stable runs, one branch point, a few problems per measurement.
  variant=dry_run
  export OUT="${OUT:-runs/study_gpu_dry_run}" JOBS="${JOBS:-2}"
  export JAX_PLATFORMS="${JAX_PLATFORMS:-cpu}"
  sweep_flags=(
    --config=configs/study_gpu.py:dry_run --override=train.steps=6 --max_extensions=0
    --grid=adamw:opt.learning_rate=0.003 --grid=adamw:opt.final_lr_fraction=0.0
    --grid=nexus:opt.learning_rate=0.003 --grid=nexus:opt.inner_learning_rate=0.1
  )
  evaluate_flags=(
    --downstream_problems=4 --exact_match_problems=2 --max_new_tokens=4 --closeness_max_steps=3
    --closeness_batches=1
  )
  export SWEEP_FLAGS="${sweep_flags[*]}" EVALUATE_FLAGS="${evaluate_flags[*]}" SEEDS=0,1
  export STABLE_OVERRIDES="train.steps=12 checkpoint.every=6 checkpoint.keep=6" BRANCH_STEPS=6
else
  variant=""
  # The GPU, or an error if it cannot start (the CPU stays available to the libraries that use it).
  export OUT="${OUT:-runs/study_gpu}" JAX_PLATFORMS="${JAX_PLATFORMS:-cuda,cpu}"
  if [[ -z "${JOBS:-}" ]]; then
    mib="$(nvidia-smi --query-gpu=memory.total --format=csv,noheader,nounits 2>/dev/null |
      head -1 || true)"
    JOBS="$(awk -v mib="${mib:-0}" 'BEGIN {
      j = int(mib / 1024 * 0.9 / 5); print (j < 1 ? 12 : (j > 20 ? 20 : j)) }')"
  fi
  fraction="$(awk -v j="$JOBS" 'BEGIN { printf "%.3f", 0.9 / j }')"
  export JOBS XLA_PYTHON_CLIENT_PREALLOCATE=false
  export XLA_PYTHON_CLIENT_MEM_FRACTION="${XLA_PYTHON_CLIENT_MEM_FRACTION:-$fraction}"
  export SWEEP_FLAGS="" SEEDS=0,1,2,3,4 BRANCH_STEPS=160,240
  export STABLE_OVERRIDES="train.steps=400 checkpoint.every=80 checkpoint.keep=6"
  unset EVALUATE_FLAGS # the tiny study's measurements
fi

missing="$("$python" -m launch.study_gpu_setup missing)"
if [[ -n "$missing" ]]; then
  if ! compgen -G "$wheels/*.whl" >/dev/null; then
    echo "error: $python cannot import $missing and $wheels holds no wheels; run" \
      "'bash launch/gpu_wheels.sh' where pip can download, and bring its $wheels folder along" \
      "(or set WHEELS)." >&2
    exit 1
  fi
  target="${WHEELS_TARGET:-/tmp/nexus_site}"
  echo "[study_gpu] $python lacks $missing: installing the wheels of $wheels into $target"
  "$python" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target "$target" "$wheels"/*.whl
  export PYTHONPATH="$PWD:$target${pythonpath:+:$pythonpath}"
  missing="$("$python" -m launch.study_gpu_setup missing)"
  if [[ -n "$missing" ]]; then
    echo "error: $python still cannot import $missing from $wheels; rerun launch/gpu_wheels.sh." >&2
    exit 1
  fi
fi
corpus_bytes="$("$python" -m launch.study_gpu_setup check "$variant" | tail -1)"

mkdir -p "$OUT"
echo "[study_gpu] $(date -u +%FT%TZ) ${stages[*]} in $OUT: JOBS=$JOBS, on $JAX_PLATFORMS" |
  tee -a "$OUT/wall_times.txt"
# Built once per machine and Python (then cached), before the sweep's runs all build it at once.
"$python" -m launch.build_corpus --bytes_per_source="$corpus_bytes"
echo "[study_gpu] setup: $SECONDS s" | tee -a "$OUT/wall_times.txt" # since the script started
for stage in "${stages[@]}"; do
  start=$SECONDS
  bash launch/study_tiny.sh "$stage"
  echo "[study_gpu] $stage: $((SECONDS - start)) s" | tee -a "$OUT/wall_times.txt"
done
