"""Model families: everything that differs between a seq2seq and a causal student, in one record per family.

A :class:`Family` says how a student of that family is loaded (Auto class, PEFT task type), what it sees (the
prompt wrapper, SPEC section 6), how a training row is tokenised and its labels masked, how its batches are
padded, how lm-eval scores it, how it is trained (recipe config and trainer), how its answer is read back, and
what its model card says (pipeline tag, description, usage snippet). Training, inference, evaluation and
publishing ask this registry and never test a family's name, so a family registered here (peft's
``register_peft_method`` pattern) is trained, answered, evaluated and published with no other module changed.

This module imports neither torch nor transformers: classes that need them are named as ``"module:attr"``
strings and imported when first used.

Example:
    >>> from lamini_lm.families import detect_family, get_family, list_families
    >>> list_families()
    ['causal', 'seq2seq']
    >>> get_family("seq2seq").wrap("Name a colour.")
    'Name a colour.'
    >>> detect_family({"is_encoder_decoder": True}).pipeline_tag
    'text2text-generation'

Registering a family (a decoder trained on a chat-style wrapper; later registrations are asked first by
:func:`detect_family`, so a specific family wins over the built-in catch-all ``causal``)::

    import dataclasses
    from lamini_lm.families import get_family, register_family

    register_family(dataclasses.replace(
        get_family("causal"),
        name="chat",
        template="<|user|>\\n{instruction}\\n<|assistant|>\\n",
        stop_text="<|user|>",
        matches=lambda config: getattr(config, "lamini_family", None) == "chat",
        card_note="This is a decoder-only student trained on a chat-style wrapper; the snippets above apply it.",
    ))
"""

from __future__ import annotations

import dataclasses
import importlib
import json
import os
from collections.abc import Callable, Mapping
from types import SimpleNamespace
from typing import Any

from lamini_lm.prompts import ALPACA_WRAPPER, prompt_hash

__all__ = [
    "IGNORE_INDEX",
    "STUDENT_TAGS",
    "Family",
    "check_model_family",
    "decoder_only_dialogue_prompt",
    "decoder_only_row",
    "decoder_only_usage",
    "detect_family",
    "encoder_decoder_dialogue_prompt",
    "encoder_decoder_row",
    "encoder_decoder_usage",
    "family_name",
    "get_family",
    "lengths",
    "list_families",
    "register_family",
    "tokenize_decoder_only",
    "tokenize_decoder_only_dialogue",
    "tokenize_encoder_decoder",
    "tokenize_encoder_decoder_dialogue",
    "tokenizer_adds_bos",
    "unregister_family",
]

IGNORE_INDEX = -100
# The tags every student card carries, whichever family: the Trainer-written cards and lamini-lm's own.
STUDENT_TAGS = ("lamini-lm", "distillation", "instruction-tuning")


def _resolve(obj: Any) -> Any:
    """``obj`` itself, or the attribute a ``"module:attr"`` string names (imported now)."""
    if isinstance(obj, str) and ":" in obj:
        module, attr = obj.split(":", 1)
        return getattr(importlib.import_module(module), attr)
    return obj


