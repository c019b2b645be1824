"""What the image objectives (ddpm, flow) share: the backbone (UNet or DiT), label dropout and
classifier-free guidance, chunked jitted sampling (``sample_images``), the FID / sample-grid evaluators and
``pretrainx sample``.

A subclass supplies only its loss and ``run_sampler(predict, noise, rng, sampler, steps)``, where
``predict(x, t)`` takes the objective's own time (an integer step for ddpm, t in [0, 1] for flow)
and ``model_time(t)`` maps it to the network's time input. Few-step objectives (shortcut,
meanflow) set ``interval_conditioned = True``: the backbone is built with its second time input and
``predict(x, t, interval)`` / ``apply_model(..., interval=)`` pass the interval (step size d, or
t - r) through ``model_interval``.

Config read here: model.{name ("unet" when absent | "dit"), image_shape, num_classes, dtype} and
the backbone's own keys: UNet {ch, ch_mult, num_res_blocks, attn_resolutions, dropout, num_heads,
norm_groups}, DiT {patch_size, hidden_size, depth, num_heads, mlp_ratio}; <section>.cfg_drop
(section = "diffusion" or "flow");
sample.{sampler, steps, guidance, num_samples, seed, batch_size}; eval.{fid_num_samples,
fid_num_reference, fid_seed, fid_extractor, fid_classifier_steps, fid_reference_split,
fid_samplers, fid_cache_dir, grid_samples}; data (for the FID reference).
"""
from __future__ import annotations


import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from pretrainx.errors import UserError
from pretrainx.evaluators import fid
from pretrainx.core import sharding as sharding_lib
from pretrainx.models.dit import DiT
from pretrainx.models.unet import UNet
from pretrainx.objectives import settings
from pretrainx.objectives.base import EvalContext, Objective, SampleOption


def build_unet(model_config, interval_embedding: bool = False) -> UNet:
    return UNet(interval_embedding=interval_embedding, ch=model_config.ch, ch_mult=tuple(model_config.ch_mult),
                num_res_blocks=model_config.num_res_blocks,
                attn_resolutions=tuple(model_config.attn_resolutions),
                dropout=model_config.dropout, num_heads=model_config.num_heads,
                num_classes=model_config.num_classes,
                norm_groups=model_config.norm_groups,
                dtype=jnp.dtype(model_config.dtype))


def build_dit(model_config, interval_embedding: bool = False) -> DiT:
    return DiT(interval_embedding=interval_embedding, patch_size=model_config.patch_size, hidden_size=model_config.hidden_size,
               depth=model_config.depth, num_heads=model_config.num_heads,
               mlp_ratio=model_config.mlp_ratio,
               num_classes=model_config.num_classes,
               dtype=jnp.dtype(model_config.dtype))


BACKBONES = {"unet": build_unet, "dit": build_dit}     # config.model.name -> builder


def build_model(model_config, interval_embedding: bool = False) -> nn.Module:
    """The image backbone config.model.name picks ("unet" when absent); ``interval_embedding``
    gives it the second time input of the few-step objectives."""
    name = model_config.name
    if name not in BACKBONES:
        raise UserError(f"config.model.name is {name!r}; image backbones: {sorted(BACKBONES)}")
    return BACKBONES[name](model_config, interval_embedding)


def parse_sampler(spec: str) -> tuple[str, int]:
    """"ddim:50" -> ("ddim", 50)."""
    name, _, steps = spec.partition(":")
    return name, int(steps)


def _mesh_of(params):
    """The mesh the params are laid out on (None for params on one device or on the host)."""
    leaf = jax.tree_util.tree_leaves(params)[0]
    sharding = getattr(leaf, "sharding", None)
    return sharding.mesh if isinstance(sharding, jax.sharding.NamedSharding) else None


