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

import logging

from transformers import Seq2SeqTrainer, Trainer

from lamini_lm.families import STUDENT_TAGS

__all__ = ["CausalRecipeTrainer", "Seq2SeqRecipeTrainer"]

logger = logging.getLogger(__name__)


class _LaMiniCardMixin:
    def create_model_card(self, *args, tags: str | list[str] | None = None, **kwargs):
        tags = [tags] if isinstance(tags, str) else list(tags or [])
        return super().create_model_card(*args, tags=sorted(set(tags) | set(STUDENT_TAGS)), **kwargs)


class _BatchingMixin:
    """How training batches are made (``lamini_lm.train.packing``): with ``packing_collator`` set (``packing:
    true``) training batches are packed by it while evaluation keeps ``data_collator``'s padded ones; with
    ``batch_by_tokens: true`` the DataLoader draws batches from a
    :class:`~lamini_lm.train.packing.TokenBudgetBatchSampler` (``batch_plan`` says what it made). Otherwise the
    Trainer's own."""

    packing_collator = None
    batch_plan: dict | None = None

    def get_train_dataloader(self):
        padded = self.data_collator
        if self.packing_collator is not None:
            self.data_collator = self.packing_collator
        try:
            if not getattr(self.args, "batch_by_tokens", False):
                return super().get_train_dataloader()
            return self._token_budget_dataloader()
        finally:
            self.data_collator = padded

    def _token_budget_dataloader(self):
        from torch.utils.data import DataLoader

        from lamini_lm.families import get_family
        from lamini_lm.train.packing import TokenBudgetBatchSampler, row_lengths

        dataset = self._remove_unused_columns(self.train_dataset, description="Training")
        lengths = row_lengths(dataset, get_family(self.args.family).decoder_only)
        sampler = TokenBudgetBatchSampler(
            lengths, self.args.per_device_train_batch_size, self.args.max_tokens_per_batch, seed=self.args.seed
        )
        self.batch_plan = plan = sampler.summary()
        if self.is_world_process_zero():
            logger.warning(
                "batch_by_tokens: %d tokens per batch (padding included), %d batches per epoch of %.2f examples on "
                "average (%d to %d): effective batch %.1f examples on average; padding %.1f%%",
                plan["max_tokens_per_batch"],
                plan["batches_per_epoch"],
                plan["examples_per_batch_mean"],
                plan["examples_per_batch_min"],
                plan["examples_per_batch_max"],
                plan["examples_per_batch_mean"] * self.args.gradient_accumulation_steps * self.args.world_size,
                100 * plan["padding_waste"],
            )
        loader = DataLoader(
            dataset,
            batch_sampler=sampler,
            collate_fn=self.data_collator,
            num_workers=self.args.dataloader_num_workers,
            pin_memory=self.args.dataloader_pin_memory,
        )
        return self.accelerator.prepare(loader)


class Seq2SeqRecipeTrainer(_LaMiniCardMixin, _BatchingMixin, Seq2SeqTrainer):
    """``Seq2SeqTrainer`` for encoder-decoder students (the paper trained T5/Flan-T5 with it)."""


class CausalRecipeTrainer(_LaMiniCardMixin, _BatchingMixin, Trainer):
    """``Trainer`` for decoder-only students; response-only loss comes from the -100 prompt labels."""
