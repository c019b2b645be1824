#!/usr/bin/env bash
# Copies this checkout to every worker and installs it with JAX's TPU build.
set -euo pipefail
. "$(dirname "$0")/common.sh"
root=$(cd "$(dirname "$0")/.." && pwd)
tar -C "$root" --exclude=.git --exclude=.venv --exclude=workdirs -czf /tmp/pretrainx.tgz .
gcloud compute tpus tpu-vm scp /tmp/pretrainx.tgz "$TPU_NAME":/tmp/ --zone="$ZONE" $PROJECT_FLAG --worker=all
on_all_workers "mkdir -p $REPO_DIR && tar -xzf /tmp/pretrainx.tgz -C $REPO_DIR && cd $REPO_DIR && \
  python3 -m venv .venv && . .venv/bin/activate && pip install -q -e . && pip install -q -U 'jax[tpu]'"
