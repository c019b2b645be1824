"""The command-line flags of the tiny byte-level GPT the robustness tests train (the standard
library's source as text, so no data file is needed; experiments/robustness_probe.py's TINY)."""


def tiny_gpt_flags(steps: int) -> list[str]:
    """``--config.`` overrides that shrink the shakespeare_char smoke to one 32-wide layer on
    bytes, trained ``steps`` steps without evals or a progress bar."""
    return ["--config.data.path=stdlib", "--config.data.max_bytes=100000",
            "--config.data.tokenizer=byte", "--config.model.vocab_size=256",
            "--config.model.num_layers=1", "--config.model.embed_dim=32",
            "--config.model.max_len=32", "--config.data.seq_len=32", "--config.batch_size=16",
            "--config.eval.batch_size=16", f"--config.train.steps={steps}",
            "--config.eval.every=0", "--config.train.progress=False"]
