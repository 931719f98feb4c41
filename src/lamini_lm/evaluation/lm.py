"""``WrappedHFLM``: lm-eval's ``HFLM`` that shows the model each context wrapped as the student was trained.

Importing this module imports lm_eval and registers the class with lm-eval as model type ``"lamini"``, so the
plain lm-eval API and CLI can use it too::

    import lamini_lm.evaluation.lm  # registers "lamini"
    lm_eval.simple_evaluate(model="lamini", model_args="pretrained=runs/lamini-gpt-124m", tasks=["sciq"])

Only the context (the first argument of a ``loglikelihood`` or ``generate_until`` request) changes; everything
else (tokenisation, batching, scoring) is ``HFLM``'s. ``loglikelihood_rolling`` (perplexity of a whole text, no
instruction in it) is left raw.
"""

from __future__ import annotations

import dataclasses
import logging

from lm_eval.api.registry import register_model
from lm_eval.models.huggingface import HFLM

from lamini_lm.families import Family, get_family

__all__ = ["WrappedHFLM"]

logger = logging.getLogger(__name__)


@register_model("lamini")
class WrappedHFLM(HFLM):
    """``HFLM`` with the LaMini wrapper: Alpaca's template for ``family="causal"``, raw text for ``"seq2seq"``, a
    registered family's own wrapper otherwise (:mod:`lamini_lm.families`).

    ``family`` (a name or a Family) also gives lm-eval's model kwargs (``Family.lm_eval_kwargs``: the
    ``backend``); ``wrap=False`` scores raw contexts, as the paper did for base models.

    Example:
        >>> lm = WrappedHFLM(pretrained="MBZUAI/LaMini-GPT-124M", family="causal", device="cpu")  # doctest: +SKIP
        >>> lm.wrap_context("Question: Is the sky blue?\\nAnswer:")  # doctest: +SKIP
        'Below is an instruction ... ### Instruction:\\nQuestion: Is the sky blue?\\nAnswer:\\n\\n### Response:'
    """

    def __init__(self, *args, family: str | Family = "causal", wrap: bool = True, **kwargs):
        record = get_family(family)
        # lm-eval's CLI passes model_args as strings.
        wrap = wrap if isinstance(wrap, bool) else str(wrap).lower() not in ("false", "0", "no")
        for key, value in record.lm_eval_kwargs.items():
            kwargs.setdefault(key, value)
        super().__init__(*args, **kwargs)
        self.family_record = record
        self.family: str = record.name
        self.wrap = wrap

    def wrap_context(self, context: str) -> str:
        """What the model sees for a request's context."""
        return self.family_record.wrap(context) if self.wrap else context

    def _wrapped(self, requests):
        # Copies, not in-place edits: lm-eval hands the same Instance several times when a request repeats, and
        # its logged samples keep the task's own text.
        return [dataclasses.replace(r, arguments=(self.wrap_context(r.args[0]), *r.args[1:])) for r in requests]

    def loglikelihood(self, requests, disable_tqdm: bool = False):
        return super().loglikelihood(self._wrapped(requests), disable_tqdm=disable_tqdm)

    def generate_until(self, requests, disable_tqdm: bool = False):
        return super().generate_until(self._wrapped(requests), disable_tqdm=disable_tqdm)

    def get_model_info(self) -> dict:
        return {**super().get_model_info(), "lamini_family": self.family, "lamini_wrapper": self.wrap}
