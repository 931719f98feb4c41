"""Recipe families: the recipe side of :mod:`lamini_lm.families` (one registry; this module re-exports it).

A family's record names its recipe config and trainer (``Family.config_cls``, ``Family.trainer_cls``) next to
everything else that differs between families; adding a family is one ``register_family(...)`` call.

Example:
    >>> from lamini_lm.train.registry import get_family, list_families
    >>> list_families()
    ['causal', 'seq2seq']
    >>> get_family("seq2seq").auto_model
    'AutoModelForSeq2SeqLM'
"""

from __future__ import annotations

from lamini_lm.families import Family, get_family, list_families, register_family, unregister_family

RecipeFamily = Family  # the record's name before it held more than the recipe

__all__ = ["Family", "RecipeFamily", "get_family", "list_families", "register_family", "unregister_family"]
