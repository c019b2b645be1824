#!/usr/bin/env bash
# launch.sh CONFIG WORKDIR [--config.KEY=VALUE ...]: the same command on every worker.
set -euo pipefail
. "$(dirname "$0")/common.sh"
config=$1; workdir=$2; shift 2
on_all_workers "cd $REPO_DIR && . .venv/bin/activate && \
  nohup pretrainx train --distributed --config $config --workdir $workdir $* > train.log 2>&1 &"
echo "launched; follow with: gcloud compute tpus tpu-vm ssh $TPU_NAME --zone=$ZONE --worker=0 --command='tail -f $REPO_DIR/train.log'"
