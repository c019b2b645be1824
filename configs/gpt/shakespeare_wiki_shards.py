"""A byte-level GPT on a mixture of two shards folders: Tiny Shakespeare (0.7) and WikiText-2's
validation text (0.3), each row drawing its folder with its weight (pretrainx/data/mixtures.py).

  pretrainx train --config configs/gpt/shakespeare_wiki_shards.py:smoke --workdir workdirs/mix

Loading this config makes the two folders the first time, with `pretrainx tokenize` (byte
tokenizer), into workdirs/shards/ of this checkout from ../shared/data; later loads find them.
The same, by hand, for your own corpora:

  pretrainx tokenize CORPUS_A --tokenizer TOK --out shards/a
  pretrainx tokenize CORPUS_B --tokenizer TOK --out shards/b
  pretrainx train --config configs/gpt/shakespeare_wiki_shards.py --workdir workdirs/ab \
      --config.data.sources=a:shards/a:0.5,b:shards/b:0.5 --config.model.vocab_size=VOCAB

Every folder must hold the same tokenizer. `--config.data.sources=...` on a resume changes the
mixture from the resume's step on; the change is logged and kept in provenance.json.
`:smoke` is the shakespeare_char smoke's GPT (2 layers, 128 wide, 400 steps) on bytes.
"""

from pretrainx.config import base, text, variants
from pretrainx.tools import tokenize_corpus

#: name -> (text file of the shared data, what separates its documents)
CORPORA = {"plays": (text.SHAKESPEARE, "\n\n"), "wiki": (text.WIKITEXT, "\n \n")}
WEIGHTS = {"plays": 0.7, "wiki": 0.3}


def byte_shards(name: str) -> str:
    """The byte-level shards folder of ``CORPORA[name]``, tokenized now unless it is there."""
    source, separator = CORPORA[name]
    return tokenize_corpus.tokenize_once(
        text.checkout_path("workdirs", "shards", f"{name}_byte"),
        [source, "--tokenizer", "byte", "--shard-mb", "1", "--doc-separator", separator,
         "--val-fraction", "0.05"])


def get_config(arg: str = ""):
    flags = variants.parse(arg, __file__, "smoke")
    c = text.gpt(flags)
    c.data = text.shards_data(seq_len=c.data.seq_len)
    c.data.sources = ",".join(f"{name}:{byte_shards(name)}:{w}" for name, w in WEIGHTS.items())
    return base.change(c, {"model.vocab_size": 256})      # bytes
