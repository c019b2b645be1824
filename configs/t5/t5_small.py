"""T5-small pretrained with span corruption (Raffel et al. 2020). Its settings are the T5 preset's
(``text.t5`` in pretrainx/config/text.py); ``t5_base.py`` and ``ul2_small.py`` start from it too.

  pretrainx tokenizer train --corpus ../shared/data/wikitext-2/valid.txt --kind unigram \
      --vocab-size 32128 --out workdirs/tokenizers/wikitext2_uni32k
  pretrainx train --config configs/t5/t5_small.py --workdir workdirs/t5_small          # v1.1, a GPU
  pretrainx train --config configs/t5/t5_small.py:v1_0 --workdir workdirs/t5_small_v10
  pretrainx train --config configs/t5/t5_small.py:smoke --workdir /tmp/t5_smoke        # < 1 min CPU
  pretrainx train --config configs/t5/t5_small.py:cpu --workdir /tmp/t5_cpu            # ~6 min CPU
  pretrainx sample --workdir /tmp/t5_smoke --prompt "ROMEO: I <extra_id_0> thee"
  pretrainx tokenize CORPUS --tokenizer workdirs/tokenizers/wikitext2_uni32k --out workdirs/shards/t5
  pretrainx train --config configs/t5/t5_small.py:shards --workdir workdirs/t5_small   # reads shards

Variants: "" T5-small v1.1 (google/t5-v1_1-small: 8+8 layers, 512 wide, 6 heads of 64, gated-GELU
MLP of 1024, untied output, 76,961,152 parameters); "v1_0" the paper's T5-small (6+6 layers, 8
heads, ReLU MLP of 2048, output tied to the embeddings, 60,506,624 parameters). Paper: inputs 512,
targets 114 (from 568 raw tokens), noise density 0.15, mean span 3, batch 128, Adafactor with
inverse-sqrt LR 0.01 (AdamW here: the runner's optimiser), no dropout in pretraining (v1.1).
The data is WikiText-2's validation split (the only part in ../shared/data): a placeholder for
C4. `:smoke` is a 2+2-layer, 64-wide T5 on Tiny Shakespeare characters, the 3 sentinels it needs
appended after the characters with <extra_id_0> at the top.
"""
from pretrainx.config import sections, text, variants


def get_config(arg: str = ""):
    flags = variants.parse(arg, __file__, "v1_0", "smoke", "cpu", "shards", "shards,smoke")
    c = text.t5(flags)
    c.span = sections.span()
    if "shards" in flags:
        c = text.read_shards(c, text.checkout_path("workdirs", "shards", "t5"))
    return c
