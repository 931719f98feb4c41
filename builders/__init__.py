"""``datasets`` builders for every instruction source and every generated split, installed as
``lamini_lm.builders``. One module per dataset, each a ``GeneratorBasedBuilder`` with its card template:

* :class:`~lamini_lm.builders.self_instruct.SelfInstruct` (``seed_tasks``, ``machine_generated``)
* :class:`~lamini_lm.builders.alpaca.Alpaca`
* :class:`~lamini_lm.builders.p3.P3` and :class:`~lamini_lm.builders.flan_v2.FlanV2` (per-subset sampling)
* :class:`~lamini_lm.builders.wikipedia_categories.WikipediaCategories` (``all``, ``topics``)
* :class:`~lamini_lm.builders.sharegpt.ShareGPT`, :class:`~lamini_lm.builders.ultrachat.UltraChat` and
  :class:`~lamini_lm.builders.oasst.OpenAssistant`: multi-turn dialogues as ``messages``
* :class:`~lamini_lm.builders.instructions.Instructions`: the LaMini schema, one config per ``instruction_source``
  plus ``all``, ``generation`` and ``dialogues``; :func:`build_instructions` / ``lamini-lm build`` put it in the
  cache as ``lamini_lm/instructions``.

Example:
    >>> from lamini_lm.builders import build_instructions
    >>> build_instructions(generated=["runs/flan/responses"])  # doctest: +SKIP
    >>> from datasets import load_dataset
    >>> load_dataset("lamini_lm/instructions", "generated_flan", split="train")  # doctest: +SKIP
"""

from ._io import DataFileError, dataset_card
from .alpaca import Alpaca
from .build import REPO_ID, BuildResult, build_instructions
from .flan_v2 import FlanV2
from .instructions import Instructions
from .oasst import OpenAssistant
from .p3 import P3
from .self_instruct import SelfInstruct
from .sharegpt import ShareGPT
from .ultrachat import UltraChat
from .wikipedia_categories import WikipediaCategories, is_topic

__all__ = [
    "REPO_ID",
    "Alpaca",
    "BuildResult",
    "DataFileError",
    "FlanV2",
    "Instructions",
    "OpenAssistant",
    "P3",
    "SelfInstruct",
    "ShareGPT",
    "UltraChat",
    "WikipediaCategories",
    "build_instructions",
    "dataset_card",
    "is_topic",
]
