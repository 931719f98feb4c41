"""A student's answers to instructions, with the wrapper it was trained with (greedy decoding, batched).

Example:
    >>> from lamini_lm.evaluation.answers import generate_answers
    >>> generate_answers("MBZUAI/LaMini-Flan-T5-248M", ["Name three primary colours."])  # doctest: +SKIP
    ['Red, yellow and blue.']
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence

from lamini_lm.prompts import Family, wrap_instruction

__all__ = ["generate_answers"]

logger = logging.getLogger(__name__)


def generate_answers(
    model: str | os.PathLike,
    instructions: Sequence[str],
    *,
    family: Family | None = None,
    wrapper: bool = True,
    max_new_tokens: int = 256,
    batch_size: int = 8,
    device: str | None = None,
    progress: bool = True,
) -> list[str]:
    """Greedy answers of ``model`` to ``instructions``, each wrapped as the student was trained (``wrapper``).

    Decoder-only students see the Alpaca template and answer after ``### Response:``; encoder-decoder students get
    the raw instruction. ``wrapper=False`` gives base models the raw text, as the paper's baselines.
    """
    import torch
    from tqdm.auto import tqdm
    from transformers import AutoModelForCausalLM, AutoModelForSeq2SeqLM, AutoTokenizer

    from lamini_lm.evaluation.harness import detect_family, resolve_device

    family = family or detect_family(model)
    device = resolve_device(device)
    tokenizer = AutoTokenizer.from_pretrained(str(model))
    auto = AutoModelForSeq2SeqLM if family == "seq2seq" else AutoModelForCausalLM
    lm = auto.from_pretrained(str(model)).to(device).eval()
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    if family == "causal":
        tokenizer.padding_side = "left"  # generation continues right after each prompt
    prompts = [wrap_instruction(i, family) if wrapper else i for i in instructions]
    max_input = min(getattr(tokenizer, "model_max_length", 512) or 512, 2048)
    if family == "causal":
        positions = getattr(lm.config, "max_position_embeddings", None) or getattr(lm.config, "n_positions", None)
        if positions:
            max_input = max(1, min(max_input, positions - max_new_tokens))
    answers: list[str] = []
    bar = tqdm(total=len(prompts), desc="student answers", unit="answer", disable=not progress)
    for start in range(0, len(prompts), batch_size):
        batch = prompts[start : start + batch_size]
        enc = tokenizer(batch, return_tensors="pt", padding=True, truncation=True, max_length=max_input).to(device)
        with torch.no_grad():
            out = lm.generate(
                **enc,
                max_new_tokens=max_new_tokens,
                do_sample=False,
                pad_token_id=tokenizer.pad_token_id,
                eos_token_id=tokenizer.eos_token_id,
            )
        if family == "causal":
            out = out[:, enc["input_ids"].shape[1] :]
        answers.extend(t.strip() for t in tokenizer.batch_decode(out, skip_special_tokens=True))
        bar.update(len(batch))
    bar.close()
    return answers
