#!/usr/bin/env bash
set -euo pipefail
. "$(dirname "$0")/common.sh"
: "${ACCELERATOR:?set ACCELERATOR, e.g. v4-32}"
gcloud compute tpus tpu-vm create "$TPU_NAME" --zone="$ZONE" $PROJECT_FLAG \
  --accelerator-type="$ACCELERATOR" --version="${RUNTIME:-tpu-ubuntu2204-base}"