@dataclasses.dataclass(frozen=True)
class Family:
    """What a model family is made of. ``name`` is what recipes (``family: NAME``), ``wrap_instruction`` and
    ``lamini-lm evaluate --family`` call it.

    Callables and classes may be given as ``"module:attr"`` strings, imported on first use.
    """

    name: str
    auto_model: str  # transformers Auto class that loads its students, e.g. "AutoModelForCausalLM"
    task_type: str  # peft.TaskType name for LoRA, e.g. "CAUSAL_LM"
    lm_eval_kwargs: Mapping[str, Any] = dataclasses.field(hash=False)  # HFLM kwargs, e.g. {"backend": "causal"}
    pipeline_tag: str  # the Hub's pipeline tag on its cards
    description: str  # "encoder-decoder" / "decoder-only", in the card's prose
    template: str | None  # the wrapper, with "{instruction}"; None: the raw instruction
    decoder_only: bool  # prompt and answer in one sequence: left padding, the answer follows the prompt
    matches: Callable[[Any], bool]  # config (attribute access; a config.json dict is wrapped) -> is this family
    tokenize_fn: Callable | str  # (family, tokenizer, instruction, response, cfg, **kw) -> row dict
    usage_fn: Callable | str  # (family, repo_id) -> the card's "How to use" block
    card_note: str  # the card's paragraph on what the student expects as input
    recipe_config: type | str  # recipe config (a TrainingArguments subclass); ``config_cls`` resolves it
    recipe_trainer: type | str  # recipe trainer; ``trainer_cls`` resolves it
    # (tokenizer, model=, pad_to_multiple_of=) -> a data collator
    collator_factory: Callable | str = "lamini_lm.train.data:DataCollatorForRecipes"
    compute_metrics: Callable | str | None = None  # (tokenizer) -> Trainer compute_metrics, with predict_with_generate
    stop_text: str | None = None  # a decoded answer ends where this starts (the next turn the model invents)
    # (family, tokenizer, messages, cfg, **kw) -> training rows of one dialogue; None: the family learns no dialogues
    tokenize_dialogue_fn: Callable | str | None = None
    # (family, tokenizer, messages, cfg) -> what the student sees to write the next assistant turn
    dialogue_prompt_fn: Callable | str | None = None
    # (tokenizer, model=, max_row_tokens=, one_row=) -> a padding-free collator that packs a batch's rows (position
    # ids restarting per example, no attention across examples); None: this family cannot pack (``packing: true``
    # is refused for it)
    packing_collator_factory: Callable | str | None = None

    def __post_init__(self):
        if self.template is not None and "{instruction}" not in self.template:
            raise ValueError(f"family {self.name!r}: template must contain '{{instruction}}'")

    @property
    def prompt_hash(self) -> str | None:
        """The wrapper's version id (:func:`lamini_lm.prompts.prompt_hash`), None for the raw instruction."""
        return prompt_hash(self.template) if self.template is not None else None

    def wrap(self, instruction: str) -> str:
        """What a student of this family sees for ``instruction`` (training, inference and evaluation alike)."""
        return instruction if self.template is None else self.template.format(instruction=instruction)

    def fit_prompt(self, tokenizer, instruction: str, max_tokens: int) -> tuple[str, bool]:
        """``(prompt, truncated)``: :meth:`wrap` of ``instruction``, cut from the end of the instruction until the
        prompt is at most ``max_tokens`` tokens (with the tokenizer's special tokens), so a long prompt never loses
        the wrapper's tail (Alpaca's ``### Response:``), as in training (:func:`decoder_only_row`). Raw-instruction
        families are returned as they are: the tokenizer's own right truncation cuts only instruction text."""
        prompt = self.wrap(instruction)
        if self.template is None:
            return prompt, False
        over = len(tokenizer(prompt)["input_ids"]) - max_tokens
        if over <= 0:
            return prompt, False
        ids = tokenizer(instruction, add_special_tokens=False)["input_ids"]
        keep = len(ids) - over
        while keep > 0:  # decoding and re-encoding can merge differently at the cut: shorten until it fits
            prompt = self.wrap(tokenizer.decode(ids[:keep], skip_special_tokens=True))
            over = len(tokenizer(prompt)["input_ids"]) - max_tokens
            if over <= 0:
                return prompt, True
            keep -= over
        return self.wrap(""), True

    def response(self, text: str) -> str:
        """The answer in a decoded generation: the text before ``stop_text`` (a new turn), stripped."""
        if self.stop_text:
            text = text.split(self.stop_text)[0]
        return text.strip()

    def tokenize(self, tokenizer, instruction: str, response: str, cfg, **kw) -> dict:
        """One training row (``input_ids``, ``attention_mask``, ``labels``, ``length``, truncation flags)."""
        return _resolve(self.tokenize_fn)(self, tokenizer, instruction, response, cfg, **kw)

    def tokenize_dialogue(self, tokenizer, messages: list[dict[str, str]], cfg, **kw) -> list[dict]:
        """Training rows of one dialogue (``[{role, content}]``, user first, alternating, ending on an assistant
        turn): one row with the loss on every assistant turn (decoder-only), or one (history -> next assistant turn)
        row per assistant turn (encoder-decoder)."""
        if self.tokenize_dialogue_fn is None:
            raise ValueError(f"model family {self.name!r} has no dialogue tokeniser (tokenize_dialogue_fn)")
        return _resolve(self.tokenize_dialogue_fn)(self, tokenizer, messages, cfg, **kw)

    def dialogue_prompt(self, tokenizer, messages: list[dict[str, str]], cfg=None) -> str:
        """What a student of this family sees to answer the last user turn of ``messages`` (inference and the
        judge): the same rendering its dialogue training used."""
        if self.dialogue_prompt_fn is None:
            raise ValueError(f"model family {self.name!r} cannot answer a dialogue (dialogue_prompt_fn)")
        return _resolve(self.dialogue_prompt_fn)(self, tokenizer, messages, cfg)

    def collator(self, tokenizer, model=None, pad_to_multiple_of: int | None = None):
        """The data collator that pads this family's rows per batch."""
        return _resolve(self.collator_factory)(tokenizer, model=model, pad_to_multiple_of=pad_to_multiple_of)

    @property
    def can_pack(self) -> bool:
        """Whether ``packing: true`` is possible for this family (it has a packing collator)."""
        return self.packing_collator_factory is not None

    def packing_collator(self, tokenizer, model=None, max_row_tokens: int | None = None, one_row: bool = False):
        """The padding-free collator that packs this family's rows (``max_row_tokens`` per row; ``one_row``: the
        whole batch in one row, for flash-attention's variable-length kernels)."""
        if self.packing_collator_factory is None:
            raise ValueError(f"model family {self.name!r} cannot pack its batches")
        factory = _resolve(self.packing_collator_factory)
        return factory(tokenizer, model=model, max_row_tokens=max_row_tokens, one_row=one_row)

    def metrics(self, tokenizer):
        """The Trainer's ``compute_metrics`` for generated eval predictions, or None if the family has none."""
        return _resolve(self.compute_metrics)(tokenizer) if self.compute_metrics else None

    def usage_snippet(self, repo_id: str) -> str:
        """The model card's usage block for ``repo_id``: code that works as pasted."""
        return _resolve(self.usage_fn)(self, repo_id)

    @property
    def config_cls(self) -> type:
        """The recipe config class (imported on first use)."""
        return _resolve(self.recipe_config)

    @property
    def trainer_cls(self) -> type:
        """The recipe trainer class (imported on first use)."""
        return _resolve(self.recipe_trainer)


