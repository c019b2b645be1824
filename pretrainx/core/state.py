"""TrainState and its sharded initialisation (eval_shape -> logical specs -> jit with out_shardings).

One state serves every objective: trainable ``params`` with their optimiser state, an optional
EMA of them (diffusion samples from the EMA), ``frozen`` parameters that are carried but never
updated (a PPO/DPO reference policy, a reward model; checkpointed once per run, see
checkpoint.py), and ``aux``, the objective's small auxiliary state (an adaptive KL coefficient).

With LoRA (``config.lora.rank`` > 0, core/lora.py) ``params`` holds the adapters and the fully
trained heads, ``frozen["lora_base"]`` the base weights, and ``model_params`` merges them: every
reader of the weights the model sees (the step, validation, sampling, export) goes through it.
"""
from __future__ import annotations

from typing import Any

import flax
import flax.linen as nn
import jax
import jax.numpy as jnp

from pretrainx.core import lora as lora_lib, sharding as sharding_lib


@flax.struct.dataclass
class TrainState:
    step: jax.Array
    params: Any
    opt_state: Any
    rng: jax.Array            # base key; step n uses fold_in(rng, n), so resume replays exactly
    ema_params: Any           # None when config.optimizer.ema_decay == 0
    frozen: Any
    aux: Any                  # Objective.init_aux(), updated by Objective.update_aux each step
    # static: the run's LoRA settings (None: every parameter trains); see core/lora.py
    lora: Any = flax.struct.field(pytree_node=False, default=None)

    def model_params(self, params=None):
        """The objective's parameter tree the model sees for ``params`` (default: the trained
        ones): with LoRA the base weights with the adapters merged in, else ``params`` itself."""
        params = self.params if params is None else params
        if self.lora is None:
            return params
        return lora_lib.merge(params, self.frozen[lora_lib.BASE], self.lora.scale)

    def eval_params(self):
        """The weights to evaluate and sample with: the EMA when there is one."""
        return self.model_params(self.params if self.ema_params is None else self.ema_params)


def _init_key(rng: jax.Array) -> jax.Array:
    """An RBG key from a threefry key's bits, for parameter init only: XLA compiles large
    threefry-based initialisers very slowly on CPU (a small UNet: ~20 s vs ~4 s with RBG)."""
    data = jax.random.key_data(rng)
    return jax.random.wrap_key_data(jnp.concatenate([data, data]), impl="unsafe_rbg")


def _boxed_state(objective, tx_factory, ema: bool, rng: jax.Array) -> TrainState:
    param_rng, frozen_rng, state_rng = jax.random.split(rng, 3)
    params = objective.init(_init_key(param_rng))
    frozen = objective.init_frozen(_init_key(frozen_rng))
    lora = lora_lib.LoraSpec.from_config(objective.config)
    if lora is not None:     # the adapters train; the base joins the frozen trees
        params, base = lora_lib.split(params, lora, jax.random.fold_in(param_rng, 1))
        frozen = {**frozen, lora_lib.BASE: base}
    # optax maps over the boxes, so Adam's moments keep each parameter's logical names.
    tx = tx_factory(nn.unbox(params))
    return TrainState(step=jnp.zeros((), jnp.int32), params=params, opt_state=tx.init(params),
                      rng=state_rng, ema_params=params if ema else None, frozen=frozen,
                      aux=jax.tree.map(jnp.asarray, objective.init_aux()), lora=lora)


def create_train_state(objective, tx_factory, *, seed: int, ema: bool, mesh, axis_rules):
    """Initialise the state already sharded; returns (state, shardings of the state).

    ``tx_factory(params) -> optax transform`` (it needs the parameter tree for the decay mask).
    """
    rng = jax.random.PRNGKey(seed)
    boxed = lambda r: _boxed_state(objective, tx_factory, ema, r)
    shardings = state_shardings(objective, tx_factory, ema=ema, mesh=mesh, axis_rules=axis_rules)
    state = jax.jit(lambda r: nn.unbox(boxed(r)), out_shardings=shardings)(rng)
    return state, shardings


def state_shardings(objective, tx_factory, *, ema: bool, mesh, axis_rules):
    """NamedShardings of the whole state, from the parameters' logical axis names; nothing is
    allocated (``jax.eval_shape``)."""
    abstract = jax.eval_shape(lambda r: _boxed_state(objective, tx_factory, ema, r),
                              jax.random.PRNGKey(0))
    return sharding_lib.logical_shardings(abstract, mesh, axis_rules)


def abstract_train_state(objective, tx_factory, *, ema: bool, mesh, axis_rules) -> TrainState:
    """The state as ShapeDtypeStructs with shardings: a restore target without initialising."""
    abstract = nn.unbox(jax.eval_shape(lambda r: _boxed_state(objective, tx_factory, ema, r),
                                       jax.random.PRNGKey(0)))
    shardings = state_shardings(objective, tx_factory, ema=ema, mesh=mesh, axis_rules=axis_rules)
    return abstract_state(abstract, shardings)


def abstract_state(state: TrainState, shardings) -> TrainState:
    """ShapeDtypeStructs with shardings: the restore target Orbax needs on any mesh."""
    return jax.tree.map(lambda x, s: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=s), state, shardings)


def update_ema(ema_params, params, decay: float):
    return jax.tree.map(lambda e, p: decay * e + (1.0 - decay) * p, ema_params, params)


def count_params(params) -> int:
    return int(sum(x.size for x in jax.tree.leaves(params)))


__all__ = ["TrainState", "create_train_state", "abstract_state", "update_ema", "count_params"]
