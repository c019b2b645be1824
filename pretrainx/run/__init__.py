"""The run directory and everything written in it: ``rundir`` names every file and reads and
writes ``config.json`` and ``metrics.jsonl``; ``provenance``, the writer's ``lock``,
``preemption`` handling and the metric writers (``metrics``) build on it."""