_FAMILIES: dict[str, Family] = {}


def register_family(family: Family | None = None, /, **fields: Any) -> Family:
    """Register ``family`` (or ``Family(**fields)``) under its name; returns it. A name is registered once."""
    family = family if family is not None else Family(**fields)
    if family.name in _FAMILIES:
        raise ValueError(f"model family {family.name!r} is already registered")
    _FAMILIES[family.name] = family
    return family


def unregister_family(name: str) -> Family:
    """Remove and return the family registered as ``name`` (tests and plugins that clean up after themselves)."""
    return _FAMILIES.pop(get_family(name).name)


def get_family(name: str | Family) -> Family:
    """The family registered as ``name`` (a Family is returned as is); a clear error listing the known ones."""
    if isinstance(name, Family):
        return name
    try:
        return _FAMILIES[name]
    except (KeyError, TypeError):
        raise ValueError(f"unknown model family {name!r}; known: {', '.join(list_families())}") from None


def list_families() -> list[str]:
    return sorted(_FAMILIES)


def family_name(family: str | Family) -> str:
    """The registered name of ``family`` (a name or a Family); raises for an unknown name."""
    return get_family(family).name


class _ConfigView:
    """Attribute access on a ``config.json`` dict, so ``matches`` sees one shape for dicts and configs."""

    def __init__(self, data: Mapping):
        self._data = dict(data)

    def __getattr__(self, name: str):
        try:
            return self.__dict__["_data"][name]
        except KeyError:
            raise AttributeError(name) from None


