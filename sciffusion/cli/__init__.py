"""The Hydra apps ``sciffusion-train``, ``sciffusion-sample`` and ``sciffusion-evaluate``.

Importing this package registers the config schemas and a search-path plugin that adds every
registered domain's ``conf/`` folder to Hydra's search path, so ``domain=NAME`` and the plugin's
experiments work without editing ``conf/``.
"""
from .schema import register

register()
