"""Generation: the teacher client (the only module importing ``openai``), the exactly-once store, instruction
and response tasks, and parsing of the teacher's output.

Example:
    >>> from lamini_lm.generation import TeacherConfig, chat_completions
    >>> cfg = TeacherConfig(base_url="http://127.0.0.1:8000/v1", model="my-model", max_tokens=64)
    >>> answers = chat_completions([[{"role": "user", "content": "Hi"}]], cfg, "teacher.sqlite")  # doctest: +SKIP
"""

from lamini_lm.generation.config import TeacherConfig
from lamini_lm.generation.cost import DEFAULT_PRICES, Estimate, price_table
from lamini_lm.generation.runner import achat_completions, chat_completions, estimate
from lamini_lm.generation.store import Store, request_key

__all__ = [
    "DEFAULT_PRICES",
    "Estimate",
    "Store",
    "TeacherConfig",
    "achat_completions",
    "chat_completions",
    "estimate",
    "price_table",
    "request_key",
]
