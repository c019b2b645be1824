"""The objective contract: the one seam through which every training objective plugs into the runner.

The runner (``pretrainx.core.train``, its step in ``pretrainx.core.step``) never branches on the objective's
name: it asks the registry for ``config.objective`` and uses only the methods below. An objective
owns its model(s), the host-side corruption of a batch (masking, span corruption), an optional
on-device phase before the loss (rollouts, reference log-probs), a pure loss, optionally its own
update (PPO's epochs x minibatches), a small auxiliary state, evaluators and a sampler.

One step, in order (``step.train_step``; ``ctx`` says which step it is, see the contexts below):

  host   batch = source rows of this process -> ``transform(batch, rng, ctx=BatchContext)``
  device batch = ``prepare(params, frozen, batch, rng, ctx)``            (default: unchanged)
         params, opt_state, metrics = ``update(params, opt_state, batch, rng, ctx, updater)``
             default: one (accumulated) gradient of ``loss_fn(params, batch, rng, *, train,
             frozen, ctx)``, applied by the optimiser
         metrics = ``finalize_metrics(metrics)``;  aux = ``update_aux(aux, metrics, ctx)``

The pieces:
  * ``init(rng) -> params``: the trainable parameters, boxed with ``nn.with_logical_partitioning``
    (the runner maps their logical axis names to the mesh and initialises them sharded).
  * ``init_frozen(rng) -> pytree``: carried but never trained (a reference policy, a reward model);
    saved once per run, not at every checkpoint. ``{}`` by default.
  * ``init_aux() -> pytree``: small non-parameter state carried and checkpointed with the train
    state (an adaptive KL coefficient, running reward statistics); replicated. ``{}`` by default.
  * ``transform(batch, rng, *, ctx)``: numpy in, numpy out, on the host. ``rng`` is the same
    generator in every process (seeded by (seed, batch index)): draw for the *global* batch
    (``ctx.global_batch_size`` rows) and keep this process's rows with ``ctx.local(x)``, so a run
    makes the same draws whatever its number of processes.
  * ``loss_fn(params, batch, rng, *, train, frozen, ctx) -> (loss, metrics)``: pure, jittable;
    ``metrics`` a flat dict of scalar means. Put the count the means are over (tokens, masked
    tokens, examples) in ``metrics[DENOMINATOR]``: micro-batches and validation batches are then
    pooled weighted by it, so a masked or packed batch gets the true token mean. Absent, every
    call weighs the same.
  * ``finalize_metrics(metrics)``: metrics derived from pooled means (perplexity = exp(pooled NLL)).
  * ``adapt_init_from(source, target)``: head surgery when ``config.init_from`` loads another
    run's arrays (see ``pretrainx/core/init_from.py``).
  * ``data_request(config)`` (a class method): the raw sequence length and the batch fields to
    ask the data for.
  * ``check_config(config)`` (a class method): the objective's own settings and their
    combination with the data shape, checked once by the runner before the data is read; a
    setting that makes the objective meaningless raises ``settings.SettingError`` naming it.
  * ``flops_per_batch(batch)``: training FLOPs of these rows, for MFU (None: not reported).
  * ``evaluators()``: extra evaluations (FID, sample grids, text samples) every eval period.

Construction is one step: ``Objective(config, spec)``, ``spec`` a ``DataSpec`` (the tokenizer and
the data set's info: sizes, image shape, number of classes), never changed afterwards. Before the
data exists the runner asks the class: ``cls.data_request(config)`` says what to build,
``cls.data_spec(config, dataset)`` what of the built data the objective keeps; inference builds
the spec from the run's saved tokenizer. ``sample_options()`` declares the flags of
``pretrainx sample`` (``sample_flags.py``).
The registry (``registry.py``) also takes ``"path/to/file.py:name"``: an objective in a file of
its own, imported before the lookup (docs/design.md, "A new objective").
"""
from __future__ import annotations

import dataclasses
import os
import types
from typing import Any, Iterable, Mapping, Protocol

import flax
import jax
import jax.numpy as jnp
import numpy as np

