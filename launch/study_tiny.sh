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
set -euo pipefail

stage="${1:-all}"
out="${OUT:-runs/study}"
jobs="${JOBS:-2}"
python="${PYTHON:-python3}"
# The same measurements at every end point: 500 problems per math family teacher-forced, exact match
# of greedy generation on the first 32, closeness by at most 50 SGD steps per source.
evaluate=(--evaluate_flag=--exact_match_problems=32 --evaluate_flag=--closeness_max_steps=50)

sweep() {
  "$python" -m launch.sweep --spec=launch/sweeps/study.json --out="$out/sweep" --jobs="$jobs"
}

stable() {
  "$python" -m launch.reproduce --sweep="$out/sweep/sweep.json" --out="$out/stable" \
    --seeds=0,1,2,3,4 --override=train.steps=1000 --override=checkpoint.every=200 \
    --override=checkpoint.keep=6 --jobs="$jobs" "${evaluate[@]}"
}

branches() {
  "$python" -m launch.branches --stable="$out/stable" --branch_steps=400,600 \
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
