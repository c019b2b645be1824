"""The reproduction registry: numbers pretrainx must keep reproducing, each checked by running it.

  pretrainx reproduce --list          # every entry, its target and its last recorded result
  pretrainx reproduce NAME            # run one, print PASS/FAIL, append to reproduce_log.jsonl

Each entry says what runs, the metric, the expected value with its tolerance, where the number
comes from, the hardware it needs and its last recorded result (value, date, device) or why there
is none. CPU entries that take under a minute run in the default test suite
(tests/test_reproduce.py); the baby GPT (~5 min) runs there as a `slow` test. GPU entries run
through the device tool and their results are written back here by hand, with date and device.
Masked-LM (BERT) and RLHF entries join as those objectives land.
"""
from pretrainx.tools.reproduce import Entry, Recorded, Target

SHAKESPEARE = "../shared/data/tinyshakespeare/input.txt"   # nanoGPT's input.txt, beside the repo
THIS_CPU = "this repository's 2-core CPU machine"

ENTRIES = [
    # --- nanoGPT's char-level Shakespeare ------------------------------------------------------
    Entry(
        name="shakespeare_char",
        what="nanoGPT train_shakespeare_char: 10.7M-param char GPT, 5000 steps, bf16",
        kind="train", config="configs/gpt/shakespeare_char.py",
        overrides={"model.dtype": "bfloat16"},
        metric="val/loss", take="best", target=Target(1.47, kind="at_most"),
        source="karpathy/nanoGPT README, 'quick start': best validation loss 1.4697 on one A100",
        hardware="1 GPU",
        recorded=Recorded(1.4669, "2026-11-30", "NVIDIA H200 (device tool)",
                          note="bf16, best at step 2000; 83 s wall (one-hot embedding lookup)"),
    ),
    Entry(
        name="baby_gpt_cpu",
        what="nanoGPT's CPU 'baby GPT' (4L, 4H, 128 wide, block 64, batch 12, 2000 steps)",
        kind="train", config="configs/gpt/shakespeare_char.py:cpu",
        # one device, as nanoGPT's CPU run (its batch of 12 splits over no mesh)
        overrides={"train.progress": False, "mesh.data": 1},
        metric="val/loss", take="final", target=Target(1.88, tolerance=0.05),
        source="karpathy/nanoGPT README, 'quick start', CPU run: validation loss 1.88",
        hardware="cpu", cpu_minutes=6,
        recorded=Recorded(1.8973, "2026-11-30", THIS_CPU,
                          note="345 s, pretrainx reproduce; gpt_shakespeare.md: 1.906 on 2026-11-24"),
    ),
    # --- count-based baselines (experiments/baselines.md) ------------------------------------
    Entry(
        name="bigram_char",
        what="add-one (Laplace) bigram on Tiny Shakespeare chars, nanoGPT's 90/10 split",
        kind="ngram", options={"text": SHAKESPEARE, "n": 2, "k": 1.0, "val_fraction": 0.1},
        metric="val/loss", target=Target(2.4819, tolerance=5e-4),
        source="experiments/baselines.md (this repo; counting is deterministic)",
        hardware="cpu", cpu_minutes=0.1,
        recorded=Recorded(2.4819, "2026-11-24", THIS_CPU),
    ),
    Entry(
        name="trigram_char",
        what="add-0.01 trigram on Tiny Shakespeare chars, nanoGPT's 90/10 split",
        kind="ngram", options={"text": SHAKESPEARE, "n": 3, "k": 0.01, "val_fraction": 0.1},
        metric="val/loss", target=Target(2.0658, tolerance=5e-4),
        source="experiments/baselines.md (this repo)",
        hardware="cpu", cpu_minutes=0.1,
        recorded=Recorded(2.0658, "2026-11-24", THIS_CPU),
    ),
    Entry(
        name="fourgram_char",
        what="add-0.01 4-gram on Tiny Shakespeare chars, nanoGPT's 90/10 split",
        kind="ngram", options={"text": SHAKESPEARE, "n": 4, "k": 0.01, "val_fraction": 0.1},
        metric="val/loss", target=Target(1.7959, tolerance=5e-4),
        source="experiments/baselines.md (this repo)",
        hardware="cpu", cpu_minutes=0.1,
        recorded=Recorded(1.7959, "2026-11-24", THIS_CPU),
    ),
    # --- parameter counts of the published architectures ---------------------------------------
    Entry(
        name="gpt2_124m_params",
        what="GPT-2 small (12L, 12H, 768, T 1024) with GPT-2's 50257-token vocabulary",
        kind="params", config="configs/gpt/gpt2_124m.py", overrides={"model.vocab_size": 50257},
        metric="params", target=Target(124_439_808),
        source="OpenAI GPT-2 small as in Hugging Face 'gpt2': 124,439,808 parameters (nanoGPT "
               "model.py prints 123.65M, leaving out the 786,432 position embeddings)",
        hardware="cpu", cpu_minutes=0.2,
        recorded=Recorded(124_439_808, "2026-11-30", THIS_CPU),
    ),
    Entry(
        name="bert_base_params",
        what="BERT-base (12L, 768, 12H, vocab 30522)",
        kind="unbuilt", metric="params", target=Target(110e6, tolerance=0.02, relative=True),
        source="Devlin et al. 2019, section 3: BERT-BASE total parameters 110M",
        hardware="cpu", recorded="not yet runnable: model not built",
    ),
    Entry(
        name="t5_small_params",
        what="T5-small (6+6 layers, 512, 8H, vocab 32128)",
        kind="unbuilt", metric="params", target=Target(60e6, tolerance=0.02, relative=True),
        source="Raffel et al. 2020, section 3.7: T5-Small, 60 million parameters",
        hardware="cpu", recorded="not yet runnable: model not built",
    ),
    Entry(
        name="ddpm_cifar10_unet_params",
        what="Ho et al.'s CIFAR-10 DDPM UNet (ch 128, mult 1-2-2-2, 2 res blocks, attn 16x16)",
        kind="params", config="configs/diffusion/cifar10_ddpm.py",
        metric="params", target=Target(35.7e6, tolerance=0.02, relative=True),
        source="Ho et al. 2020, appendix B: 'Our CIFAR10 model has 35.7 million parameters'",
        hardware="cpu", cpu_minutes=0.3,
        recorded=Recorded(35_746_307, "2026-11-30", THIS_CPU),
    ),
    Entry(
        name="dit_s2_params",
        what="DiT-S/2 (384 wide, 12 blocks, 6 heads, patch 2) on 32x32x4 latents, 1000 classes",
        kind="params", config="configs/diffusion/fashion_mnist_dit.py:cond",
        overrides={"model.hidden_size": 384, "model.depth": 12, "model.num_heads": 6,
                   "model.image_shape": (32, 32, 4), "model.num_classes": 1000},
        metric="params", target=Target(33e6, tolerance=0.02, relative=True),
        source="Peebles & Xie 2023, table 1: DiT-S, 33M parameters",
        hardware="cpu", cpu_minutes=0.3,
        recorded=Recorded(32_858_896, "2026-11-30", THIS_CPU),
    ),
    # --- Fashion-MNIST FID (experiments/diffusion_fashion_mnist.md) ---------------------------
    # Classifier-feature FIDs, not Inception FIDs: no published number compares, so the target
    # is set from the first full-length run.
    Entry(
        name="fmnist_flow_fid",
        what="rectified flow, 6.5M UNet, 30k steps; FID at 32 Euler steps (classifier features)",
        kind="train", config="configs/diffusion/fashion_mnist_flow.py",
        metric="eval/fid", take="final", target=None,
        source="experiments/diffusion_fashion_mnist.md (this repo's protocol)",
        hardware="1 GPU", recorded="not yet run at full length",
    ),
    Entry(
        name="fmnist_ddpm_fid",
        what="DDPM, 6.5M UNet, 30k steps; FID with DDIM 50 steps (classifier features)",
        kind="train", config="configs/diffusion/fashion_mnist_ddpm.py",
        metric="eval/fid", take="final", target=None,
        source="experiments/diffusion_fashion_mnist.md (this repo's protocol)",
        hardware="1 GPU", recorded="not yet run at full length",
    ),
]
