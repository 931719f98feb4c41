"""Generation: the teacher client (the only module importing ``openai``), the exactly-once store, instruction
and response tasks, and parsing of the teacher's output.

Example:
    >>> from lamini_lm.generation import TeacherConfig, chat_completions
    >>> cfg = TeacherConfig(base_url="http://127.0.0.1:8000/v1", model="my-model", max_tokens=64)
    >>> answers = chat_completions([[{"role": "user", "content": "Hi"}]], cfg, "teacher.sqlite")  # doctest: +SKIP
"""

from lamini_lm.generation.config import TeacherConfig
from lamini_lm.generation.cost import DEFAULT_PRICES, Estimate, price_table
from lamini_lm.generation.instructions import filter_topics, generate_instructions, parse_report, plan_prompts
from lamini_lm.generation.parsing import ParseReport, parse_examples
from lamini_lm.generation.responses import generate_responses, response_messages
from lamini_lm.generation.runner import achat_completions, chat_completions, estimate, request_keys
from lamini_lm.generation.store import Store, request_key

__all__ = [
    "DEFAULT_PRICES",
    "Estimate",
    "ParseReport",
    "Store",
    "TeacherConfig",
    "achat_completions",
    "chat_completions",
    "estimate",
    "filter_topics",
    "generate_instructions",
    "generate_responses",
    "parse_examples",
    "parse_report",
    "plan_prompts",
    "price_table",
    "request_key",
    "request_keys",
    "response_messages",
]
