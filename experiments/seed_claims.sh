#!/usr/bin/env bash
# Issue 14's two claims of the seeds, 3 seeds per arm, on CPU-sized models
# (experiments/text_objectives.md, "Two claims of the seeds"). One training process at a time.
#   bash experiments/seed_claims.sh            # both claims, then the tables
#   CLAIMS=1 bash experiments/seed_claims.sh   # only claim 1 (masking-rate schedule)
#   CLAIMS=2 bash experiments/seed_claims.sh   # only claim 2 (hybrid vs pure objectives)
#   CLAIMS=2mlm bash experiments/seed_claims.sh # claim 2's runs again (the same training), every
#       validation row masked: val/mlm_loss
#   CLAIMS=1ft bash experiments/seed_claims.sh # claim 1 downstream: both arms pretrained again on
#       the play without the held-out speeches (length 128), then the speaker fine-tune
# A workdir that already holds a finished run (its last checkpoint) is not trained again.
set -euo pipefail
PY=${PY:-python}
OUT=${OUT:-workdirs/seed_claims}
CLAIMS=${CLAIMS:-"1 2 2mlm 1ft"}
SEEDS=${SEEDS:-"0 1 2"}
train() {  # workdir, config, then overrides
  local wd=$1 cfg=$2; shift 2
  if [ -f "$wd/metrics.jsonl" ] && grep -q '"step": '"$STEPS"', "val/' "$wd/metrics.jsonl"; then
    return 0
  fi
  rm -rf "$wd"
  PYTHONPATH=. $PY -m pretrainx.main train --workdir "$wd" --config "$cfg" \
    --config.train.progress=False --config.eval.every=$EVERY "$@"
}
for claim in $CLAIMS; do
  if [ "$claim" = 1 ]; then
    # The :smoke BERT (2 layers, 64 wide, chars, 300 steps of 32 x 64), constant 15 % masking
    # against a linear 30 % -> 15 % schedule; validation always masks 15 % (mlm.eval_rate).
    STEPS=300 EVERY=25
    for seed in $SEEDS; do
      train "$OUT/c1/constant_seed$seed" configs/bert/bert_base.py:smoke \
        --config.seed=$seed --config.checkpoint.every=300
      train "$OUT/c1/linear30_seed$seed" configs/bert/bert_base.py:smoke \
        --config.seed=$seed --config.checkpoint.every=300 \
        --config.mlm.rate_schedule=linear --config.mlm.rate_start=0.30 --config.mlm.rate=0.15
    done
    PYTHONPATH=. $PY experiments/seed_claims.py 1 "$OUT/c1"
  elif [ "$claim" = 1ft ]; then
    # The speaker task needs a parent that never saw the held-out speeches and reads 128
    # characters: the same :smoke BERT and the same two arms, 300 steps on data.kind=speeches_text
    # at length 128; then configs/finetune/speakers_bert.py (400 steps) with mean pooling, the
    # fine-tune seed = the parent's seed.
    STEPS=300 EVERY=25
    for seed in $SEEDS; do
      for arm in constant linear30; do
        sched=""
        [ $arm = linear30 ] && sched="--config.mlm.rate_schedule=linear --config.mlm.rate_start=0.30"
        train "$OUT/c1ft/${arm}_seed$seed" configs/bert/bert_base.py:smoke \
          --config.seed=$seed --config.checkpoint.every=300 --config.data.kind=speeches_text \
          --config.data.seq_len=128 --config.model.max_len=128 $sched
      done
    done
    PYTHONPATH=. $PY experiments/seed_claims.py 1 "$OUT/c1ft"
    STEPS=400 EVERY=100
    for seed in $SEEDS; do
      for arm in constant linear30; do
        train "$OUT/c1ft_speakers/${arm}_seed$seed" configs/finetune/speakers_bert.py \
          --config.seed=$seed --config.init_from.workdir="$OUT/c1ft/${arm}_seed$seed" \
          --config.data.tokenizer="$OUT/c1ft/${arm}_seed$seed" --config.classify.pooling=mean
      done
    done
    PYTHONPATH=. $PY experiments/finetune_speakers.py --no-baselines "$OUT"/c1ft_speakers/*_seed*
  elif [ "$claim" = 2mlm ]; then
    STEPS=400 EVERY=50
    for seed in $SEEDS; do
      for w in ${WEIGHTS:-0 0.5 1}; do
        train "$OUT/c2mlm/mlm_weight${w}_seed$seed" configs/ul2/clm_mlm_char.py:smoke \
          --config.seed=$seed --config.checkpoint.every=400 \
          --config.mixture.mlm_weight=$w --config.mixture.eval_mlm_weight=1
      done
    done
    PYTHONPATH=. $PY experiments/seed_claims.py 2mlm "$OUT/c2mlm"
  else
    # One decoder (the :smoke character GPT, 2 layers, 128 wide, prefix attention), 400 steps of
    # 32 x 64 tokens for every arm; validation scores every row causally (eval_mlm_weight=0).
    STEPS=400 EVERY=50
    for seed in $SEEDS; do
      for w in 0 0.5 1; do
        train "$OUT/c2/mlm_weight${w}_seed$seed" configs/ul2/clm_mlm_char.py:smoke \
          --config.seed=$seed --config.checkpoint.every=400 \
          --config.mixture.mlm_weight=$w --config.mixture.eval_mlm_weight=0
      done
    done
    PYTHONPATH=. $PY experiments/seed_claims.py 2 "$OUT/c2"
  fi
done
