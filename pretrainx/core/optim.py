"""optax AdamW (or Muon for the hidden matrices) + schedules from ``config.optimizer``.

Gradient accumulation happens in the train step (a scan over micro-batches) rather than through
``optax.MultiSteps``, so that one optimiser step is one runner step: schedules, logging and
checkpoints all count the same thing.
"""
from __future__ import annotations

import math
import re

import flax
import jax
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


OPTIMIZERS = ("adamw", "muon")
MU_DTYPES = ("float32", "bfloat16")


def _names(path) -> list[str]:
    """The dict keys of a tree path (a boxed parameter's path also has the box's ``.value``)."""
    return [str(k.key) for k in path if hasattr(k, "key")]


def muon_dims(path, leaf):
    """How Muon sees a parameter as a matrix (``MuonDimensionNumbers``: input axes, output
    axes), or None for the AdamW part. Muon takes the hidden layers' kernels only: inside a
    block (``h_i``, ``layers_i``, ``block_i``), rank >= 2. Embeddings, the output head, norms and
    biases stay with AdamW (Jordan et al.'s modded-nanogpt). An attention ``out`` kernel is
    (heads, kv, embed): two input axes; query/key/value are (embed, heads, kv): two output axes,
    so each is orthogonalised as one E x (H*D) matrix."""
    names = _names(path)
    in_block = any(_BLOCK.match(n) for n in names)
    if not in_block or not names or names[-1] != "kernel" or getattr(leaf, "ndim", 0) < 2:
        return None
    if leaf.ndim == 2:
        return optax.contrib.MuonDimensionNumbers((0,), (1,))
    inputs = 2 if len(names) > 1 and names[-2] == "out" else 1
    return optax.contrib.MuonDimensionNumbers(tuple(range(inputs)),
                                              tuple(range(inputs, leaf.ndim)))


def muon_labels(params):
    """"muon" / "adamw" per parameter (see :func:`muon_dims`)."""
    return jax.tree_util.tree_map_with_path(
        lambda path, leaf: "muon" if muon_dims(path, leaf) is not None else "adamw", params)


def _width_scale(path, update):
    """Muon's update times sqrt(max(1, fan_out / fan_in)) (Jordan's Muon, as optax's muon): a
    wide output gets a proportionally larger step."""
    dims = muon_dims(path, update)
    fan_in = math.prod(update.shape[a] for a in dims.reduction_axis)
    fan_out = math.prod(update.shape[a] for a in dims.output_axis)
    return update * math.sqrt(max(1.0, fan_out / fan_in))


def _muon(opt, schedule) -> optax.GradientTransformation:
    """optax's Muon step (``scale_by_muon``: Nesterov momentum, then Newton-Schulz) for the hidden
    matrices, the others being masked out of this branch. Built from optax's parts rather than
    ``optax.contrib.muon``, whose own AdamW branch would decay norms and biases and be empty
    here. The LR is ``muon_lr`` on the schedule's shape; the weight decay AdamW's, decoupled."""
    scale = float(opt.muon_lr) / float(opt.lr) if float(opt.lr) else 0.0
    dims = lambda tree: jax.tree_util.tree_map_with_path(muon_dims, tree)
    width = optax.GradientTransformation(
        lambda params: optax.EmptyState(),
        lambda updates, state, params=None: (
            jax.tree_util.tree_map_with_path(_width_scale, updates), state))
    return optax.chain(
        optax.contrib.scale_by_muon(beta=float(opt.muon_momentum), mu_dtype=jnp.dtype(opt.mu_dtype),
                                    weight_dimension_numbers=dims),
        width, optax.add_decayed_weights(float(opt.weight_decay)),
        optax.scale_by_learning_rate(lambda step: schedule(step) * scale))


def _adamw(opt, schedule, mask) -> optax.GradientTransformation:
    return optax.adamw(schedule, b1=float(opt.b1), b2=float(opt.b2), eps=float(opt.eps),
                       weight_decay=float(opt.weight_decay), mu_dtype=jnp.dtype(opt.mu_dtype),
                       mask=mask)


def make_optimizer(opt, params) -> tuple[optax.GradientTransformation, optax.Schedule]:
    schedule = learning_rate_schedule(opt)
    # Adam's first moment in bf16 halves its memory and traffic (a speed option for large models;
    # the second moment stays float32, whose range bf16's 8-bit mantissa would hurt most).
    mu_dtype = opt.mu_dtype
    if mu_dtype not in MU_DTYPES:
        raise UserError(f"unknown optimizer.mu_dtype {mu_dtype!r} (known: {', '.join(MU_DTYPES)})")
    if opt.name not in OPTIMIZERS:
        raise UserError(f"unknown optimizer.name {opt.name!r} (known: {', '.join(OPTIMIZERS)})")
    parts = []
    if float(opt.clip_norm) > 0:
        parts.append(optax.clip_by_global_norm(float(opt.clip_norm)))
    mask = weight_decay_mask(params, opt.decay_mask)
    if opt.name == "muon":
        labels = muon_labels(params)
        if "muon" not in jax.tree.leaves(labels):
            raise UserError("optimizer.name 'muon' found no matrices for Muon in this model: it "
                            "takes the kernels inside transformer blocks (h_i, layers_i, block_i)")
        parts.append(optax.multi_transform({"muon": _muon(opt, schedule),
                                            "adamw": _adamw(opt, schedule, mask)}, labels))
    else:
        parts.append(_adamw(opt, schedule, mask))
    decay = float(opt.layer_decay)
    if not 0.0 < decay <= 1.0:
        raise UserError(f"optimizer.layer_decay must be in (0, 1], got {decay}")
    if decay < 1.0:                   # layer-wise LR decay (fine-tuning), after AdamW's step
        parts.append(layer_decay(params, decay))
    return optax.chain(*parts), schedule