from pretrainx.errors import UserError
from pretrainx.objectives.registry import get, names, register  # noqa: F401 (the plug-in point)
from pretrainx.objectives.sample_flags import SampleOption

Params = Any
Batch = dict[str, Any]
Metrics = dict[str, jax.Array]

#: the metrics key holding the count a loss_fn's means are over (tokens, examples, ...)
DENOMINATOR = "denominator"


@dataclasses.dataclass(frozen=True)
class BatchContext:
    """What the host-side ``transform`` knows about its batch."""
    step: int                 # the train step the batch is for (at an eval: the step evaluated)
    index: int                # the batch's index in its stream (train: == step)
    total_steps: int          # config.train.steps
    global_batch_size: int    # rows in the batch over all processes
    rows: slice               # this process's rows of the global batch
    train: bool = True

    def local(self, x):
        """This process's rows of an array drawn for the whole global batch."""
        return x[self.rows]

    def draws(self, rng: np.random.Generator) -> "RowDraws":
        """``rng``'s draws made for the global batch, this process's rows kept: hand it to pure
        corruption functions (masking, span corruption) in place of a Generator."""
        return RowDraws(rng, self.global_batch_size, self.rows)

    @classmethod
    def single_process(cls, batch_size: int, step: int = 0, total_steps: int = 0,
                       train: bool = True) -> "BatchContext":
        return cls(step, step, total_steps, batch_size, slice(0, batch_size), train)


class RowDraws:
    """The two Generator methods corruption functions use (``random``, ``integers``; the leading
    dimension of ``shape`` is this process's rows) drawn for all rows of the global batch and
    cut to this process's, so a row's draws do not depend on the number of processes. A plain
    ``np.random.Generator`` serves the same functions in one process."""

    def __init__(self, rng: np.random.Generator, global_rows: int, rows: slice):
        self.rng, self.global_rows, self.rows = rng, global_rows, rows

    def random(self, shape) -> np.ndarray:
        return self.rng.random((self.global_rows, *tuple(shape)[1:]))[self.rows]

    def integers(self, low, high, shape) -> np.ndarray:
        return self.rng.integers(low, high, (self.global_rows, *tuple(shape)[1:]))[self.rows]


@flax.struct.dataclass
class StepContext:
    """What ``prepare``, ``loss_fn``, ``update`` and ``update_aux`` know inside the jitted step."""
    step: jax.Array           # int32 scalar: updates done before this one (0 at the first step)
    aux: Any = None           # the auxiliary state (``init_aux``) as the step began
    total_steps: int = flax.struct.field(pytree_node=False, default=0)
    train: bool = flax.struct.field(pytree_node=False, default=True)

    @property
    def progress(self) -> jax.Array:
        """step / total_steps in [0, 1], for schedules of masking rates, mixtures, KL weights."""
        return self.step.astype(jnp.float32) / max(self.total_steps, 1)


@dataclasses.dataclass(frozen=True)
class DataRequest:
    """What an objective asks of the data pipeline."""
    seq_len: int | None       # raw tokens per row (T5 reads 568 raw tokens to make 512 inputs)
    fields: tuple[str, ...] | None = None   # batch keys to serve; None: all the source gives
    #: tokens the vocabulary must hold ([MASK], sentinels, EOS); a char or byte vocabulary gets
    #: the ones it lacks appended after its own ids (``data/special_tokens.py``)
    special_tokens: tuple[str, ...] = ()


