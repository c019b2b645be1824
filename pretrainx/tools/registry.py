"""The reproduction registry: numbers pretrainx must keep reproducing, each checked by running it.

  pretrainx reproduce --list          # every entry, source or pin, target, last recorded result
  pretrainx reproduce NAME            # run one, print PASS/FAIL, append to the results log

Each entry says what runs, the metric, the expected value with its tolerance, the hardware it
needs and its last recorded result (value, date, device) or why there is none, and where the
number comes from, in one of two ways:
  * ``source=``: a number published outside this repository (a paper or a peer's run, with its
    table, figure or section). Passing it is a reproduction.
  * ``pin=``: a number this repository measured itself, kept so that a change which moves it is
    noticed. Passing it shows nothing moved; it is never presented as a reproduction.
CPU entries that take under a minute run in the default test suite (tests/test_reproduce.py), the
longer ones there as `slow` tests. GPU entries run through the device tool and their results are
written back here by hand, with date and device.
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
        pin="our count, experiments/baselines.md (deterministic: a change in the tokenizer or the "
            "split moves it)",
        hardware="cpu", cpu_minutes=0.1,
        recorded=Recorded(2.4819, "2026-11-24", THIS_CPU),
    ),
    Entry(
        name="trigram_char",
        what="add-0.01 trigram on Tiny Shakespeare chars, nanoGPT's 90/10 split",
        kind="ngram", options={"text": SHAKESPEARE, "n": 3, "k": 0.01, "val_fraction": 0.1},
        metric="val/loss", target=Target(2.0658, tolerance=5e-4),
        pin="our count, experiments/baselines.md",
        hardware="cpu", cpu_minutes=0.1,
        recorded=Recorded(2.0658, "2026-11-24", THIS_CPU),
    ),
    Entry(
        name="fourgram_char",
        what="add-0.01 4-gram on Tiny Shakespeare chars, nanoGPT's 90/10 split",
        kind="ngram", options={"text": SHAKESPEARE, "n": 4, "k": 0.01, "val_fraction": 0.1},
        metric="val/loss", target=Target(1.7959, tolerance=5e-4),
        pin="our count, experiments/baselines.md",
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
        what="BERT-base (12L, 768, 12H, vocab 30522, with the MLM head)",
        kind="params", config="configs/bert/bert_base.py",
        metric="params", target=Target(110e6, tolerance=0.02, relative=True),
        source="Devlin et al. 2019, section 3: BERT-BASE total parameters 110M",
        hardware="cpu", cpu_minutes=0.2,
        recorded=Recorded(109_514_298, "2026-12-06", THIS_CPU),
    ),
    Entry(
        name="t5_small_params",
        what="T5-Small v1.0 (6+6 layers, 512, 8H, ReLU MLP 2048, tied output, vocab 32128); the "
             "recipe is v1.1's shape, so the entry sets v1.0's",
        kind="params", config="configs/t5/t5_small.py",
        overrides={"model.num_layers": 6, "model.num_decoder_layers": 6, "model.num_heads": 8,
                   "model.mlp_dim": 2048, "model.mlp_gated": False, "model.mlp_activation": "relu",
                   "model.tie_embeddings": True},
        metric="params", target=Target(60e6, tolerance=0.02, relative=True),
        source="Raffel et al. 2020, section 3.7: T5-Small, 60 million parameters",
        hardware="cpu", cpu_minutes=0.2,
        recorded=Recorded(60_506_624, "2026-12-06", THIS_CPU),
    ),
    Entry(
        name="llama3_2_1b_params",
        what="Llama-3.2-1B (16L, 2048, 32 query / 8 key-value heads, SwiGLU 8192, tied head, "
             "vocab 128256), counted from the config with jax.eval_shape",
        kind="params", config="configs/llama/llama3_2_1b.py",
        metric="params", target=Target(1_235_814_400),
        source="meta-llama/Llama-3.2-1B on the Hugging Face Hub: config.json's shapes and the "
               "safetensors header's tensors, 1,235,814,400 parameters (model card: 1.23B)",
        hardware="cpu", cpu_minutes=0.2,
        recorded=Recorded(1_235_814_400, "2026-12-06", THIS_CPU),
    ),
    Entry(
        name="qwen2_5_0_5b_params",
        what="Qwen2.5-0.5B (24L, 896, 14 query / 2 key-value heads, q/k/v biases, SwiGLU 4864, "
             "tied head, vocab 151936), counted from the config with jax.eval_shape",
        kind="params", config="configs/llama/qwen2_5_0_5b.py",
        metric="params", target=Target(494_032_768),
        source="Qwen/Qwen2.5-0.5B on the Hugging Face Hub: config.json's shapes and the "
               "safetensors header's tensors, 494,032,768 parameters (model card: 0.49B)",
        hardware="cpu", cpu_minutes=0.2,
        recorded=Recorded(494_032_768, "2026-12-06", THIS_CPU),
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
    # --- short CPU runs of the objectives beyond the GPT (pins: our own numbers) -------------
    Entry(
        name="bert_smoke_mlm",
        what="masked LM: the :smoke BERT (2L, 64 wide, chars, 300 steps of 32 x 64), seed 0; "
             "final val MLM loss (15 % masked)",
        kind="train", config="configs/bert/bert_base.py:smoke",
        overrides={"seed": 0, "train.progress": False},
        metric="val/loss", take="final", target=Target(2.2819, tolerance=0.03),
        pin="our run; experiments/text_objectives.md's claim-1 table has the same run (eval "
            "every 25 steps) at 2.2819 and seeds 0-2 at 2.17-2.29",
        hardware="cpu", cpu_minutes=1,
        recorded=Recorded(2.28188, "2026-12-06", THIS_CPU,
                          note="32 s, load ~1.5 (pretrainx reproduce bert_smoke_mlm)"),
    ),
    Entry(
        name="reward_smoke",
        what="reward model: the :smoke Bradley-Terry model on the 300 committed VADER pairs "
             "(char GPT trunk from scratch, 60 steps), seed 0; final held-out Bradley-Terry "
             "loss on the 60 held-out pairs (ln 2 = 0.693 is a model that learnt nothing)",
        kind="train", config="configs/rlhf/shakespeare_reward.py:smoke",
        overrides={"seed": 0, "train.progress": False},
        metric="val/loss", take="final", target=Target(0.6709, tolerance=0.01),
        pin="our run (experiments/rlhf.md reports the full reward model, not this smoke); a "
            "model that learns nothing scores ln 2 = 0.6931, outside the tolerance",
        hardware="cpu", cpu_minutes=1,
        recorded=Recorded(0.67088, "2026-12-06", THIS_CPU,
                          note="23 s at load ~1.6; 99 s at load ~11 (pretrainx reproduce "
                               "reward_smoke, twice: the same number)"),
    ),
    Entry(
        name="few_step_protocol_floor",
        what="the few-step table's FID protocol on the digits: a feature classifier trained on "
             "the 797 held-out digits, their statistics as reference, the 1,000 training "
             "digits scored against it (the floor); the generator trains 10 steps only",
        kind="train", config="configs/diffusion/digits_few_step.py",
        overrides={"seed": 0, "train.progress": False, "train.steps": 10,
                   "optimizer.decay_steps": 10, "eval.every": 10, "checkpoint.every": 10,
                   "eval.fid_samplers": ("euler:1",)},
        metric="eval/fid_real_floor", take="final", target=Target(6.25, tolerance=0.05),
        pin="our protocol: experiments/few_step.md's table states its floor as 6.25",
        hardware="cpu", cpu_minutes=3,
        recorded=Recorded(6.25811, "2026-12-06", THIS_CPU,
                          note="331 s wall, 81 s user, at load ~13 (other jobs); pretrainx "
                               "reproduce few_step_protocol_floor"),
    ),
    Entry(
        name="few_step_meanflow_short",
        what="the few-step table's protocol, short: MeanFlow on the digits (1.0M UNet, 1,000 "
             "training digits, FID of 1,000 samples against the 797 held out), 800 steps "
             "instead of 2,242, seed 0; FID at 1 step",
        kind="train", config="configs/diffusion/digits_meanflow.py",
        overrides={"seed": 0, "train.progress": False, "train.steps": 800,
                   "optimizer.decay_steps": 800, "eval.every": 800, "checkpoint.every": 800,
                   "eval.fid_samplers": ("meanflow:1",)},
        metric="eval/fid", take="final", target=Target(9.88, tolerance=1.5),
        pin="our run of experiments/few_step.md's protocol, cut to 800 steps (the table: "
            "MeanFlow 1-step FID 6.8 +- 0.4 at 2,242 steps; 300 steps scored 185.6 here)",
        hardware="cpu", cpu_minutes=8,
        recorded=Recorded(9.87997, "2026-12-06", THIS_CPU,
                          note="1,162 s at load ~12 (other jobs), floor 6.258; pretrainx "
                               "reproduce with this entry's steps given as --config overrides"),
    ),
    # --- Fashion-MNIST FID (experiments/diffusion_fashion_mnist.md) ---------------------------
    # Classifier-feature FIDs, not Inception FIDs: no published number compares, so the target
    # is set from the first full-length run.
    Entry(
        name="fmnist_flow_fid",
        what="rectified flow, 6.5M UNet, 30k steps; FID at 32 Euler steps (classifier features)",
        kind="train", config="configs/diffusion/fashion_mnist_flow.py",
        metric="eval/fid", take="final", target=None,
        pin="our protocol, experiments/diffusion_fashion_mnist.md (classifier-feature FID: "
            "no published number compares)",
        hardware="1 GPU", recorded="not yet run at full length",
    ),
    Entry(
        name="fmnist_ddpm_fid",
        what="DDPM, 6.5M UNet, 30k steps; FID with DDIM 50 steps (classifier features)",
        kind="train", config="configs/diffusion/fashion_mnist_ddpm.py",
        metric="eval/fid", take="final", target=None,
        pin="our protocol, experiments/diffusion_fashion_mnist.md (classifier-feature FID: "
            "no published number compares)",
        hardware="1 GPU", recorded="not yet run at full length",
    ),
]
