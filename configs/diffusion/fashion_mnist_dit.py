"""DDPM (or flow) on Fashion-MNIST 28x28 with a DiT (Peebles & Xie 2023) in place of the UNet.

  pretrainx train --config configs/diffusion/fashion_mnist_dit.py --workdir workdirs/fmnist_dit
  pretrainx train --config configs/diffusion/fashion_mnist_dit.py:cond --workdir workdirs/fmnist_dit_cond
  pretrainx train --config configs/diffusion/fashion_mnist_dit.py:flow --workdir workdirs/fmnist_dit_flow
  pretrainx sample --workdir workdirs/fmnist_dit --sampler ddim --steps 50 --num-samples 64

Everything but the backbone and the learning rate is fashion_mnist_ddpm.py's (`:flow`, `:flow,cond`
and `:flow,smoke`: fashion_mnist_flow.py's), so the FIDs compare backbones. The DiT: patch 2
(28 / 2 = 14 -> 196 tokens: DiT's best patch size, still a short sequence), hidden 256, 6 blocks,
4 heads of 64 (every DiT's head dim). That is 7.4M parameters and 2.1 GFLOP a forward pass (XLA's
cost analysis), next to the UNet's 6.5M and 2.25 GFLOP; the smallest paper size, DiT-S/2 (384
wide, 12 blocks, 32M), would be 5x the UNet. Adam 1e-4 as in DiT (half the UNet's 2e-4); the UNet
recipe's warm-up and clipping are kept. No dropout (DiT has none).
"""
from pretrainx.config import base, images, variants


def get_config(arg: str = ""):
    flags = variants.parse(arg, __file__, "cond", "smoke", "flow", "flow,cond", "flow,smoke")
    c = images.fashion_mnist("flow" if "flow" in flags else "ddpm", flags - {"flow"})
    c.model = images.dit_model(c.model)
    c.sharding.rules = images.unet_rules(("heads", "tensor"), ("kv", None))   # + the DiT's heads
    c = base.change(c, {"optimizer.lr": 1e-4, "optimizer.end_lr": 1e-4})
    if "smoke" in flags:              # a CPU-sized check: 0.18M parameters, same 196 tokens
        c = base.change(c, {"model.hidden_size": 64, "model.depth": 2, "model.num_heads": 2,
                            "optimizer.lr": 1e-3, "optimizer.end_lr": 1e-3, "optimizer.warmup_steps": 20,
                            "optimizer.ema_decay": 0.98})   # 0.999: val/loss (EMA) near the init's 1
    return c
