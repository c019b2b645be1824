"""The train loop and what it runs on: the jitted step, the train state, the optimiser, the
mesh and shardings, checkpoints, validation, ``init_from`` and restoring a run for inference.
Nothing here knows an objective's name: objectives come through the registry and their contract."""
