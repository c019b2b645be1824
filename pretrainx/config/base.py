"""The runner's sections, every default written once: what a recipe starts from.

Why it lives in the package and not in ``configs/``: the library fills the fields a run's saved
``config.json`` lacks from here and the family presets (``defaults.with_defaults``: a run started
before a field existed still resumes, samples and evaluates), and an installed package has no
``configs/`` folder. The family
presets beside it (``text.py``: GPT, BERT, T5; ``images.py``: UNet, DiT and the image
objectives; ``sections.py``: the other objectives' sections) add the model, data, sample and
sharding sections, and a recipe in ``configs/`` states only what differs from them.

Sections here are those every objective's run reads; the values are those most recipes use.
"""
from __future__ import annotations

import ml_collections

from pretrainx.config import load as config_lib


def optimizer() -> ml_collections.ConfigDict:
    o = ml_collections.ConfigDict()
    # "adamw" | "muon": Muon (momentum orthogonalised by Newton-Schulz, optax.contrib.muon) on
    # the blocks' matrices, AdamW with the fields below on embeddings, head, norms and biases
    o.name = "adamw"
    o.lr = 1e-3
    o.end_lr = 1e-4                   # the schedule's final LR (nanoGPT's min_lr)
    o.schedule = "cosine"             # "cosine" | "inverse_sqrt" | "exponential" | "constant"
    o.warmup_steps = 100
    o.decay_steps = 5000              # the schedule's length (nanoGPT's lr_decay_iters)
    o.decay_rate = 0.1                # for "exponential": lr multiplier over decay_steps
    o.b1 = 0.9
    o.b2 = 0.999
    o.eps = 1e-8
    o.weight_decay = 0.0
    # "matrices": rank >= 2 tensors incl. embeddings, no norms/biases (nanoGPT) |
    # "matrices_no_embeddings" | "all"
    o.decay_mask = "matrices"
    o.clip_norm = 1.0                 # 0 disables
    o.grad_accum = 1                  # microbatches per step (the batch is split, not grown)
    o.ema_decay = 0.0                 # 0: no EMA of the parameters; evaluators see the EMA if > 0
    o.mu_dtype = "float32"            # Adam's first moment; "bfloat16" saves memory traffic
    o.muon_lr = 0.02                  # name "muon": the matrices' peak LR (lr stays AdamW's)
    o.muon_momentum = 0.95            # name "muon": Nesterov momentum of the matrices
    o.layer_decay = 1.0               # < 1: layer-wise LR decay (head 1, top block d, ... embeddings d^(L+1))
    return o


def train() -> ml_collections.ConfigDict:
    t = ml_collections.ConfigDict()
    # Random bits of each step (dropout, noise): "threefry" | "rbg" | "unsafe_rbg" (XLA's
    # RngBitGenerator: much cheaper dropout on GPUs; other bits, not mesh-invariant)
    t.rng_impl = "threefry"
    t.steps = 5000
    t.log_every = 100
    # Train steps per dispatch to the devices (a loop on the device; the same steps): 0 = the
    # steps between two logged steps, at most 16, on one process's CPU devices, else 1
    t.steps_per_dispatch = 0
    t.progress = True                 # a progress bar on the terminal
    t.preemption_check_every = 10     # multi-process: steps between SIGTERM agreements
    # JAX's persistent compilation cache: a rerun loads the compiled step instead of compiling
    # it again ("" = off; JAX_COMPILATION_CACHE_DIR in the environment wins)
    t.compile_cache = "~/.cache/pretrainx/xla"
    return t


def trackers() -> ml_collections.ConfigDict:
    """Experiment trackers beside metrics.jsonl and TensorBoard (pretrainx/run/trackers.py)."""
    t = ml_collections.ConfigDict()
    t.wandb = False                   # Weights & Biases, offline, under workdir/wandb (`wandb sync`
                                      # uploads it); pip install pretrainx[wandb]
    t.mlflow = False                  # MLflow, a local store: workdir/mlflow.db (`mlflow ui
                                      # --backend-store-uri sqlite:///WORKDIR/mlflow.db`);
                                      # pip install pretrainx[mlflow]
    return t


