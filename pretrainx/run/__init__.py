"""The run directory and everything written in it: ``config.json`` and ``metrics.jsonl`` (the
record), ``provenance.json``, the writer's lock, preemption handling and the metric writers."""