class ImageGenerativeObjective(Objective):
    batch_keys = ("image", "label")
    section = ""                       # config section of the subclass ("diffusion", "flow")
    samplers: tuple[str, ...] = ()     # sampler names run_sampler accepts
    interval_conditioned = False       # True: the network also takes the interval (few-step)

    def __init__(self, config, spec=None):
        super().__init__(config, spec)
        self.image_shape = tuple(config.model.image_shape)            # (H, W, C)
        self.num_classes = int(config.model.num_classes)
        self.cfg_drop = float(config[self.section].cfg_drop)
        self.model = build_model(config.model, self.interval_conditioned)
        self._check_data()
        self._sampler_fns = {}

    @classmethod
    def check_config(cls, config):
        """The ranges every image objective shares: label dropout, the sampler and its steps;
        a subclass adds its own section's."""
        super().check_config(config)
        settings.number(config, f"{cls.section}.cfg_drop", 0.0, 1.0)
        settings.choice(config, "sample.sampler", cls.samplers)
        settings.integer(config, "sample.steps", 1)
        settings.number(config, "sample.guidance", 0.0)

    # --- subclass hooks ---------------------------------------------------------------------
    def model_time(self, t):
        raise NotImplementedError

    def model_interval(self, interval):
        """The network's interval input for the objective's interval (interval-conditioned only)."""
        return self.model_time(interval)

    def run_sampler(self, predict, noise, rng, sampler: str, steps: int):
        raise NotImplementedError

    def _check_data(self) -> None:
        """Fail early, with the fix, when the config's model does not fit the data."""
        shape = self.spec.info.get("image_shape")
        if shape is not None and tuple(shape) != self.image_shape:
            raise UserError(f"config.model.image_shape is {self.image_shape} but the data's "
                            f"images are {tuple(shape)}: set model.image_shape = {tuple(shape)}")
        classes = self.spec.info.get("num_classes", 0)
        if self.num_classes and classes and self.num_classes < classes:
            raise UserError(f"config.model.num_classes = {self.num_classes} but the data has "
                            f"{classes} classes")

    # --- parameters and the network -------------------------------------------------------------
    def init(self, rng):
        labels = jnp.zeros((1,), jnp.int32) if self.num_classes else None
        zero_time = jnp.zeros((1,), jnp.float32)
        interval = zero_time if self.interval_conditioned else None
        return self.model.init({"params": rng}, jnp.zeros((1, *self.image_shape), jnp.float32),
                               zero_time, labels=labels, interval=interval)["params"]

    def apply_model(self, params, x, t, labels, *, train: bool, rng=None, interval=None):
        """The network at the objective's time ``t`` (B,) (and ``interval`` (B,) for few-step
        objectives); boxed or plain params both work."""
        if interval is not None:
            interval = self.model_interval(interval)
        return self.model.apply({"params": nn.meta.unbox(params)}, x, self.model_time(t),
                                labels=labels, train=train, interval=interval,
                                rngs={"dropout": rng} if train and rng is not None else {})

    def training_labels(self, batch, rng):
        """The batch's labels with a cfg_drop fraction replaced by the null class (so the same
        network also learns the unconditional model that guidance needs); None if unconditional."""
        if not self.num_classes:
            return None
        labels = batch["label"].astype(jnp.int32)
        if self.cfg_drop > 0:
            drop = jax.random.bernoulli(rng, self.cfg_drop, labels.shape)
            labels = jnp.where(drop, self.model.null_label, labels)
        return labels

    def loss_labels(self, batch, rng, train: bool):
        """The labels a loss conditions on: label-dropped in training, the batch's own in
        validation; None for an unconditional model."""
        if not self.num_classes:
            return None
        return self.training_labels(batch, rng) if train else batch["label"].astype(jnp.int32)

    def guided_predictor(self, params, labels, guidance: float):
        """predict(x, t, interval=None) with classifier-free guidance: uncond + w * (cond -
        uncond); w = 1 is the plain conditional model, w = 0 the unconditional one."""
        def predict(x, t, interval=None):
            t = jnp.broadcast_to(jnp.asarray(t, jnp.float32), (x.shape[0],))
            if interval is not None:
                interval = jnp.broadcast_to(jnp.asarray(interval, jnp.float32), (x.shape[0],))
            if labels is None or guidance == 1.0:
                return self.apply_model(params, x, t, labels, train=False, interval=interval)
            null = jnp.full_like(labels, self.model.null_label)
            twice = None if interval is None else jnp.concatenate([interval, interval])
            both = self.apply_model(params, jnp.concatenate([x, x]), jnp.concatenate([t, t]),
                                    jnp.concatenate([labels, null]), train=False, interval=twice)
            cond, uncond = jnp.split(both, 2)
            return uncond + guidance * (cond - uncond)
        return predict

    # --- generation -------------------------------------------------------------------------
    def sampler_settings(self, sampler=None, steps=None, guidance=None):
        """(sampler, steps, guidance): the ones given, else the run's ``config.sample``."""
        s = self.config.sample
        sampler = sampler or s.sampler
        if sampler not in self.samplers:
            raise UserError(f"{type(self).__name__} samplers are {self.samplers}, not {sampler!r}")
        guidance = s.guidance if guidance is None else guidance
        return sampler, int(steps or s.steps), float(guidance)

    def _sampler_fn(self, num, sampler, steps, guidance, mesh):
        """Jitted (params, key_data, labels) -> images. On a mesh (the one the params live on)
        the chunk's rows are split over the batch axes, so every device samples its share, and
        the images come back replicated: any process can read them, also in multi-process runs."""
        key = (num, sampler, steps, guidance, mesh)
        if key not in self._sampler_fns:
            rows = None
            if mesh is not None:
                split = num % sharding_lib.batch_divisor(mesh) == 0
                rows = (sharding_lib.batch_sharding(mesh, 1 + len(self.image_shape)) if split
                        else sharding_lib.replicated(mesh))

            def sample_chunk(params, key_data, labels):
                noise_rng, sampler_rng = jax.random.split(jax.random.wrap_key_data(key_data))
                noise = jax.random.normal(noise_rng, (num, *self.image_shape), jnp.float32)
                if rows is not None:
                    noise = jax.lax.with_sharding_constraint(noise, rows)
                predict = self.guided_predictor(params, labels, guidance)
                return self.run_sampler(predict, noise, sampler_rng, sampler, steps)
            out = None if mesh is None else sharding_lib.replicated(mesh)
            self._sampler_fns[key] = jax.jit(sample_chunk, out_shardings=out)
        return self._sampler_fns[key]

    def sample_images(self, params, rng, num: int, *, sampler=None, steps=None, guidance=None,
                 labels=None, batch_size=None) -> np.ndarray:
        """``num`` images in [-1, 1] as numpy, made in chunks of ``sample.batch_size``; a pure
        function of (params, rng, options). Conditional models get balanced labels 0..K-1 unless
        ``labels`` are given."""
        sampler, steps, guidance = self.sampler_settings(sampler, steps, guidance)
        batch_size = batch_size or self.config.sample.batch_size
        if self.num_classes and labels is None:
            labels = np.arange(num) % self.num_classes
        labels = None if labels is None or not self.num_classes else np.asarray(labels)
        mesh = _mesh_of(params)
        if not jnp.issubdtype(rng.dtype, jax.dtypes.prng_key):
            rng = jax.random.wrap_key_data(rng)          # a raw uint32 PRNGKey
        chunks = []
        for i, start in enumerate(range(0, num, batch_size)):
            n = min(batch_size, num - start)
            # Host values (not arrays on one device) for the key and labels: jit places them
            # on the mesh itself, which a multi-process run needs.
            chunk_labels = None if labels is None else labels[start:start + n].astype(np.int32)
            key_data = np.asarray(jax.random.key_data(jax.random.fold_in(rng, i)))
            fn = self._sampler_fn(n, sampler, steps, guidance, mesh)
            chunks.append(np.asarray(fn(params, key_data, chunk_labels)))
        return np.clip(np.concatenate(chunks), -1.0, 1.0)

    # --- evaluation -------------------------------------------------------------------------
    def fid_protocol(self) -> fid.FidProtocol:
        e = self.config.eval
        return fid.FidProtocol(num_samples=e.fid_num_samples,
                               num_reference=e.fid_num_reference,
                               seed=e.fid_seed,
                               extractor=e.fid_extractor,
                               classifier_steps=e.fid_classifier_steps,
                               reference_split=e.fid_reference_split)

    def fid_samplers(self) -> list[tuple[str, int]]:
        specs = self.config.eval.fid_samplers
        if specs:
            return [parse_sampler(s) for s in specs]
        return [self.sampler_settings()[:2]]

    def evaluators(self):
        e = self.config.eval
        evaluators = []
        if e.grid_samples:
            evaluators.append(fid.SampleGridEvaluator(self.sample_images, e.grid_samples,
                                                      seed=self.config.sample.seed))
        if e.fid_num_samples:
            evaluators.append(fid.FidEvaluator(self.sample_images, self.config.data,
                                               self.fid_protocol(), self.fid_samplers(),
                                               e.fid_cache_dir,
                                               e.fid_extra_at))
        return evaluators

    def sample_options(self):
        s = self.config.sample
        return (
            SampleOption("sampler", str, "how to integrate", s.sampler, choices=self.samplers),
            SampleOption("steps", int, "sampler steps", int(s.steps), minimum=1),
            SampleOption("guidance", float, "classifier-free guidance scale (1: the plain "
                         "conditional model)", s.guidance, minimum=0),
            SampleOption("num_samples", int, "images in the grid", s.num_samples,
                         minimum=1),
            SampleOption("seed", int, "random seed of the noise", s.seed))

    def sample_command(self, ctx: EvalContext, options: dict) -> str:
        num, seed = options["num_samples"], options["seed"]
        sampler, steps, guidance = self.sampler_settings(options["sampler"], options["steps"],
                                                         options["guidance"])
        images = self.sample_images(ctx.params, jax.random.key(seed), num, sampler=sampler,
                                    steps=steps, guidance=guidance)
        path = ctx.sample_path(".png", f"sample_{sampler}{steps}_g{guidance:g}_seed{seed}.png")
        fid.save_image_grid(images, path)
        return (f"wrote {num} samples ({sampler}, {steps} steps, guidance {guidance:g}, seed "
                f"{seed}) to {path}; pixel mean {images.mean():.3f} std {images.std():.3f}")
