#!/usr/bin/env bash
# Issue 10's study at the CPU scale: tuned AdamW vs tuned Nexus, compared at the same validation loss
# between annealed end points, paired over 5 seeds. Four stages; each is one command, resumable and
# safe to rerun (a finished run is skipped, an interrupted one resumes from its checkpoint):
#
#   bash launch/study_tiny.sh sweep      # equal-budget tuning, 2 methods x 6 settings x 500 steps
#   bash launch/study_tiny.sh stable     # 5 seeds x 2 methods: 1000-step wsd runs, end measured
#   bash launch/study_tiny.sh branches   # cooldown branches from steps 400 and 600 (ends 500, 750)
#   bash launch/study_tiny.sh report     # launch.compare: end points at the same validation loss
#   bash launch/study_tiny.sh            # all four in order
#
# OUT (default runs/study) holds the runs; JOBS (default 2) runs at once, one CPU thread each;
# PYTHON (default python3; `make study` passes the project's virtualenv) runs the launchers.
# Wall times on the 2-core development machine are in docs/study.md.
#
# The same protocol at other sizes (launch/study_gpu.sh sets these; unset: the sizes above):
# SPEC, the sweep spec; SWEEP_FLAGS, more launch.sweep flags; SEEDS, the stable runs' seeds;
# STABLE_OVERRIDES, their config overrides (FIELD=VALUE ...); BRANCH_STEPS, the steps branched from;
# EVALUATE_FLAGS, the launch.evaluate flags of every end point.
set -euo pipefail

stage="${1:-all}"
out="${OUT:-runs/study}"
jobs="${JOBS:-2}"
python="${PYTHON:-python3}"
spec="${SPEC:-launch/sweeps/study.json}"
read -ra sweep_flags <<<"${SWEEP_FLAGS:-}"
seeds="${SEEDS:-0,1,2,3,4}"
stable_overrides="${STABLE_OVERRIDES:-train.steps=1000 checkpoint.every=200 checkpoint.keep=6}"
read -ra stable_overrides <<<"$stable_overrides"
branch_steps="${BRANCH_STEPS:-400,600}"
# The same measurements at every end point: 500 problems per math family teacher-forced, exact match
# of greedy generation on the first 32, closeness by at most 50 SGD steps per source.
read -ra evaluate <<<"${EVALUATE_FLAGS:---exact_match_problems=32 --closeness_max_steps=50}"
evaluate=("${evaluate[@]/#/--evaluate_flag=}")

sweep() {
  "$python" -m launch.sweep --spec="$spec" --out="$out/sweep" --jobs="$jobs" "${sweep_flags[@]}"
}

stable() {
  "$python" -m launch.reproduce --sweep="$out/sweep/sweep.json" --out="$out/stable" \
    --seeds="$seeds" "${stable_overrides[@]/#/--override=}" --jobs="$jobs" "${evaluate[@]}"
}

branches() {
  "$python" -m launch.branches --stable="$out/stable" --branch_steps="$branch_steps" \
    --cooldown_fraction=0.2 --out="$out/branches" --jobs="$jobs" "${evaluate[@]}"
}

report() {
  "$python" -m launch.compare "$out/stable" --endpoints="$out/branches,$out/stable" \
    --endpoint_levels=3 --loss_key=eval/loss_macro --baseline=adamw \
    --sweep="$out/sweep/sweep.json" --out="$out/report"
}

case "$stage" in
  sweep | stable | branches | report) "$stage" ;;
  all) sweep && stable && branches && report ;;
  *) echo "error: unknown stage '$stage'; pass sweep, stable, branches, report or nothing." >&2; exit 2 ;;
esac
