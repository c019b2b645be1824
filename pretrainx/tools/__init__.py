"""Commands that sit on top of the runner: sweeps, the reproduction registry (``registry.py``,
each number a published ``source`` or our own ``pin``), benchmarks of a train step (``bench``,
``flops``, ``profile``), plots, the n-gram baseline, tokenizer training."""