def detect_family(model: str | os.PathLike | Mapping | Any) -> Family:
    """The registered family whose ``matches`` accepts ``model``'s config; the latest registration is asked first.

    ``model`` is a folder, a Hub id, a ``PretrainedConfig``, a model (anything with a ``.config``) or the dict
    read from a ``config.json``.
    """
    if isinstance(model, Mapping):
        config: Any = _ConfigView(model)
    elif isinstance(model, (str, os.PathLike)):
        from transformers import AutoConfig

        config = AutoConfig.from_pretrained(str(model))
    else:
        config = getattr(model, "config", model)
    for family in reversed(list(_FAMILIES.values())):
        if family.matches(config):
            return family
    raise ValueError(f"no registered model family matches {model!r}; known: {', '.join(list_families())}")


def check_model_family(model: str | os.PathLike, family: str | Family, flag: str, hint: str | None = None) -> None:
    """Refuse, in one line naming ``flag``, a model whose config is not of ``family`` (a GPT-2 for a seq2seq
    student, say), before its weights load; ``transformers`` would raise a page-long ValueError instead. ``hint``
    ends the line (default: the ``--family`` that fits the model)."""
    from transformers import AutoConfig

    from lamini_lm.errors import UsageError

    family = get_family(family)
    try:
        config = AutoConfig.from_pretrained(str(model))
    except (OSError, ValueError):  # no config.json (an adapter folder, say): from_pretrained decides
        return
    if family.matches(config):
        return
    other = next((f for f in reversed(list(_FAMILIES.values())) if f.matches(config)), None)
    what = f"a {config.model_type} model" + (f" ({other.description})" if other else "")
    if hint is None:
        hint = f"train it with --family {other.name}" if other else f"give a {family.description} model"
    raise UsageError(f"{flag} {model}: {what}, but the {family.name} family takes {family.description} models; {hint}")


# --- tokenisation and label masking ---------------------------------------------------------------------------


def _ids(tokenizer, text: str) -> list[int]:
    return tokenizer(text, add_special_tokens=False)["input_ids"]


def _cut_with_eos(ids: list[int], budget: int, eos: int) -> tuple[list[int], bool]:
    """``ids`` + EOS in at most ``budget`` tokens; cut the text, never the EOS. Returns (ids, was_cut)."""
    if len(ids) + 1 <= budget:
        return ids + [eos], False
    return ids[: max(budget - 1, 0)] + [eos], True


def tokenizer_adds_bos(tokenizer) -> bool:
    """Whether the tokenizer's own special tokens start with BOS (LLaMA does, GPT-2 does not)."""
    if tokenizer.bos_token_id is None:
        return False
    return tokenizer("x")["input_ids"][:1] == [tokenizer.bos_token_id]


def encoder_decoder_row(tokenizer, source: str, response: str, max_source_length: int, max_target_length: int):
    """An encoder-decoder row: ``source`` (the wrapped instruction) as input, the response as labels, each ending
    in EOS."""
    eos = tokenizer.eos_token_id
    source_ids, src_cut = _cut_with_eos(_ids(tokenizer, source), max_source_length, eos)
    target, tgt_cut = _cut_with_eos(_ids(tokenizer, response), max_target_length, eos)
    return {
        "input_ids": source_ids,
        "attention_mask": [1] * len(source_ids),
        "labels": target,
        "length": max(len(source_ids), len(target)),
        "prompt_truncated": src_cut,
        "response_truncated": tgt_cut,
    }


