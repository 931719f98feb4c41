"""Generation: the teacher client (the only module importing ``openai``), the exactly-once store, instruction
and response tasks, and parsing of the teacher's output.

Example:
    >>> from lamini_lm.generation import TeacherConfig, chat_completions
    >>> cfg = TeacherConfig(base_url="http://127.0.0.1:8000/v1", model="my-model", max_tokens=64)
    >>> answers = chat_completions([[{"role": "user", "content": "Hi"}]], cfg, "teacher.sqlite")  # doctest: +SKIP
"""

from lamini_lm.generation.cache import cache_summary, export_answers, prune_cache
from lamini_lm.generation.config import TeacherConfig
from lamini_lm.generation.cost import DEFAULT_PRICES, Estimate, price_table
from lamini_lm.generation.dialogues import DialogueArgs, generate_dialogues, run_generate_dialogues
from lamini_lm.generation.instructions import filter_topics, generate_instructions, plan_prompts
from lamini_lm.generation.parsing import ParseReport, parse_examples
from lamini_lm.generation.responses import generate_responses, response_messages
from lamini_lm.generation.runner import achat_completions, chat_completions, estimate, request_keys
from lamini_lm.generation.stage import (
    GenerationFailed,
    InstructionArgs,
    OutputArgs,
    ResponseArgs,
    run_generate_instructions,
    run_generate_responses,
)
from lamini_lm.generation.store import Store, default_store_path, request_key

__all__ = [
    "DEFAULT_PRICES",
    "DialogueArgs",
    "Estimate",
    "GenerationFailed",
    "InstructionArgs",
    "OutputArgs",
    "ParseReport",
    "ResponseArgs",
    "Store",
    "TeacherConfig",
    "achat_completions",
    "cache_summary",
    "chat_completions",
    "default_store_path",
    "estimate",
    "export_answers",
    "filter_topics",
    "generate_dialogues",
    "generate_instructions",
    "generate_responses",
    "parse_examples",
    "plan_prompts",
    "price_table",
    "prune_cache",
    "request_key",
    "request_keys",
    "response_messages",
    "run_generate_dialogues",
    "run_generate_instructions",
    "run_generate_responses",
]
