"""Recipe families: a family is a (config, trainer, model class) triple looked up by name.

Adding a family (say, a prefix-LM) touches this one place: ``register_family(...)``.

Example:
    >>> from lamini_lm.train.registry import get_family, list_families
    >>> list_families()
    ['causal', 'seq2seq']
    >>> get_family("seq2seq").auto_model
    'AutoModelForSeq2SeqLM'
"""

from __future__ import annotations

from dataclasses import dataclass

from lamini_lm.train.config import CausalRecipeConfig, Seq2SeqRecipeConfig
from lamini_lm.train.trainers import CausalRecipeTrainer, Seq2SeqRecipeTrainer

__all__ = ["RecipeFamily", "get_family", "list_families", "register_family"]


@dataclass(frozen=True)
class RecipeFamily:
    """What a family is made of. ``name`` is also the ``wrap_instruction`` family of its prompts."""

    name: str
    config_cls: type
    trainer_cls: type
    auto_model: str  # the transformers Auto class that loads its students
    task_type: str  # peft.TaskType name for LoRA


_FAMILIES: dict[str, RecipeFamily] = {}


def register_family(name: str, config_cls: type, trainer_cls: type, auto_model: str, task_type: str) -> RecipeFamily:
    """Register a family under ``name`` (peft's ``register_peft_method`` pattern); returns it."""
    if name in _FAMILIES:
        raise ValueError(f"recipe family {name!r} is already registered")
    family = RecipeFamily(name, config_cls, trainer_cls, auto_model, task_type)
    _FAMILIES[name] = family
    return family


def get_family(name: str) -> RecipeFamily:
    """The family registered as ``name``; a clear error listing the known ones otherwise."""
    try:
        return _FAMILIES[name]
    except KeyError:
        raise ValueError(f"unknown recipe family {name!r}; known: {list_families()}") from None


def list_families() -> list[str]:
    return sorted(_FAMILIES)


register_family("seq2seq", Seq2SeqRecipeConfig, Seq2SeqRecipeTrainer, "AutoModelForSeq2SeqLM", "SEQ_2_SEQ_LM")
register_family("causal", CausalRecipeConfig, CausalRecipeTrainer, "AutoModelForCausalLM", "CAUSAL_LM")
