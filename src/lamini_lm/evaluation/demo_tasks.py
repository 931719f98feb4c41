"""Small synthetic lm-eval tasks, for offline checks, demos and benchmarks: not the paper's tasks.

:func:`write_demo_tasks` writes task YAMLs (``dataset_path: json`` over local JSONL files of generated rows). Their
names start with ``demo_`` so that no results table, model card or comparison takes them for the paper's tasks;
four are shaped like one of the paper's (its output type and metric), listed first in ``metric_list`` so the
harness reports that metric:

* ``demo_choice``: 4-way multiple choice on sums, like SciQ, reported as ``acc_norm``;
* ``demo_entailment``: true/false entailment, like RTE, reported as ``acc``;
* ``demo_cloze``: 2-way fill-in choice, like ReCoRD, reported as ``f1``;
* ``demo_completion``: 3-way sentence completion, like HellaSwag, reported as ``acc_norm``;
* ``demo_generate``: a ``generate_until`` task (exact match), to see generation requests wrapped too.

:data:`SHAPED_LIKE` maps each to the paper task it imitates.

Load them with ``TaskManager(include_path=folder, include_defaults=False)`` so lm-eval indexes only these.

Example:
    >>> from lamini_lm.evaluation.demo_tasks import write_demo_tasks
    >>> folder = write_demo_tasks("/tmp/demo-tasks")  # doctest: +SKIP
    >>> evaluate_model(model_dir, DEMO_TASKS, include_path=folder, include_defaults=False)  # doctest: +SKIP
"""

from __future__ import annotations

import json
import os
import random
from pathlib import Path

__all__ = ["DEMO_TASKS", "SHAPED_LIKE", "write_demo_tasks"]

DEMO_TASKS = ("demo_choice", "demo_entailment", "demo_cloze", "demo_completion", "demo_generate")
SHAPED_LIKE = {"demo_choice": "sciq", "demo_entailment": "rte", "demo_cloze": "record", "demo_completion": "hellaswag"}

_COLOURS = ["red", "green", "blue", "yellow", "black", "white"]
_ANIMALS = ["cat", "dog", "horse", "bird", "fish", "cow"]


def _rows(task: str, n: int, rng: random.Random) -> list[dict]:
    rows = []
    for i in range(n):
        a, b = rng.randint(1, 20), rng.randint(1, 20)
        if task == "demo_choice":
            choices = [str(a + b), str(a + b + 1), str(abs(a - b)), rng.choice(_COLOURS)]
            rng.shuffle(choices)
            rows.append({"question": f"What is {a} plus {b}?", "choices": choices, "label": choices.index(str(a + b))})
        elif task == "demo_entailment":
            animal = rng.choice(_ANIMALS)
            other = animal if i % 2 == 0 else rng.choice([x for x in _ANIMALS if x != animal])
            rows.append(
                {"premise": f"The {animal} sleeps on the mat.", "hypothesis": f"A {other} sleeps.", "label": i % 2}
            )
        elif task == "demo_cloze":
            colour = rng.choice(_COLOURS)
            rows.append(
                {
                    "passage": f"The car is {colour}.",
                    "query": "The car is @placeholder.",
                    "choices": [colour, rng.choice([c for c in _COLOURS if c != colour])][:: 1 - 2 * (i % 2)],
                    "label": i % 2,
                }
            )
        elif task == "demo_completion":
            animal = rng.choice(_ANIMALS)
            endings = ["door.", "seven of blue.", "the the"]
            rng.shuffle(endings)
            rows.append({"ctx": f"The {animal} walks to the", "endings": endings, "label": endings.index("door.")})
        else:
            rows.append({"question": f"Repeat the number {a}.", "answer": str(a)})
    return rows


# What each task shows the model (lm-eval Jinja); written with json.dumps, a valid YAML double-quoted string.
_TEXT = {
    "demo_choice": "Question: {{question}}\nAnswer:",
    "demo_entailment": "{{premise}}\nQuestion: {{hypothesis}} True or False?\nAnswer:",
    "demo_cloze": "{{passage}}\n{{query}}\nAnswer:",
    "demo_completion": "{{ctx}}",
    "demo_generate": "{{question}}",
}

_YAML = {
    "demo_choice": """output_type: multiple_choice
doc_to_target: label
doc_to_choice: "{{choices}}"
metric_list:
  - metric: acc_norm
    aggregation: mean
    higher_is_better: true
  - metric: acc
    aggregation: mean
    higher_is_better: true
""",
    "demo_entailment": """output_type: multiple_choice
doc_to_target: label
doc_to_choice: ["True", "False"]
metric_list:
  - metric: acc
    aggregation: mean
    higher_is_better: true
""",
    "demo_cloze": """output_type: multiple_choice
doc_to_target: label
doc_to_choice: "{{choices}}"
metric_list:
  - metric: f1
    aggregation: f1
    higher_is_better: true
  - metric: acc
    aggregation: mean
    higher_is_better: true
""",
    "demo_completion": """output_type: multiple_choice
doc_to_target: label
doc_to_choice: "{{endings}}"
metric_list:
  - metric: acc_norm
    aggregation: mean
    higher_is_better: true
  - metric: acc
    aggregation: mean
    higher_is_better: true
""",
    "demo_generate": """output_type: generate_until
doc_to_target: "{{answer}}"
generation_kwargs:
  until: ["\\n"]
  max_gen_toks: 4
  do_sample: false
metric_list:
  - metric: exact_match
    aggregation: mean
    higher_is_better: true
""",
}


def write_demo_tasks(folder: str | os.PathLike, n: int = 24, seed: int = 0, template: str | None = None) -> Path:
    """Write the demo tasks (``n`` rows each, deterministic for ``seed``) under ``folder``; return ``folder``.

    ``template`` (e.g. :data:`lamini_lm.prompts.ALPACA_WRAPPER`) bakes a prompt wrapper into each task's
    ``doc_to_text``: plain lm-eval then scores wrapped contexts with no help from lamini-lm, the reference the
    harness is checked against.
    """
    folder = Path(folder).resolve()  # the YAMLs name their data by absolute path: they work from any folder
    folder.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    for task in DEMO_TASKS:
        data = folder / f"{task}.jsonl"
        data.write_text("".join(json.dumps(r) + "\n" for r in _rows(task, n, rng)), encoding="utf-8")
        # json.dumps quotes the absolute path safely for YAML.
        header = (
            f"task: {task}\ndataset_path: json\ndataset_kwargs:\n  data_files:\n    test: {json.dumps(str(data))}\n"
        )
        text = template.replace("{instruction}", _TEXT[task]) if template else _TEXT[task]
        body = f"test_split: test\ndoc_to_text: {json.dumps(text)}\n" + _YAML[task]
        (folder / f"{task}.yaml").write_text(header + body, encoding="utf-8")
    return folder
