"""Configs: every default once, family presets, variants, loading and start-up checks.

``base.py`` the runner's sections (optimizer, train, eval, checkpoint, init_from, mesh);
``defaults.py`` fills the fields a config lacks (an old run's ``config.json``) from the presets; ``text.py`` / ``images.py`` the family
presets (GPT, BERT, T5; UNet, DiT and the image objectives' sections); ``sections.py`` the other
objectives' sections; ``variants.py`` the one ``path.py:flag,flag`` scheme; ``load.py`` reads a
recipe file and applies overrides; ``check.py`` the values checked when a run starts. The
recipes themselves are in ``configs/`` of a checkout.
"""
