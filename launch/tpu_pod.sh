#!/usr/bin/env bash
# Starts the same training job on every worker of a Cloud TPU VM pod slice.
#
#   launch/tpu_pod.sh <tpu-name> <zone> <config> <workdir> [extra flags...]
#   e.g. launch/tpu_pod.sh my-v5e-64 us-west4-a configs/1b.py gs://bucket/runs/1b --config.mesh.fsdp=-1 --config.mesh.data=1
#
# Every worker runs `python -m launch.train --distributed`: jax.distributed.initialize() detects the
# coordinator and process ids from the TPU metadata. The workdir must be shared storage (a GCS bucket);
# each process reads its own shard of the data stream. The repository is assumed cloned at ~/nexus on
# every worker with `pip install -e .` done (the first command below does both).
set -euo pipefail
if [ "$#" -lt 4 ]; then
  echo "usage: $0 <tpu-name> <zone> <config> <workdir> [extra flags...]" >&2
  exit 2
fi
TPU_NAME=$1; ZONE=$2; CONFIG=$3; WORKDIR=$4; shift 4
EXTRA="$*"
REPO_URL=${NEXUS_REPO_URL:-$(git config --get remote.origin.url)}

gcloud compute tpus tpu-vm ssh "$TPU_NAME" --zone "$ZONE" --worker=all --command "
  set -e
  [ -d ~/nexus ] || git clone $REPO_URL ~/nexus
  cd ~/nexus && python3 -m pip install -q -e . 'jax[tpu]'
  python3 -m launch.train --distributed --config=$CONFIG --workdir=$WORKDIR $EXTRA
"
