"""A student's answers to instructions, with the wrapper it was trained with (greedy decoding, batched).

Example:
    >>> from lamini_lm.evaluation.answers import generate_answers
    >>> generate_answers("MBZUAI/LaMini-Flan-T5-248M", ["Name three primary colours."])  # doctest: +SKIP
    ['Red, yellow and blue.']
"""

from __future__ import annotations

import os
from collections.abc import Sequence

__all__ = ["generate_answers"]


def generate_answers(
    model: str | os.PathLike,
    instructions: Sequence[str],
    *,
    wrapper: bool = True,
    max_new_tokens: int = 256,
    batch_size: int = 8,
    device: str | None = None,
    progress: bool = True,
) -> list[str]:
    """Greedy answers of ``model`` to ``instructions``, each wrapped as the student was trained (``wrapper``).

    Decoder-only students see the Alpaca template and answer after ``### Response:``; encoder-decoder students get
    the raw instruction. ``wrapper=False`` gives base models the raw text, as the paper's baselines. This is
    :func:`lamini_lm.generate` with greedy decoding on the evaluation's device.
    """
    from lamini_lm.evaluation.harness import resolve_device
    from lamini_lm.inference import generate, load_student

    lm, tokenizer = load_student(model)
    lm.to(resolve_device(device))
    return generate(
        lm,
        list(instructions),
        tokenizer=tokenizer,
        batch_size=batch_size,
        wrapper=wrapper,
        progress=progress,
        max_new_tokens=max_new_tokens,
        do_sample=False,
    )
