"""Akeru's settings.

- ``declarations``: every setting declared once (name, type, default, one line of documentation);
  pure, standard library only, so ``worker.settings`` and ``akeru.domain`` may import it.
- ``accessor``: ``akeru_settings``, reading Django's settings and falling back to the declared
  defaults.
- ``docs``: ``python -m akeru.settings.docs > docs/configuration.md`` writes the configuration
  reference from the declarations.

This ``__init__`` imports nothing, so importing the declarations never imports Django.
"""
