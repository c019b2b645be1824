"""Every named random stream of a run, in one place, with the numbers it has always had.

A draw is a pure function of (seed, what it is for, an index): each use below has its own stream
so no two uses ever share bits, and exact resume and the recorded numbers depend on every value
staying as it is. It sits in the lowest layer and imports nothing, so data, objectives and the
loop may all use it; host streams seed ``data.base.batch_rng``, device ones are ``fold_in`` values.
"""
from __future__ import annotations

# --- host: numpy generators seeded by (seed, stream, batch index) -----------------------------
WINDOW_STARTS_TRAIN = 0    # random window starts of a token stream, training batches
WINDOW_STARTS_VAL = 1      # ... validation batches
IMAGE_FLIPS = 2            # random horizontal flips of training images
TRANSFORM_TRAIN = 7        # the objective's host-side transform of training batches
TRANSFORM_VAL = 8          # ... of validation batches: fixed, every eval sees the same corruption

# --- device: jax keys ------------------------------------------------------------------------
#: the validation loss's key is PRNGKey(seed + VAL_LOSS_SEED_OFFSET), batch i's fold_in(key, i)
VAL_LOSS_SEED_OFFSET = 8
#: fold_in(PRNGKey(seed), EVALUATORS), then fold_in(., step): the plug-in evaluators' key
EVALUATORS = 9
#: fold_in(step key, PREPARE) is what ``prepare`` gets; the loss's key is the step key itself and
#: micro-batch k's is fold_in(step key, k), as before ``prepare`` existed
PREPARE = 1 << 30
#: PRNGKey(seed + POLICY_INIT_SEED_OFFSET) initialises an RLHF policy and its frozen reference
POLICY_INIT_SEED_OFFSET = 7919
#: fold_in(init key, REWARD_HEAD_INIT): PPO's random reward head when no reward run is loaded
REWARD_HEAD_INIT = 1
#: fold_in(update key, PPO_MINIBATCH_LOSS + i): the loss key of PPO's i-th minibatch update
#: (fold_in(update key, epoch) orders the rows, so these start well past any epoch count)
PPO_MINIBATCH_LOSS = 1000
#: seed = step * PPO_SAMPLE_SEEDS_PER_STEP + i: PPO's decoded sample of prompt i at an eval
PPO_SAMPLE_SEEDS_PER_STEP = 100
