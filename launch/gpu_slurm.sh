#!/usr/bin/env bash
# Starts the training job on a GPU cluster with SLURM: one process per node, all of its GPUs.
#
#   sbatch --nodes=4 --gpus-per-node=8 launch/gpu_slurm.sh configs/1b.py /shared/runs/1b [extra flags...]
#
# jax.distributed.initialize() (via --distributed) reads the SLURM environment (coordinator = the first
# node, process id = SLURM_PROCID). The workdir must be on a filesystem every node sees.
#SBATCH --job-name=nexus
#SBATCH --ntasks-per-node=1
#SBATCH --exclusive
set -euo pipefail
CONFIG=${1:?usage: sbatch launch/gpu_slurm.sh <config> <workdir> [extra flags...]}
WORKDIR=${2:?usage: sbatch launch/gpu_slurm.sh <config> <workdir> [extra flags...]}
shift 2
cd "${SLURM_SUBMIT_DIR:-$(dirname "$0")/..}"
srun python3 -m launch.train --distributed --config="$CONFIG" --workdir="$WORKDIR" "$@"