@dataclasses.dataclass(frozen=True, eq=False)
class DataSpec:
    """What an objective knows of its data, fixed at construction: the tokenizer (None for
    images) and the data set's ``info`` (``Dataset.info``: token and character counts,
    ``image_shape``, ``num_classes``, ...; read-only). Empty for a run restored for inference
    beyond its saved tokenizer, and for objectives built without data (tests, tools)."""
    tokenizer: Any = None
    info: Mapping[str, Any] = dataclasses.field(default_factory=dict)

    def __post_init__(self):
        object.__setattr__(self, "info", types.MappingProxyType(dict(self.info)))

    @classmethod
    def of(cls, dataset, **extra) -> "DataSpec":
        """The spec of a built ``Dataset``; ``extra`` entries join its info."""
        return cls(dataset.tokenizer, {**dataset.info, **extra})

    @property
    def vocab_size(self) -> int | None:
        return getattr(self.tokenizer, "vocab_size", None)

    def require_tokenizer(self, who: str):
        if self.tokenizer is None:
            raise UserError(f"{who} needs a tokenizer: the data's, or the run's tokenizer.json")
        return self.tokenizer

    def token_id(self, token: str) -> int | None:
        """The id of a special token; None without a tokenizer (an objective built for its
        shapes only: parameter counts, restore targets; it can init but not corrupt text)."""
        return None if self.tokenizer is None else self.tokenizer.token_id(token)

    def check_vocab(self, model_vocab_size: int) -> None:
        """The model must have a row for every id the tokenizer makes (special tokens too)."""
        vocab = self.vocab_size
        if vocab is not None and vocab > model_vocab_size:
            raise UserError(f"the tokenizer has {vocab} tokens (special tokens included) but "
                            f"config.model.vocab_size is {model_vocab_size}; set "
                            f"--config.model.vocab_size={vocab}")


@dataclasses.dataclass
class EvalContext:
    """What an evaluator gets: the weights to evaluate and where to put artefacts."""
    params: Params            # EMA parameters when the run keeps an EMA, else the live ones
    frozen: Params
    step: int
    workdir: str
    rng: jax.Array
    mesh: Any
    val_data: Any             # a BatchSource for the validation split (may be None)
    tokenizer: Any = None
    final: bool = False       # the run's last eval (or `pretrainx eval`): costly extras run here
    aux: Any = None           # the auxiliary state (init_aux) of the evaluated step
    samples_dir: str = ""     # the run's samples folder (run/rundir.py); "": write none

    def sample_path(self, ext: str, name: str = "") -> str:
        """The file for this step's samples, ``step_000123.ext`` (or ``name``) in the samples
        folder, which is made here; "" when the context has no folder to write to."""
        if not self.samples_dir:
            return ""
        os.makedirs(self.samples_dir, exist_ok=True)
        return os.path.join(self.samples_dir, name or f"step_{self.step:06d}{ext}")


class Evaluator(Protocol):
    """An evaluation run every ``config.eval.every`` steps; yields (metric name, value)."""
    name: str

    def __call__(self, ctx: EvalContext) -> Iterable[tuple[str, float]]: ...


