"""Answer instructions with a student, applying the prompt wrapper its family was trained with.

Encoder-decoder students take the raw instruction; decoder-only students take Alpaca's no-input template
(:data:`lamini_lm.prompts.ALPACA_WRAPPER`) and only the text after ``### Response:`` is their answer. The family
(:mod:`lamini_lm.families`) is detected from the model's config, so a user never has to know it.

A dialogue (a list of ``{role, content}`` ending on a user turn) is answered the way its family learnt dialogues
(:meth:`lamini_lm.families.Family.dialogue_prompt`): the next assistant turn.

Example:
    >>> import lamini_lm
    >>> lamini_lm.generate("MBZUAI/LaMini-Flan-T5-77M", ["Name three primary colours."])  # doctest: +SKIP
    ['Red, yellow and blue.']
    >>> lamini_lm.generate("runs/lamini-gpt-124m-chat", [{"role": "user", "content": "Name a colour."},
    ...     {"role": "assistant", "content": "Blue."}, {"role": "user", "content": "Another?"}])  # doctest: +SKIP
    'Red.'
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from typing import Any, overload

from lamini_lm.families import detect_family, get_family, lengths

__all__ = ["generate", "load_student"]

logger = logging.getLogger(__name__)

RESPONSE_MARKER = "### Response:"


def load_student(model: str | os.PathLike, **from_pretrained_kwargs):
    """``(model, tokenizer)`` for a local folder or Hub id, with the Auto class its config calls for."""
    import transformers
    from transformers import AutoConfig, AutoTokenizer

    config = AutoConfig.from_pretrained(str(model))
    auto = getattr(transformers, detect_family(config).auto_model)
    return auto.from_pretrained(str(model), **from_pretrained_kwargs), AutoTokenizer.from_pretrained(str(model))


@overload
def generate(model: Any, instructions: str, *, tokenizer: Any = None, batch_size: int = 8, **kw: Any) -> str: ...
@overload
def generate(
    model: Any, instructions: Sequence[str], *, tokenizer: Any = None, batch_size: int = 8, **kw: Any
) -> list[str]: ...
def generate(
    model,
    instructions,
    *,
    tokenizer=None,
    batch_size: int = 8,
    wrapper: bool = True,
    progress: bool = False,
    device: str | None = None,
    **generate_kwargs,
):
    """The student's responses to ``instructions`` (a list of strings, or one string for one response).

    An item may also be a dialogue, a list of ``{"role", "content"}`` ending on a user turn (one dialogue alone
    gives one response, a list of dialogues a list): the student writes the next assistant turn, seeing the
    dialogue as its family's dialogue training did; a history too long for the model loses its oldest turns.

    ``model`` is a local folder, a Hub id, or a loaded ``PreTrainedModel`` (then pass ``tokenizer``, or it is
    loaded from ``model.name_or_path``). ``generate_kwargs`` go to ``model.generate`` (e.g. ``max_new_tokens``,
    ``do_sample``); the model's generation config supplies the rest, with ``max_new_tokens=256`` if it sets no
    length. Batches are left-padded for decoder-only students, and prompts are truncated so prompt plus new
    tokens fit the model's positions: a wrapped prompt loses the end of its instruction, never the wrapper's tail
    (:meth:`lamini_lm.families.Family.fit_prompt`; the count is logged), so the model still answers after
    ``### Response:``. ``wrapper=False`` feeds the raw text (base models, as the paper's baselines), truncated from
    the right; ``progress=True`` shows a tqdm bar. ``device`` moves the model there first (``"cuda"``, ``"cpu"``;
    ``"auto"``: cuda if available). Greedy answers as the judge asks them: ``do_sample=False``.
    """
    import torch
    from tqdm.auto import tqdm

    if isinstance(model, (str, os.PathLike)):
        model, loaded_tokenizer = load_student(model)
        tokenizer = tokenizer or loaded_tokenizer
    elif tokenizer is None:
        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(model.name_or_path)
    if device is not None:
        model.to("cuda" if device == "auto" and torch.cuda.is_available() else "cpu" if device == "auto" else device)
    single = isinstance(instructions, str) or _is_dialogue(instructions)
    instructions = [instructions] if single else list(instructions)
    family = detect_family(model)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    gen_config = model.generation_config
    if "max_new_tokens" not in generate_kwargs and "max_length" not in generate_kwargs:
        generate_kwargs["max_new_tokens"] = gen_config.max_new_tokens or 256
    generate_kwargs.setdefault("pad_token_id", gen_config.pad_token_id or tokenizer.pad_token_id)

    max_input = min(getattr(tokenizer, "model_max_length", 2048) or 2048, 2048)
    positions = getattr(model.config, "max_position_embeddings", None) or getattr(model.config, "n_positions", None)
    if family.decoder_only and positions and "max_new_tokens" in generate_kwargs:
        max_input = max(1, min(max_input, positions - generate_kwargs["max_new_tokens"]))

    model.eval()
    responses: list[str] = []
    padding_side = tokenizer.padding_side
    bar = tqdm(total=len(instructions), desc="student answers", unit="answer", disable=not progress)
    truncated = 0
    for start in range(0, len(instructions), batch_size):
        texts = instructions[start : start + batch_size]
        dialogue = any(not isinstance(text, str) for text in texts)
        if dialogue:  # a dialogue is rendered as its family learnt dialogues (wrapper or not)
            cfg = lengths(max_source_length=max_input)
            prompts = [
                family.dialogue_prompt(tokenizer, list(t), cfg)
                if not isinstance(t, str)
                else family.wrap(t)
                if wrapper
                else t
                for t in texts
            ]
        elif wrapper:
            fitted = [family.fit_prompt(tokenizer, text, max_input) for text in texts]
            prompts = [prompt for prompt, _ in fitted]
            truncated += sum(cut for _, cut in fitted)
        else:
            prompts = texts
        # Decoder-only: new tokens must follow every prompt directly, so pad on the left (the caller's
        # tokenizer is left as it was).
        tokenizer.padding_side = "left" if family.decoder_only else padding_side
        truncation_side = tokenizer.truncation_side
        if dialogue:
            tokenizer.truncation_side = "left"
        try:
            batch = tokenizer(prompts, return_tensors="pt", padding=True, truncation=True, max_length=max_input)
            batch = batch.to(model.device)
        finally:
            tokenizer.padding_side = padding_side
            tokenizer.truncation_side = truncation_side
        with torch.no_grad():
            output = model.generate(**batch, **generate_kwargs)
        if family.decoder_only:
            output = output[:, batch["input_ids"].shape[1] :]  # the prompt ends with the wrapper (### Response:)
        for text in tokenizer.batch_decode(output, skip_special_tokens=True):
            responses.append(family.response(text))
        bar.update(len(texts))
    bar.close()
    if truncated:
        logger.warning(
            "%d of %d instructions were cut to fit %d prompt tokens (the wrapper's tail kept)",
            truncated,
            len(instructions),
            max_input,
        )
    return responses[0] if single else responses


def _is_dialogue(item: Any) -> bool:
    """Whether ``item`` is one dialogue (a list of ``{role, content}`` dicts), not a list of instructions."""
    return isinstance(item, (list, tuple)) and bool(item) and all(isinstance(m, dict) for m in item)


def _response_only(text: str) -> str:
    """A causal (Alpaca-wrapped) student's answer: what it wrote before starting a new ``### Instruction:`` turn."""
    return get_family("causal").response(text)
