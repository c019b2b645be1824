"""Commands that sit on top of the runner: sweeps, the reproduction registry, plots, the n-gram
baseline, tokenizer training."""