def evaluation() -> ml_collections.ConfigDict:
    e = ml_collections.ConfigDict()
    e.every = 250                     # steps between evaluations (and one at the end); 0: none
    e.num_batches = 20                # validation batches per evaluation (0: none)
    e.batch_size = 64                 # global, like batch_size
    # lm-evaluation-harness tasks during training, as `pretrainx eval --tasks` takes them: names
    # or task YAML paths, comma-separated ("": none; pip install pretrainx[eval]). Logged as
    # eval/<task>/<metric>, which checkpoint.best_metric and a sweep's metric may name.
    e.tasks = ""
    e.tasks_every = 1000              # steps between task evaluations, their own cadence (and
                                      # one at the end; 0: only at the end). A task step reports
                                      # val/* too
    e.tasks_limit = 0                 # at most N documents per task (0: all of them)
    e.tasks_batch_size = 16           # requests scored per batch (rounded up to the mesh's
                                      # batch axes)
    e.task_dir = "~/.cache/pretrainx/tasks"   # where local tasks' JSONL and YAML are generated
    return e


def checkpoint() -> ml_collections.ConfigDict:
    k = ml_collections.ConfigDict()
    k.every = 250
    k.keep = 2                        # last K
    k.best_metric = "val/loss"        # "" disables the best-checkpoint keeper
    k.best_mode = "min"
    k.async_save = True
    return k


def init_from(mapping=(("params", "params"),)) -> ml_collections.ConfigDict:
    """Start from another run's arrays (core/init_from.py)."""
    i = ml_collections.ConfigDict()
    i.workdir = ""                    # "": from scratch; a run's workdir: load it (unless resuming)
    i.step = "latest"                 # "latest" | "best" | a step number, e.g. "2000"
    i.mapping = mapping               # (source subtree, target subtree) pairs
    i.agree = ()                      # (source run's key, this run's key) pairs that must be equal
    return i


def lora() -> ml_collections.ConfigDict:
    """Low-rank adapters on chosen kernels, the rest frozen (core/lora.py): fine-tuning a large
    imported model with optimiser state for the adapters only."""
    l = ml_collections.ConfigDict()
    l.rank = 0                        # r of the adapters; 0: off (every parameter trains)
    l.alpha = 16.0                    # the update is (alpha / rank) * A B
    # regexes (re.search) over "/"-joined parameter paths of the kernels given adapters:
    # attention's q/k/v/o here; add "mlp/(fc|gate|proj)/kernel" for the MLP
    l.targets = ("attn/(query|key|value|out)/kernel",)
    # paths trained in full, not frozen: the heads an objective puts on a pretrained trunk
    # (classify's and reward's "head", PPO's value head); BERT's pooler stays frozen, as PEFT
    # leaves it: add "pooler/" when the parent never trained it (an MLM-only pretrainx BERT)
    l.train = ("(^|/)(value_)?head/",)
    return l


def mesh() -> ml_collections.ConfigDict:
    m = ml_collections.ConfigDict()
    m.data = -1                       # -1: all devices not used by the other axes
    m.fsdp = 1
    m.tensor = 1
    # XLA devices of a CPU host (core/host_devices.py): 0 = one per usable core (at most 8, a
    # count dividing the batch) for the default mesh; 1 = one device. GPUs and TPUs: no effect.
    m.host_devices = 0
    return m


def runner(objective: str, *, seed: int = 0, batch_size: int = 32) -> ml_collections.ConfigDict:
    """Every section the runner reads, whatever the objective. The family presets add ``data``,
    ``model``, ``sharding`` (logical axis -> mesh axes), ``sample`` and the objective's section."""
    c = ml_collections.ConfigDict()
    c.objective = objective           # a name in pretrainx/objectives/registry.py
    c.seed = seed
    c.batch_size = batch_size         # global: split over the mesh's data and fsdp axes
    c.optimizer = optimizer()
    c.train = train()
    c.eval = evaluation()
    c.checkpoint = checkpoint()
    c.trackers = trackers()
    c.init_from = init_from()
    # further runs to load, by name: {NAME: init_from(...)} (PPO's reward model)
    c.init_from.also = ml_collections.ConfigDict()
    c.lora = lora()
    c.mesh = mesh()
    return c


def change(config: ml_collections.ConfigDict, changes: dict) -> ml_collections.ConfigDict:
    """``config`` with the dotted fields of ``changes`` replaced (a copy); a field that is not
    there is an error naming it, so a recipe can change the base, never misspell into it."""
    return config_lib.override(config, changes)


def length(config, steps: int, every: int | None = None) -> ml_collections.ConfigDict:
    """``steps`` of training with the LR schedule over them; ``every``: the steps between
    evaluations and checkpoints."""
    changes = {"train.steps": steps, "optimizer.decay_steps": steps}
    if every is not None:
        changes.update({"eval.every": every, "checkpoint.every": every})
    return change(config, changes)
