"""Evaluator plug-ins an objective returns from ``evaluators()`` (see ``objectives/base.py``):
``fid`` (Fréchet distance on a cached feature extractor, sample grids) and its default extractor
``fid_classifier``. Text samples live beside the causal LM (``objectives/clm.py``)."""