class Objective:
    """Base class with the defaults most objectives want; subclasses override what differs."""

    #: dict keys every batch for this objective must hold (checked once, with a clear error).
    batch_keys: tuple[str, ...] = ()
    #: name of the token count in a batch, for tokens/s; None for non-token objectives.
    tokens_key: str | None = None

    def __init__(self, config, spec: DataSpec | None = None):
        """Everything the objective needs, in one step; nothing is bound later."""
        self.config = config
        self.spec = spec if spec is not None else DataSpec()

    @property
    def tokenizer(self):
        return self.spec.tokenizer

    # --- data ---------------------------------------------------------------------------------
    @classmethod
    def data_request(cls, config) -> DataRequest:
        """The raw length and fields to ask the data for; by default ``data.seq_len`` (None for
        data kinds without sequences, e.g. images) and all fields. A class method: the runner
        asks it before the data (and so the objective) exists."""
        return DataRequest(seq_len=config.data.seq_len if "seq_len" in config.data else None,
                           fields=None)

    @classmethod
    def check_config(cls, config) -> None:
        """Refuse the settings of ``config`` that would make this objective meaningless (its
        section's ranges, their combination with ``data.seq_len``), in one ``SettingError`` line
        naming the field (helpers in ``settings.py``). Called once by the runner before the data
        is read and before the first step; the default checks nothing."""

    @classmethod
    def data_spec(cls, config, dataset) -> DataSpec:
        """What of the built ``dataset`` the objective keeps (override to add a statistic of
        the training data, e.g. the masked LM's most frequent token)."""
        return DataSpec.of(dataset)

    def transform(self, batch: Batch, rng: np.random.Generator, *,
                  ctx: BatchContext | None = None) -> Batch:
        return batch

    def check_batch(self, batch: Batch) -> None:
        missing = [k for k in self.batch_keys if k not in batch]
        if missing:
            raise UserError(
                f"objective {type(self).__name__} needs batch keys {list(self.batch_keys)}; "
                f"the data pipeline gave {sorted(batch)} (missing {missing})")

    # --- state --------------------------------------------------------------------------------
    def init(self, rng: jax.Array) -> Params:
        raise NotImplementedError

    def init_frozen(self, rng: jax.Array) -> Params:
        return {}

    def init_aux(self) -> Any:
        return {}

    def adapt_init_from(self, source: dict, target: dict) -> dict:
        """Head surgery for ``config.init_from``: ``source`` holds the other run's arrays
        ({"params": ..., and "ema_params" / "frozen" when asked for}, numpy leaves), ``target``
        this run's fresh ``{"params", "frozen"}`` as ShapeDtypeStructs. Return the source to map
        into the target: drop a head that does not fit, rename, or build a new head's arrays.
        Leaves of the target that the mapping does not fill keep their fresh initialisation."""
        return source

    # --- the step -----------------------------------------------------------------------------
    def prepare(self, params: Params, frozen: Params, batch: Batch, rng: jax.Array,
                ctx: StepContext) -> Batch:
        """On-device work on the whole batch before the loss, inside the jitted step, with the
        current parameters (not differentiated): rollouts, reference log-probs, rewards."""
        return batch

    def loss_fn(self, params: Params, batch: Batch, rng: jax.Array, *, train: bool,
                frozen: Params, ctx: StepContext | None = None) -> tuple[jax.Array, Metrics]:
        raise NotImplementedError

    def update(self, params: Params, opt_state, batch: Batch, rng: jax.Array, ctx: StepContext,
               updater) -> tuple[Params, Any, Metrics]:
        """One training update; returns (params, opt_state, metrics with "loss").

        ``updater.loss_and_grad(params, batch, rng) -> (loss, metrics, grads)`` runs ``loss_fn``
        (over ``optimizer.grad_accum`` micro-batches, pooled by their denominators);
        ``updater.apply(params, opt_state, grads) -> (params, opt_state)`` is the optimiser.
        Override for several updates per batch (PPO's epochs x minibatches)."""
        loss, metrics, grads = updater.loss_and_grad(params, batch, rng)
        params, opt_state = updater.apply(params, opt_state, grads)
        return params, opt_state, {**metrics, "loss": loss, "grad_norm": updater.norm(grads)}

    def update_aux(self, aux: Any, metrics: Metrics, ctx: StepContext) -> Any:
        """The auxiliary state after a step, from the step's metrics (e.g. adapt a KL coefficient)."""
        return aux

    def finalize_metrics(self, metrics: dict) -> dict:
        """Metrics computed from pooled means (train: over micro-batches; eval: over batches)."""
        return metrics

    # --- evaluation and generation ------------------------------------------------------------
    def evaluators(self) -> list[Evaluator]:
        return []

    def sample_options(self) -> tuple[SampleOption, ...]:
        """The flags ``pretrainx sample`` takes for this objective, with their defaults."""
        return ()

    def sample_command(self, ctx: EvalContext, options: dict) -> str:
        """``pretrainx sample``: generate with trained weights (``ctx.params``); returns the text to
        print. ``options`` holds a value for every option of ``sample_options()``."""
        raise UserError(f"objective {type(self).__name__} has no sampler")

    def flops_per_batch(self, batch: Batch) -> float | None:
        """Training FLOPs (forward + backward) of the rows of ``batch``, for MFU; None where the
        objective does not count them."""
        return None


def build(config, dataset) -> Objective:
    """The objective ``config.objective`` names, built on ``dataset`` (a ``Dataset``)."""
    cls = get(config.objective)
    return cls(config, cls.data_spec(config, dataset))
