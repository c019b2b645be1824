"""optax AdamW + schedules from ``config.optimizer``.

Gradient accumulation happens in the train step (a scan over micro-batches) rather than through
``optax.MultiSteps``, so that one optimiser step is one runner step: schedules, logging and
checkpoints all count the same thing.
"""
from __future__ import annotations

import re

import flax
import jax.numpy as jnp
import optax

from pretrainx.errors import UserError

SCHEDULES = ("cosine", "inverse_sqrt", "exponential", "constant")


def learning_rate_schedule(opt) -> optax.Schedule:
    """Linear warm-up over ``warmup_steps``, then the named decay. Warm-up is nanoGPT's,
    lr * (step + 1) / (warmup + 1) for step < warmup: the first step already updates (a warm-up
    from 0 would spend step 0 on nothing)."""
    lr, warmup = float(opt.lr), int(opt.warmup_steps)
    name = opt.schedule
    if name == "cosine":
        # nanoGPT: cosine from lr at the end of warm-up to end_lr at decay_steps, flat after.
        decay_len = max(int(opt.decay_steps) - warmup, 1)
        alpha = float(opt.end_lr) / lr if lr else 0.0
        decay = optax.cosine_decay_schedule(lr, decay_len, alpha=alpha)
    elif name == "inverse_sqrt":
        # lr * sqrt(warmup / step) after warm-up (Vaswani et al.), continuous at the join.
        w = max(warmup, 1)
        decay = lambda s: lr * jnp.sqrt(w / (s + w))
    elif name == "exponential":
        # lr multiplied by decay_rate every decay_steps, smoothly.
        decay = optax.exponential_decay(lr, int(opt.decay_steps), float(opt.decay_rate),
                                        end_value=float(opt.end_lr) or None)
    elif name == "constant":
        decay = optax.constant_schedule(lr)
    else:
        raise UserError(f"unknown optimizer.schedule {name!r}; known: {', '.join(SCHEDULES)}")
    if warmup <= 0:
        return decay
    warm = lambda step: lr * (step + 1) / (warmup + 1)
    return optax.join_schedules([warm, decay], [warmup])


DECAY_MASKS = ("matrices", "matrices_no_embeddings", "all")


def weight_decay_mask(params, mode: str):
    """True where weight decay applies.

    "matrices": every parameter of rank >= 2 — matmul kernels and embedding tables — and no
    bias or norm parameter (nanoGPT's configure_optimizers).
    "matrices_no_embeddings": the same but embedding tables are spared too.
    "all": every parameter.
    """
    if mode not in DECAY_MASKS:
        raise UserError(f"unknown optimizer.decay_mask {mode!r} (known: {', '.join(DECAY_MASKS)})")
    flat = flax.traverse_util.flatten_dict(params)
    mask = {}
    for path, leaf in flat.items():
        name = str(path[-1]).lower()          # nn.Embed's table is "embedding", Dense's "kernel"
        in_norm = any("norm" in str(p).lower() or str(p).startswith("ln") for p in path)
        decay = getattr(leaf, "ndim", 0) >= 2 and not in_norm and name != "bias"
        if mode == "matrices_no_embeddings" and "embed" in name:
            decay = False
        mask[path] = mode == "all" or bool(decay)
    return flax.traverse_util.unflatten_dict(mask)


#: names of the embedding parameters (the bottom of the layer-wise LR decay): GPT/BERT's tables
#: and BERT's embedding LayerNorm, T5's shared table
EMBEDDING_NAMES = ("wte", "wpe", "wtt", "ln_emb", "token_embedder")
_BLOCK = re.compile(r"^(?:h|layers|block)_(\d+)$")


def layer_groups(params) -> tuple[dict, int]:
    """(labels tree, L): each parameter's depth for layer-wise LR decay (BEiT / ELECTRA): the
    embeddings 0, block ``h_i`` i + 1, everything above the blocks (final norm, pooler, head)
    L + 1, L the number of blocks."""
    flat = flax.traverse_util.flatten_dict(params)
    blocks = {int(m.group(1)) for path in flat for p in path if (m := _BLOCK.match(str(p)))}
    L = len(blocks)
    labels = {}
    for path in flat:
        depth = L + 1
        for p in map(str, path):
            if p in EMBEDDING_NAMES:
                depth = 0
            elif m := _BLOCK.match(p):
                depth = int(m.group(1)) + 1
        labels[path] = str(depth)
    return flax.traverse_util.unflatten_dict(labels), L


def layer_decay(params, decay: float) -> optax.GradientTransformation:
    """Scale each update by ``decay ** (L + 1 - depth)`` (``layer_groups``): the head keeps the
    full step, the top block ``decay`` of it, the embeddings ``decay ** (L + 1)``."""
    labels, L = layer_groups(params)
    return optax.multi_transform(
        {str(d): optax.scale(decay ** (L + 1 - d)) for d in range(L + 2)}, labels)


MU_DTYPES = ("float32", "bfloat16")


def make_optimizer(opt, params) -> tuple[optax.GradientTransformation, optax.Schedule]:
    schedule = learning_rate_schedule(opt)
    # Adam's first moment in bf16 halves its memory and traffic (a speed option for large models;
    # the second moment stays float32, whose range bf16's 8-bit mantissa would hurt most).
    mu_dtype = opt.mu_dtype
    if mu_dtype not in MU_DTYPES:
        raise UserError(f"unknown optimizer.mu_dtype {mu_dtype!r} (known: {', '.join(MU_DTYPES)})")
    parts = []
    if float(opt.clip_norm) > 0:
        parts.append(optax.clip_by_global_norm(float(opt.clip_norm)))
    parts.append(optax.adamw(schedule, b1=float(opt.b1), b2=float(opt.b2), eps=float(opt.eps),
                             weight_decay=float(opt.weight_decay), mu_dtype=jnp.dtype(mu_dtype),
                             mask=weight_decay_mask(params, opt.decay_mask)))
    decay = float(opt.layer_decay)
    if not 0.0 < decay <= 1.0:
        raise UserError(f"optimizer.layer_decay must be in (0, 1], got {decay}")
    if decay < 1.0:                   # layer-wise LR decay (fine-tuning), after AdamW's step
        parts.append(layer_decay(params, decay))
    return optax.chain(*parts), schedule
