#!/usr/bin/env bash
# The speaker task, 3 seeds per arm (experiments/text_objectives.md): one parent pretrained on the
# play without the held-out speeches, then the fine-tuned and the from-scratch classifier with
# seeds 0, 1, 2 (the split is fixed: split seed 0), then the baselines and the table.
#   PARENT=workdirs/bert_char128_p3k bash experiments/speakers_3seeds.sh
#   OUT=workdirs/speakers_mean EXTRA=--config.classify.pooling=mean bash experiments/speakers_3seeds.sh
set -euo pipefail
PY=${PY:-python}
PARENT=${PARENT:-workdirs/bert_char128_p3k}
OUT=${OUT:-workdirs/speakers}
EXTRA=${EXTRA:-}             # more overrides for both arms
BASELINES=${BASELINES:-}     # --no-baselines: the table of the runs only
if [ ! -d "$PARENT/checkpoints" ]; then
  $PY -m pretrainx.main train --config configs/bert/bert_base.py:smoke --workdir "$PARENT" \
    --config.data.kind=speeches_text --config.data.seq_len=128 --config.model.max_len=128 \
    --config.train.steps=3000 --config.optimizer.decay_steps=3000 --config.eval.every=500 \
    --config.checkpoint.every=500 --config.train.progress=False --config.train.log_every=100
fi
for seed in 0 1 2; do
  $PY -m pretrainx.main train --config configs/finetune/speakers_bert.py --workdir "$OUT/finetuned_seed$seed" \
    --config.seed=$seed --config.init_from.workdir="$PARENT" --config.data.tokenizer="$PARENT" \
    --config.train.progress=False $EXTRA
  $PY -m pretrainx.main train --config configs/finetune/speakers_bert.py --workdir "$OUT/scratch_seed$seed" \
    --config.seed=$seed --config.data.tokenizer="$PARENT" --config.train.progress=False $EXTRA
done
PYTHONPATH=. $PY experiments/finetune_speakers.py ${BASELINES:-} "$OUT"/finetuned_seed* "$OUT"/scratch_seed*
