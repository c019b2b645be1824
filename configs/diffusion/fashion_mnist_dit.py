"""DDPM (or flow) on Fashion-MNIST 28x28 with a DiT (Peebles & Xie 2023) in place of the UNet.

  pretrainx train --config configs/diffusion/fashion_mnist_dit.py --workdir workdirs/fmnist_dit
  pretrainx train --config configs/diffusion/fashion_mnist_dit.py:cond --workdir workdirs/fmnist_dit_cond
  pretrainx train --config configs/diffusion/fashion_mnist_dit.py:flow --workdir workdirs/fmnist_dit_flow
  pretrainx sample --workdir workdirs/fmnist_dit --sampler ddim --steps 50 --num-samples 64

Everything but the backbone and the learning rate is fashion_mnist_ddpm.py's (`:flow`, `:flow_cond`
and `:flow_smoke`: fashion_mnist_flow.py's), so the FIDs compare backbones. The DiT: patch 2
(28 / 2 = 14 -> 196 tokens: DiT's best patch size, still a short sequence), hidden 256, 6 blocks,
4 heads of 64 (every DiT's head dim). That is 7.4M parameters and 2.1 GFLOP a forward pass (XLA's
cost analysis), next to the UNet's 6.5M and 2.25 GFLOP; the smallest paper size, DiT-S/2 (384
wide, 12 blocks, 32M), would be 5x the UNet. Adam 1e-4 as in DiT (half the UNet's 2e-4); the UNet
recipe's warm-up and clipping are kept. No dropout (DiT has none).
"""
import os

from pretrainx.config import load as config_lib

VARIANTS = ("", "cond", "smoke", "flow", "flow_cond", "flow_smoke")


def get_config(arg: str = ""):
    if arg not in VARIANTS:
        raise ValueError(f"unknown variant {arg!r} of fashion_mnist_dit (known: {VARIANTS[1:]})")
    base = "fashion_mnist_flow.py" if arg.startswith("flow") else "fashion_mnist_ddpm.py"
    variant = arg.removeprefix("flow").lstrip("_")     # the base file's own variant
    c = config_lib.load(os.path.join(os.path.dirname(__file__), base) +
                        (f":{variant}" if variant else ""))
    for unet_only in ("ch", "ch_mult", "num_res_blocks", "attn_resolutions", "dropout",
                      "norm_groups"):
        del c.model[unet_only]
    c.model.name = "dit"              # pretrainx/models/dit.py
    c.model.patch_size = 2
    c.model.hidden_size = 256
    c.model.depth = 6
    c.model.num_heads = 4
    c.model.mlp_ratio = 4
    c.optimizer.lr = 1e-4
    c.optimizer.end_lr = 1e-4
    # The UNet's rules cover the DiT's names but its attention heads (GPT's names).
    c.sharding.rules = tuple(c.sharding.rules) + (("heads", "tensor"), ("kv", None))
    if variant == "smoke":            # a CPU-sized check: 0.18M parameters, same 196 tokens
        c.model.hidden_size = 64
        c.model.depth = 2
        c.model.num_heads = 2
        c.optimizer.lr = 1e-3
        c.optimizer.end_lr = 1e-3
        c.optimizer.warmup_steps = 20
        c.optimizer.ema_decay = 0.98  # 0.999 would leave val/loss (EMA weights) near the init's 1
    return c
