"""The two recipe trainers: transformers' own, with the LaMini tags on the model card and nothing else changed.

Everything that differs between families happens before the Trainer sees a batch (tokenisation, label masking,
truncation, padding); checkpoints, resume, logging, ``report_to``, mixed precision and ``accelerate launch``
stay the Trainer's.

Example:
    >>> from transformers import Seq2SeqTrainer
    >>> from lamini_lm.train.trainers import Seq2SeqRecipeTrainer
    >>> issubclass(Seq2SeqRecipeTrainer, Seq2SeqTrainer)
    True
"""

from __future__ import annotations

from transformers import Seq2SeqTrainer, Trainer

from lamini_lm.families import STUDENT_TAGS

__all__ = ["CausalRecipeTrainer", "Seq2SeqRecipeTrainer"]


class _LaMiniCardMixin:
    def create_model_card(self, *args, tags: str | list[str] | None = None, **kwargs):
        tags = [tags] if isinstance(tags, str) else list(tags or [])
        return super().create_model_card(*args, tags=sorted(set(tags) | set(STUDENT_TAGS)), **kwargs)


class Seq2SeqRecipeTrainer(_LaMiniCardMixin, Seq2SeqTrainer):
    """``Seq2SeqTrainer`` for encoder-decoder students (the paper trained T5/Flan-T5 with it)."""


class CausalRecipeTrainer(_LaMiniCardMixin, Trainer):
    """``Trainer`` for decoder-only students; response-only loss comes from the -100 prompt labels."""
