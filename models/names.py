"""The registered names that the command line and the flows' forms offer, without
importing torch (``synthloop --help`` stays instant). :mod:`models.registry` holds the
components themselves; ``tests/test_names.py`` keeps the two equal, so a new method is
its module, its ``@register_method`` and one entry here."""

from __future__ import annotations

#: domain-adaptation methods (``models.registry.list_methods()``)
METHODS: tuple[str, ...] = ("source_only", "dann", "daln", "iwdan", "rsd")