def decoder_only_row(
    tokenizer, prompt_text: str, instruction: str, response: str, max_length: int, *, adds_bos: bool | None = None
):
    """A decoder-only row: ``prompt_text`` (the wrapped ``instruction``) + response + EOS, labels -100 on every
    prompt token.

    If the row is too long the response keeps at least half of ``max_length`` (cut, EOS appended), and the
    prompt loses the end of its instruction text while the wrapper's tail (after the instruction) is kept.
    ``adds_bos``: whether the tokenizer starts a text with BOS; ``None`` asks the tokenizer (a whole dataset
    passes it once rather than tokenising a probe per row).
    """
    eos = tokenizer.eos_token_id
    enc = tokenizer(prompt_text, add_special_tokens=False, return_offsets_mapping=tokenizer.is_fast)
    prompt = list(enc["input_ids"])
    if adds_bos is None:
        adds_bos = tokenizer_adds_bos(tokenizer)
    bos = [tokenizer.bos_token_id] if adds_bos else []
    prompt = bos + prompt
    resp_ids = _ids(tokenizer, response)
    budget = max(max_length - len(prompt), max_length // 2)
    answer, resp_cut = _cut_with_eos(resp_ids, budget, eos)
    prompt_cut = False
    room = max_length - len(answer)
    if len(prompt) > room:
        prompt_cut = True
        tail_start = len(prompt)
        if tokenizer.is_fast:  # the wrapper's tail: tokens starting after the instruction's last character
            instr_end = prompt_text.rindex(instruction) + len(instruction) if instruction else len(prompt_text)
            offsets = enc["offset_mapping"]
            tail_start = len(bos) + next((i for i, (s, _) in enumerate(offsets) if s >= instr_end), len(offsets))
        tail = prompt[tail_start:]
        prompt = prompt[: max(room - len(tail), 0)] + tail
        prompt = prompt[-room:] if len(prompt) > room else prompt
    input_ids = prompt + answer
    return {
        "input_ids": input_ids,
        "attention_mask": [1] * len(input_ids),
        "labels": [IGNORE_INDEX] * len(prompt) + answer,
        "length": len(input_ids),
        "prompt_length": len(prompt),
        "prompt_truncated": prompt_cut,
        "response_truncated": resp_cut,
    }


def tokenize_encoder_decoder(family: Family, tokenizer, instruction: str, response: str, cfg, **_: Any) -> dict:
    """``Family.tokenize`` for encoder-decoder families (``cfg.max_source_length``, ``cfg.max_target_length``)."""
    source = family.wrap(instruction)
    return encoder_decoder_row(tokenizer, source, response, cfg.max_source_length, cfg.max_target_length)


def tokenize_decoder_only(
    family: Family, tokenizer, instruction: str, response: str, cfg, *, adds_bos: bool | None = None, **_: Any
) -> dict:
    """``Family.tokenize`` for decoder-only families (``cfg.max_length``; response-only loss)."""
    prompt = family.wrap(instruction)
    return decoder_only_row(tokenizer, prompt, instruction, response, cfg.max_length, adds_bos=adds_bos)


# --- dialogues -------------------------------------------------------------------------------------------------
#
# Decoder-only: with a tokenizer that has a chat template, the dialogue is rendered by it (the template's own
# markers, so the student speaks its tokenizer's chat format); without one (GPT-2, GPT-Neo, Cerebras-GPT), by the
# family's wrapper extended turn by turn: the first exchange exactly as a single-turn row (wrapper, answer, EOS),
# then "\n\n### Instruction:\n{user}\n\n### Response:" + answer + EOS for every later exchange. Either way the
# labels are every assistant turn's tokens plus the end-of-turn token after it, and nothing else.
# Encoder-decoder: one (history -> next assistant turn) row per assistant turn; the first turn's source is the raw
# instruction (a single-turn row exactly), later ones "User: ...\n\nAssistant: ...\n\nUser: ..."; the history is
# cut from the oldest exchange until the source fits ``max_source_length``.

DIALOGUE_TURN = "\n\n### Instruction:\n{instruction}\n\n### Response:"
SEQ2SEQ_ROLES = {"user": "User", "assistant": "Assistant"}


def _check_dialogue(messages) -> list[dict[str, str]]:
    if not messages or messages[-1].get("role") != "assistant":
        raise ValueError("a training dialogue must end on an assistant turn")
    for i, m in enumerate(messages):
        if m.get("role") != ("user" if i % 2 == 0 else "assistant") or not isinstance(m.get("content"), str):
            raise ValueError(
                f"dialogue message {i}: expected role {'user' if i % 2 == 0 else 'assistant'} and a "
                f"string content, got {m!r:.80}"
            )
    return list(messages)


def _segments_alpaca(family: Family, tokenizer, messages, adds_bos: bool) -> list[tuple[list[int], bool]]:
    """(token ids, trainable) segments of a dialogue in the family's wrapper extended turn by turn."""
    eos = tokenizer.eos_token_id
    segments: list[tuple[list[int], bool]] = []
    for i in range(0, len(messages), 2):
        user, answer = messages[i]["content"], messages[i + 1]["content"] if i + 1 < len(messages) else None
        prompt = family.wrap(user) if i == 0 else DIALOGUE_TURN.format(instruction=user)
        ids = _ids(tokenizer, prompt)
        if i == 0 and adds_bos:
            ids = [tokenizer.bos_token_id] + ids
        segments.append((ids, False))
        if answer is not None:
            segments.append((_ids(tokenizer, answer) + [eos], True))
    return segments


def _segments_chat_template(tokenizer, messages) -> list[tuple[list[int], bool]]:
    """(token ids, trainable) segments of a dialogue rendered by the tokenizer's chat template: each assistant
    turn's content plus the special token that ends it are trainable, the rest (markers, user turns) is not."""
    text = tokenizer.apply_chat_template(messages, tokenize=False)
    spans = []
    for i, m in enumerate(messages):
        if m["role"] != "assistant":
            continue
        prefix = tokenizer.apply_chat_template(messages[:i], tokenize=False, add_generation_prompt=True)
        if not text.startswith(prefix):
            raise ValueError("the tokenizer's chat template does not render a dialogue's prefix as its beginning")
        start = text.index(m["content"], len(prefix)) if m["content"] else len(prefix)
        spans.append((start, start + len(m["content"])))
    enc = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    ids, offsets = enc["input_ids"], enc["offset_mapping"]
    special = set(tokenizer.all_special_ids)
    trainable = [False] * len(ids)
    for start, end in spans:
        last = None
        for t, (s, e) in enumerate(offsets):
            if s < end and e > start:
                trainable[t] = True
                last = t
        if last is not None and last + 1 < len(ids) and ids[last + 1] in special:
            trainable[last + 1] = True  # the end-of-turn token, so the student learns to stop
    segments: list[tuple[list[int], bool]] = []
    for tok, flag in zip(ids, trainable):
        if segments and segments[-1][1] == flag:
            segments[-1][0].append(tok)
        else:
            segments.append(([tok], flag))
    return segments


def _causal_segments(family: Family, tokenizer, messages, adds_bos: bool):
    if getattr(tokenizer, "chat_template", None):
        return _segments_chat_template(tokenizer, messages)
    return _segments_alpaca(family, tokenizer, messages, adds_bos)


def tokenize_decoder_only_dialogue(
    family: Family, tokenizer, messages, cfg, *, adds_bos: bool | None = None, **_: Any
) -> list[dict]:
    """``Family.tokenize_dialogue`` for decoder-only families: one row, labels on every assistant turn only.

    Longer than ``cfg.max_length``: the oldest exchanges are dropped until it fits; a single exchange still too long
    is cut at ``max_length`` (``response_truncated``)."""
    messages = _check_dialogue(messages)
    if adds_bos is None:
        adds_bos = tokenizer_adds_bos(tokenizer)
    dropped = False
    while True:
        segments = _causal_segments(family, tokenizer, messages, adds_bos)
        total = sum(len(ids) for ids, _ in segments)
        if total <= cfg.max_length or len(messages) <= 2:
            break
        messages, dropped = messages[2:], True
    input_ids = [t for ids, _ in segments for t in ids]
    labels = [t if flag else IGNORE_INDEX for ids, flag in segments for t in ids]
    cut = len(input_ids) > cfg.max_length
    input_ids, labels = input_ids[: cfg.max_length], labels[: cfg.max_length]
    return [
        {
            "input_ids": input_ids,
            "attention_mask": [1] * len(input_ids),
            "labels": labels,
            "length": len(input_ids),
            "prompt_truncated": dropped,
            "response_truncated": cut,
        }
    ]


def decoder_only_dialogue_prompt(family: Family, tokenizer, messages, cfg=None) -> str:
    """The text a decoder-only student continues to answer the last user turn of ``messages``."""
    if not messages or messages[-1].get("role") != "user":
        raise ValueError("a dialogue to answer must end on a user turn")
    if getattr(tokenizer, "chat_template", None):
        return tokenizer.apply_chat_template(list(messages), tokenize=False, add_generation_prompt=True)
    parts = []
    for i, m in enumerate(messages):
        if m["role"] == "user":
            parts.append(family.wrap(m["content"]) if i == 0 else DIALOGUE_TURN.format(instruction=m["content"]))
        else:
            parts.append(m["content"] + (tokenizer.eos_token or ""))
    return "".join(parts)


def _seq2seq_source(family: Family, history) -> str:
    if len(history) == 1:
        return family.wrap(history[0]["content"])
    return "\n\n".join(f"{SEQ2SEQ_ROLES[m['role']]}: {m['content']}" for m in history)


def encoder_decoder_dialogue_prompt(family: Family, tokenizer, messages, cfg=None) -> str:
    """The source an encoder-decoder student reads to answer the last user turn (history cut from the oldest
    exchange to ``cfg.max_source_length`` tokens when ``cfg`` is given)."""
    if not messages or messages[-1].get("role") != "user":
        raise ValueError("a dialogue to answer must end on a user turn")
    history = list(messages)
    limit = getattr(cfg, "max_source_length", None)
    while limit and len(history) > 1 and len(_ids(tokenizer, _seq2seq_source(family, history))) + 1 > limit:
        history = history[2:]
    return _seq2seq_source(family, history)


def tokenize_encoder_decoder_dialogue(family: Family, tokenizer, messages, cfg, **_: Any) -> list[dict]:
    """``Family.tokenize_dialogue`` for encoder-decoder families: one (history -> answer) row per assistant turn."""
    messages = _check_dialogue(messages)
    rows = []
    for i in range(1, len(messages), 2):
        history = messages[:i]
        source = encoder_decoder_dialogue_prompt(family, tokenizer, history, cfg)
        row = encoder_decoder_row(
            tokenizer, source, messages[i]["content"], cfg.max_source_length, cfg.max_target_length
        )
        row["prompt_truncated"] = row["prompt_truncated"] or source != _seq2seq_source(family, history)
        rows.append(row)
    return rows


def lengths(**values: int) -> SimpleNamespace:
    """A stand-in ``cfg`` for :meth:`Family.tokenize` outside a recipe: ``lengths(max_length=512)``."""
    return SimpleNamespace(**values)


# --- the card's usage snippets --------------------------------------------------------------------------------


def encoder_decoder_usage(family: Family, repo_id: str) -> str:
    """Usage with the family's Auto class; the instruction goes in wrapped (raw for the paper's T5 students)."""
    instruction = family.wrap("Name three primary colours.")
    return (
        "```python\n"
        f"from transformers import {family.auto_model}, AutoTokenizer\n\n"
        f'tokenizer = AutoTokenizer.from_pretrained("{repo_id}")\n'
        f'model = {family.auto_model}.from_pretrained("{repo_id}")\n'
        f'inputs = tokenizer({json.dumps(instruction)}, return_tensors="pt")\n'
        "outputs = model.generate(**inputs, max_new_tokens=128)\n"
        "print(tokenizer.decode(outputs[0], skip_special_tokens=True))\n"
        "```\n\n"
        f'With transformers 4.x, `pipeline("{family.pipeline_tag}", model=...)` gives the same; transformers 5 '
        "removed that pipeline."
    )


def decoder_only_usage(family: Family, repo_id: str) -> str:
    """Usage with a text-generation pipeline and the family's wrapper, answer only."""
    lines = ["```python", "from transformers import pipeline", ""]
    lines.append(f'generator = pipeline("{family.pipeline_tag}", model="{repo_id}")')
    if family.template is None:
        lines.append('prompt = "Name three primary colours."')
    else:
        lines.append(f"wrapper = {family.template!r}")
        lines.append('prompt = wrapper.format(instruction="Name three primary colours.")')
    lines.append('print(generator(prompt, max_new_tokens=128, return_full_text=False)[0]["generated_text"].strip())')
    lines.append("```")
    return "\n".join(lines)


# --- the paper's two families ---------------------------------------------------------------------------------


def _is_encoder_decoder(config) -> bool:
    return bool(getattr(config, "is_encoder_decoder", False))


register_family(
    name="seq2seq",
    auto_model="AutoModelForSeq2SeqLM",
    task_type="SEQ_2_SEQ_LM",
    lm_eval_kwargs={"backend": "seq2seq"},
    pipeline_tag="text2text-generation",
    description="encoder-decoder",
    template=None,  # SPEC 6: encoder-decoder students take the raw instruction
    decoder_only=False,
    matches=_is_encoder_decoder,
    tokenize_fn=tokenize_encoder_decoder,
    usage_fn=encoder_decoder_usage,
    card_note=(
        "This is an encoder-decoder student: like the LaMini-T5/Flan-T5 models it takes the raw instruction as "
        "input, with\nno template."
    ),
    recipe_config="lamini_lm.train.config:Seq2SeqRecipeConfig",
    recipe_trainer="lamini_lm.train.trainers:Seq2SeqRecipeTrainer",
    compute_metrics="lamini_lm.train.metrics:rouge_compute_metrics",
    tokenize_dialogue_fn=tokenize_encoder_decoder_dialogue,
    dialogue_prompt_fn=encoder_decoder_dialogue_prompt,
)
register_family(
    name="causal",
    auto_model="AutoModelForCausalLM",
    task_type="CAUSAL_LM",
    lm_eval_kwargs={"backend": "causal"},
    pipeline_tag="text-generation",
    description="decoder-only",
    template=ALPACA_WRAPPER,  # SPEC 6: Alpaca's no-input template, no trailing newline
    decoder_only=True,
    matches=lambda config: not _is_encoder_decoder(config),
    tokenize_fn=tokenize_decoder_only,
    usage_fn=decoder_only_usage,
    card_note=(
        "This is a decoder-only student: like the LaMini-GPT/Neo/Cerebras models it was trained on Alpaca's "
        "no-input\ntemplate, so wrap every instruction in it (the snippets above do) and read only the text after\n"
        "`### Response:`."
    ),
    recipe_config="lamini_lm.train.config:CausalRecipeConfig",
    recipe_trainer="lamini_lm.train.trainers:CausalRecipeTrainer",
    stop_text="### Instruction:",
    tokenize_dialogue_fn=tokenize_decoder_only_dialogue,
    dialogue_prompt_fn=decoder_only_dialogue_prompt,
    packing_collator_factory="lamini_lm.train.packing:DataCollatorForPacking",
)
