"""``lamini-lm quickstart``: the whole LaMini pipeline at toy scale, through each stage's public API, into one folder.

1. a teacher: ``OPENAI_API_KEY`` (or ``--base_url``) and a real small base model, or, with neither, a tiny local
   teacher (a GPT-2 built on the spot, served by ``transformers serve``) and a tiny student, with a banner;
2. instructions, example-guided from a few seed tasks (``lamini_lm.generation.generate_instructions``), and the
   teacher's responses to them and to the seeds (``generate_responses``);
3. dedup and filters (``lamini_lm.quality``), then the dataset folder: parquet, plots and card (``build_release``);
4. a student trained on it (``lamini_lm.train.load_recipe``: the LaMini-Flan-T5-77M recipe at toy scale);
5. its evaluation (``lamini_lm.evaluation.evaluate_model``: a few of the paper's tasks with a teacher online, small
   local tasks shaped like them offline);
6. its model card (``lamini_lm.publishing.model``, from the training manifest), and a push with
   ``--push_to_hub USER/NAME``.

Every stage writes under ``--output``; re-running reuses the teacher's answers (the generation store).

Example:
    >>> from lamini_lm.quickstart import QuickstartConfig, run_quickstart
    >>> summary = run_quickstart(QuickstartConfig(output="quickstart-output"))  # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import os
import sys
import time
from collections.abc import Iterator
from dataclasses import field
from pathlib import Path
from typing import Any

from lamini_lm.io import write_text_atomic

__all__ = ["SEED_TASKS", "QuickstartConfig", "main", "run_quickstart"]

logger = logging.getLogger(__name__)

# Self-Instruct-style seed tasks: the example pool for instruction generation, and answered by the teacher too.
SEED_TASKS = [
    "Name three primary colours.",
    "What is the capital of France?",
    "Translate 'good morning' into Spanish.",
    "Give an antonym of the word 'happy'.",
    "How many legs does a spider have?",
    "Suggest a name for a pet goldfish.",
    "What is 12 plus 30?",
    "Write a haiku about rain.",
    "List two fruits that are rich in vitamin C.",
    "Explain why the sky is blue in one sentence.",
    "Rewrite this sentence in the past tense: I walk to school.",
    "What gas do plants absorb from the air?",
    "Give me three tips for staying focused while studying.",
    "Classify the following animal as a mammal or a bird: penguin.",
    "Write a short thank-you note to a colleague.",
    "What are some things you can do to de-stress?",
]

OFFLINE_BANNER = """\
================================================================================
 lamini-lm quickstart: OFFLINE MODE
 No OPENAI_API_KEY and no --base_url: the teacher is a tiny GPT-2 with random
 weights, built and served on this machine, and the student is a tiny model
 built on the spot. Every stage runs for real, but the teacher's answers are
 noise: this run checks the machinery, not the quality of the herd.
 Set OPENAI_API_KEY (or --base_url http://host:port/v1) for a real teacher.
================================================================================"""


@dataclasses.dataclass
class QuickstartConfig:
    """Settings of ``lamini-lm quickstart``; the defaults run in minutes on a CPU."""

    output: str = field(default="quickstart-output", metadata={"help": "folder that receives every stage's output"})
    # Teacher
    base_url: str | None = field(
        default=None, metadata={"help": "OpenAI-compatible endpoint of the teacher (default: OpenAI if a key is set)"}
    )
    teacher_model: str = field(default="gpt-4o-mini", metadata={"help": "teacher model name (online only)"})
    offline: bool = field(
        default=False, metadata={"help": "use the tiny local teacher and student even when a key or URL is set"}
    )
    # Data
    num_prompts: int = field(default=4, metadata={"help": "instruction-generation requests (20 asked for each)"})
    max_tokens: int = field(default=256, metadata={"help": "teacher max_tokens per request (offline: 48)"})
    # Student
    base_model: str = field(
        default="google/flan-t5-small",
        metadata={"help": "encoder-decoder base model of the student (online only; offline: a tiny T5)"},
    )
    epochs: float = field(default=2.0, metadata={"help": "training epochs over the toy dataset"})
    # Evaluation
    eval_tasks: list[str] = field(
        default_factory=lambda: ["sciq", "rte", "arc_challenge"],
        metadata={"help": "lm-eval tasks (online only; offline: small local tasks shaped like the paper's)"},
    )
    eval_limit: int = field(default=50, metadata={"help": "examples per evaluation task"})
    # Publishing
    push_to_hub: str | None = field(
        default=None, metadata={"help": "also publish the student to this Hub repo id (needs HF_TOKEN)"}
    )
    seed: int = field(default=0, metadata={"help": "seed of instruction sampling and training"})

    @property
    def is_offline(self) -> bool:
        return self.offline or (self.base_url is None and not os.environ.get("OPENAI_API_KEY"))


@contextlib.contextmanager
def _teacher(config: QuickstartConfig, out: Path) -> Iterator[Any]:
    """The teacher's ``TeacherConfig``: the given endpoint, or the tiny local GPT-2 served for this block."""
    from lamini_lm.generation import TeacherConfig

    if not config.is_offline:
        kwargs = {"base_url": config.base_url} if config.base_url else {}
        yield TeacherConfig(model=config.teacher_model, max_tokens=config.max_tokens, **kwargs)
        return
    from lamini_lm.toy import build_tiny_gpt2, build_tiny_tokenizer, serve_teacher

    teacher_dir = out / "teacher"
    if not (teacher_dir / "config.json").is_file():
        tokenizer = build_tiny_tokenizer(out / "tokenizer", corpus=SEED_TASKS)
        build_tiny_gpt2(teacher_dir, seed=config.seed, tokenizer=tokenizer)
    with serve_teacher(teacher_dir, log_path=str(out / "teacher-serve.log")) as base_url:
        yield TeacherConfig(base_url=base_url, model=str(teacher_dir), max_tokens=48, concurrency=4, max_retries=2)


def _dataset(config: QuickstartConfig, out: Path) -> tuple[Any, dict]:
    """Generate instructions and responses, clean them, and write the dataset folder (parquet, plots, card)."""
    import datasets

    from lamini_lm.generation import generate_instructions, generate_responses
    from lamini_lm.publishing.dataset import build_release
    from lamini_lm.quality import dedup, filter_rows

    store = out / "teacher.sqlite"
    with _teacher(config, out) as teacher:
        generated = generate_instructions(
            SEED_TASKS, config=teacher, store=store, num_prompts=config.num_prompts, seed=config.seed
        )
        generated = generated.filter(lambda r: r["error"] is None and bool(r["instruction"]))
        logger.info("%d instructions generated from %d prompts", len(generated), config.num_prompts)
        seeds = generate_responses(SEED_TASKS, config=teacher, store=store, instruction_source="alpaca")
        answers = generate_responses(generated, config=teacher, store=store) if len(generated) else None
    parts = [seeds] + ([answers] if answers is not None else [])
    raw = datasets.concatenate_datasets([p.cast(seeds.features) for p in parts])
    raw = raw.filter(lambda r: r["error"] is None and bool(r["response"]))
    clean, dedup_report = dedup(raw)
    kept, filter_report = filter_rows(clean)
    reports = [dedup_report, filter_report]
    if len(kept) < 4:  # the random offline teacher can fail every filter; train on the deduplicated rows then
        logger.warning(
            "only %d rows pass the filters; the quickstart keeps the %d deduplicated rows", len(kept), len(clean)
        )
        kept = clean
        reports = [dedup_report]  # the filters' result is not what is released: the card must not claim it
    build_release(kept, out / "dataset", pretty_name="lamini-lm quickstart", reports=reports, embed="tfidf")
    return kept, {"generated_instructions": len(generated), **{r.step: r.to_dict() for r in reports}}


def _train(config: QuickstartConfig, out: Path, dataset) -> Path:
    """The LaMini-Flan-T5-77M recipe (``lamini_lm.train``) at toy scale: the toy dataset, a few epochs, CPU-sized."""
    from lamini_lm.train import load_recipe

    base = config.base_model
    if config.is_offline:
        from transformers import AutoTokenizer

        from lamini_lm.toy import build_tiny_t5

        tokenizer = AutoTokenizer.from_pretrained(out / "tokenizer")
        base = build_tiny_t5(out / "student-init", seed=config.seed, tokenizer=tokenizer)
    recipe = load_recipe(
        "lamini-flan-t5-77m",
        model_name_or_path=str(base),
        dataset_name=str(out / "dataset"),
        output_dir=str(out / "student"),
        num_train_epochs=config.epochs,
        per_device_train_batch_size=8,
        gradient_accumulation_steps=1,
        eval_split_size=0,
        eval_strategy="no",
        save_strategy="no",
        logging_steps=1,
        bf16=False,
        seed=config.seed,
        report_to="none",
    )
    recipe.train()
    return out / "student"


def _evaluate(config: QuickstartConfig, out: Path, student: Path) -> dict:
    """Zero-shot scores of the student, saved as results.json/.md/.csv and a PNG beside the paper's averages."""
    from lamini_lm.evaluation import evaluate_model
    from lamini_lm.evaluation.harness import save_evaluation
    from lamini_lm.evaluation.plots import plot_comparison

    if config.is_offline:
        from lamini_lm.evaluation.demo_tasks import DEMO_TASKS, write_demo_tasks

        tasks_dir = write_demo_tasks(out / "eval" / "tasks", n=config.eval_limit, seed=config.seed)
        kwargs = {"tasks": [t for t in DEMO_TASKS if t != "demo_generate"], "include_path": tasks_dir}
        kwargs["include_defaults"] = False  # index only the local tasks, not lm-eval's thousands
    else:
        kwargs = {"tasks": config.eval_tasks, "limit": config.eval_limit}
    results = evaluate_model(str(student), batch_size=8, device="cpu", bootstrap_iters=0, seed=config.seed, **kwargs)
    save_evaluation(results, out / "eval", student)  # results + manifest naming the student: publish finds it
    plot_comparison([results], out / "eval" / "results.png", labels=[student.name])
    return results


def _model_card(config: QuickstartConfig, out: Path, student: Path, teacher: str, rows: int) -> Path:
    """Write the student's model card (README.md) from its training manifest; publish if asked."""
    from lamini_lm.publishing.model import publish, write_model_card

    repo_id = config.push_to_hub or "your-name/lamini-quickstart-t5"
    if config.push_to_hub:
        publish(student, repo_id, teacher=teacher)  # the evaluation in out/eval is found beside the student
    else:
        write_model_card(student, repo_id, teacher=teacher)
    return student / "README.md"


def run_quickstart(config: QuickstartConfig) -> dict[str, Any]:
    """Run every stage into ``config.output``; return a summary (also written to ``summary.json``)."""
    out = Path(config.output)
    out.mkdir(parents=True, exist_ok=True)
    if config.is_offline:
        print(OFFLINE_BANNER, file=sys.stderr)
    timings: dict[str, float] = {}

    def timed(name, fn, *args):
        start = time.perf_counter()
        result = fn(*args)
        timings[name] = round(time.perf_counter() - start, 1)
        logger.info("quickstart: %s done in %.1fs", name, timings[name])
        return result

    dataset, reports = timed("dataset", _dataset, config, out)
    student = timed("train", _train, config, out, dataset)
    results = timed("evaluate", _evaluate, config, out, student)
    teacher = "tiny local GPT-2 (random weights)" if config.is_offline else config.teacher_model
    card = timed("model card", _model_card, config, out, student, teacher, len(dataset))
    summary = {
        "offline": config.is_offline,
        "rows": len(dataset),
        "dataset": str(out / "dataset"),
        "student": str(student),
        "evaluation": str(out / "eval" / "results.json"),
        "average": results.get("average"),
        "model_card": str(card),
        "reports": reports,
        "timings_s": timings,
    }
    write_text_atomic(out / "summary.json", json.dumps(summary, indent=2, default=str))
    return summary


def main(argv: list[str] | None = None, prog: str = "lamini-lm quickstart") -> int:
    """Run the whole pipeline at toy scale (offline with a tiny local teacher if no key is set) into one folder."""
    from lamini_lm.config import parse_config

    (config,) = parse_config([QuickstartConfig], argv, prog=prog, description=main.__doc__)
    summary = run_quickstart(config)
    print(json.dumps(summary, indent=2, default=str))
    return 0
