"""BERT-base (Devlin et al. 2019): 12 layers, 768 wide, 12 heads, 110M parameters, masked LM
with RoBERTa's dynamic masking. The model, data and optimiser settings are the BERT preset's
(``text.bert`` in pretrainx/config/text.py), which the other BERT recipes start from too.

  pretrainx tokenizer train --corpus ../shared/data/wikitext-2/valid.txt --kind wordpiece \
      --vocab-size 30522 --out workdirs/tokenizers/wikitext2_wp30k
  pretrainx train --config configs/bert/bert_base.py --workdir workdirs/bert_base   # a GPU
  pretrainx train --config configs/bert/bert_base.py:smoke --workdir /tmp/bert_smoke  # < 1 min CPU
  pretrainx sample --workdir /tmp/bert_smoke --prompt "ROMEO: I [MASK] thee"
`:shards` reads token shards made once with the same tokenizer, instead of the text:
  pretrainx tokenize CORPUS --tokenizer workdirs/tokenizers/wikitext2_wp30k --out workdirs/shards/bert
  pretrainx train --config configs/bert/bert_base.py:shards --workdir workdirs/bert_base

Paper numbers: post-LN, GELU (erf), LayerNorm eps 1e-12, N(0, 0.02) init, dropout 0.1, Adam
lr 1e-4 with 10k warm-up steps and linear decay, weight decay 0.01, batch 256 x 512 tokens,
15 % masking with 80/10/10 replacement. The data here is WikiText-2's validation split (the only
part of it in ../shared/data): a placeholder for a real corpus at this size (``data.path``).
The `:smoke` variant is a 2-layer, 64-wide BERT on Tiny Shakespeare characters ([MASK] and the
other special tokens appended to the 65 characters) with rotary positions on top of the
learned table: with the table alone it stays near the unigram baseline for 300 steps (masked-token
accuracy 0.21 against 0.15), with RoPE it reaches 0.38 (2-core CPU, seed 0).
"""
from pretrainx.config import sections, text, variants


def get_config(arg: str = ""):
    flags = variants.parse(arg, __file__, "smoke", "shards", "shards,smoke")
    c = text.bert(flags)
    c.mlm = sections.mlm()
    if "smoke" in flags:
        c.sample.prompt = "ROMEO: I [MASK]ove thee"
    if "shards" in flags:
        c = text.read_shards(c, text.checkout_path("workdirs", "shards", "bert"))
    return c
