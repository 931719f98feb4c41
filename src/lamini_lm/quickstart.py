"""``lamini-lm quickstart``: the whole LaMini pipeline at toy scale, through each stage's own function, into one
folder of artifacts that each carry their ``lamini_lm.json`` manifest (so the lineage runs from the student back to
the teacher's answers).

1. a teacher: ``OPENAI_API_KEY`` (or ``--base_url``) and a real small base model, or, with neither, a tiny local
   teacher (a GPT-2 built on the spot, served by ``transformers serve``) and a tiny student, with a banner;
2. ``instructions/``: example-guided instructions from a few seed tasks (``run_generate_instructions``);
3. ``responses/``: the teacher's answers to the seeds and to the generated instructions (``run_generate_responses``;
   every answer is kept in ``teacher.sqlite``, so a re-run pays for nothing twice);
4. ``dedup/`` and ``filtered/`` (``run_dedup``, ``run_filter``), then ``dataset/``, the release folder: parquet
   shards, plots and the dataset card (``run_push_dataset`` without a repo), built into the datasets cache as
   ``lamini_lm/instructions`` (``run_build``), so ``load_dataset("lamini_lm/instructions")`` works afterwards;
5. ``student/``: the LaMini-Flan-T5-77M recipe at toy scale (``lamini_lm.train.load_recipe``);
6. ``eval/``: its zero-shot scores (``run_evaluate``: a few of the paper's tasks with a teacher online; offline,
   the synthetic ``demo_*`` tasks of ``lamini_lm.evaluation.demo_tasks``, which are not the paper's);
7. the student's model card (``lamini_lm.publishing.model``, from the manifests), and a push with
   ``--push_to_hub USER/NAME``.

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

from lamini_lm.artifacts import MANIFEST_FILE, Manifest, check_output, describe_input, read_manifest
from lamini_lm.io import write_json, write_text_atomic

__all__ = ["SEED_ANSWERS", "SEED_TASKS", "TOY_INSTRUCTIONS", "QuickstartConfig", "main", "run_quickstart"]

logger = logging.getLogger(__name__)

STAGE = "quickstart"

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

# Offline only: what the tiny local teacher is fitted to say (see _toy_teacher_lessons). Its answers to the seed
# tasks, and the new instructions it learns to write in <example> tags (not copies of the seeds, so that they
# survive deduplication against them) with their answers.
SEED_ANSWERS = {
    "Name three primary colours.": "Red, yellow and blue.",
    "What is the capital of France?": "Paris.",
    "Translate 'good morning' into Spanish.": "Buenos dias.",
    "Give an antonym of the word 'happy'.": "Sad.",
    "How many legs does a spider have?": "Eight.",
    "Suggest a name for a pet goldfish.": "Bubbles.",
    "What is 12 plus 30?": "42.",
    "Write a haiku about rain.": "Soft rain on the roof, puddles gather in the street, the garden drinks deep.",
    "List two fruits that are rich in vitamin C.": "Oranges and kiwis.",
    "Explain why the sky is blue in one sentence.": "Air scatters blue sunlight more than the other colours.",
    "Rewrite this sentence in the past tense: I walk to school.": "I walked to school.",
    "What gas do plants absorb from the air?": "Carbon dioxide.",
    "Give me three tips for staying focused while studying.": "Put the phone away, take short breaks, set a goal.",
    "Classify the following animal as a mammal or a bird: penguin.": "A bird.",
    "Write a short thank-you note to a colleague.": "Thank you for your help this week; it made a real difference.",
    "What are some things you can do to de-stress?": "Go for a walk, breathe slowly and talk to a friend.",
}
TOY_INSTRUCTIONS = {
    "Name two animals that live in the sea.": "Dolphins and octopuses.",
    "Which planet is closest to the sun?": "Mercury.",
    "Write one sentence about autumn leaves.": "Red and gold leaves drift slowly to the ground.",
    "How many days are there in a week?": "Seven.",
    "Suggest a title for a story about a lost key.": "The Key Under the Stairs.",
    "What colour do you get by mixing blue and yellow?": "Green.",
    "List three things to pack for a picnic.": "Sandwiches, fruit and a blanket.",
    "Convert two hours into minutes.": "120 minutes.",
    "Describe a cat in three words.": "Soft, curious, independent.",
    "Why do people need to drink water?": "Water keeps the body hydrated and working.",
    "Recommend a hobby for a rainy afternoon.": "Reading a good book.",
    "Tell me one fact about the moon.": "The moon orbits the Earth about once a month.",
}

OFFLINE_BANNER = """\
================================================================================
 lamini-lm quickstart: OFFLINE MODE
 No OPENAI_API_KEY and no --base_url: the teacher is a tiny GPT-2 built on
 this machine and fitted for a few seconds to write <example> lists and short
 answers like the seed tasks', then served here; the student is a tiny model
 built on the spot. Every stage runs for real on what the toy teacher wrote,
 but this run checks the machinery, not the quality of the herd.
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
        metadata={"help": "lm-eval tasks (online only; offline: the synthetic demo_* tasks, not the paper's)"},
    )
    eval_limit: int = field(default=50, metadata={"help": "examples per evaluation task"})
    # Publishing
    push_to_hub: str | None = field(
        default=None, metadata={"help": "also publish the student to this Hub repo id (needs HF_TOKEN)"}
    )
    seed: int = field(default=0, metadata={"help": "seed of instruction sampling and training"})
    overwrite: bool = field(
        default=False, metadata={"help": "replace --output even if it holds files that are not a quickstart's"}
    )

    def __post_init__(self):
        from lamini_lm.config import check_range

        check_range("num_prompts", self.num_prompts, 1)
        check_range("max_tokens", self.max_tokens, 1)
        check_range("epochs", self.epochs, 0, low_open=True)
        check_range("eval_limit", self.eval_limit, 1)

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
    from lamini_lm.testing import serve_teacher

    # An absolute path: the model name every record (store keys, manifests, cards) carries for this teacher.
    teacher_dir = (out / "teacher").resolve()
    if read_manifest(teacher_dir) is None:  # none yet, or an earlier run stopped before its fitting ended
        _toy_teacher(teacher_dir, out, config.seed)
    with serve_teacher(teacher_dir, log_path=str(out / "teacher-serve.log")) as base_url:
        yield TeacherConfig(base_url=base_url, model=str(teacher_dir), max_tokens=64, concurrency=4, max_retries=2)


TOY_TEACHER_STAGE = "toy-teacher"


def _toy_teacher_lessons(seed: int) -> list[tuple[list[dict], str]]:
    """What the tiny teacher is fitted on, as the requests of the quickstart render them: the paper's
    example-guided prompt (three seed tasks in ``<example>`` tags) answered by two of :data:`TOY_INSTRUCTIONS` in
    ``<example>`` tags, and each seed task and toy instruction (under the paper's system message) answered."""
    import random

    from lamini_lm.prompts import SYSTEM_MESSAGE, example_guided_prompt

    rng = random.Random(seed)
    new = list(TOY_INSTRUCTIONS)
    lessons = []
    for _ in range(96):
        prompt = example_guided_prompt(rng.sample(SEED_TASKS, 3), n=20)
        answer = "\n".join(f"<example>{x}</example>" for x in rng.sample(new, 2))
        lessons.append(([{"role": "user", "content": prompt}], answer))
    for instruction, answer in {**SEED_ANSWERS, **TOY_INSTRUCTIONS}.items():
        messages = [{"role": "system", "content": SYSTEM_MESSAGE}, {"role": "user", "content": instruction}]
        lessons += [(messages, answer)] * 2
    return lessons


def _toy_teacher(teacher_dir: Path, out: Path, seed: int) -> Path:
    """Build the tiny GPT-2 teacher and fit it on :func:`_toy_teacher_lessons` (seconds on a CPU); its manifest,
    written last, says what it is and marks it complete."""
    from lamini_lm.prompts import format_examples
    from lamini_lm.testing import build_tiny_gpt2, build_tiny_tokenizer, fit_tiny_teacher

    start = time.perf_counter()
    corpus = [*SEED_TASKS, *SEED_ANSWERS.values(), format_examples(list(TOY_INSTRUCTIONS)), *TOY_INSTRUCTIONS.values()]
    tokenizer = build_tiny_tokenizer(out / "tokenizer", corpus=corpus)
    build_tiny_gpt2(teacher_dir, seed=seed, tokenizer=tokenizer)
    fit = fit_tiny_teacher(teacher_dir, _toy_teacher_lessons(seed), seed=seed)
    seconds = round(time.perf_counter() - start, 1)
    logger.info("toy teacher fitted in %.1fs (loss %.2f -> %.2f)", seconds, fit["first_loss"], fit["last_loss"])
    Manifest(
        stage=TOY_TEACHER_STAGE,
        config={"seed": seed},
        timings={"seconds": seconds},
        extra={
            "description": "tiny local GPT-2 built by lamini_lm.testing, fitted on the quickstart's seed tasks",
            **fit,
        },
    ).save(teacher_dir)
    return teacher_dir


def _dataset(config: QuickstartConfig, out: Path, teacher) -> Path:
    """Instructions, responses, dedup, filters and the release folder, each an artifact under ``out``."""
    from lamini_lm.generation.stage import (
        GenerationFailed,
        InstructionArgs,
        OutputArgs,
        ResponseArgs,
        run_generate_instructions,
        run_generate_responses,
    )
    from lamini_lm.publishing.dataset import PushDatasetConfig, run_push_dataset
    from lamini_lm.quality import DedupConfig, FilterConfig
    from lamini_lm.quality.stages import StageIO, run_dedup, run_filter

    seeds = out / "seed_tasks.jsonl"
    write_text_atomic(seeds, "".join(json.dumps({"instruction": t}, ensure_ascii=False) + "\n" for t in SEED_TASKS))
    store = str(out / "teacher.sqlite")

    def output(name: str) -> OutputArgs:  # the toy teacher fails often; the quickstart carries on with what parsed
        return OutputArgs(output=str(out / name), store=store, max_failure_rate=1.0)

    instructions = InstructionArgs(seeds=str(seeds), num_prompts=config.num_prompts, seed=config.seed)
    try:
        run_generate_instructions(instructions, output("instructions"), teacher)
    except GenerationFailed as e:  # written all the same; the seed tasks are still answered and trained on
        logger.warning("instruction generation: %s", str(e).splitlines()[0][:160])
    # the seed tasks are kept as they are and answered too, as the paper does with Alpaca's instructions
    answers = ResponseArgs(input=[str(seeds), str(out / "instructions")], instruction_source="alpaca")
    try:
        run_generate_responses(answers, output("responses"), teacher)
    except GenerationFailed as e:
        logger.warning("response generation: %s", str(e).splitlines()[0][:160])
    run_dedup(StageIO(input=str(out / "responses"), output=str(out / "dedup")), DedupConfig())
    filtered = run_filter(StageIO(input=str(out / "dedup"), output=str(out / "filtered")), FilterConfig())
    source = out / "filtered"
    if filtered.rows_out < 4:  # a toy teacher can fail every filter; release the deduplicated rows then
        logger.warning(
            "only %d rows pass the filters; the quickstart releases the deduplicated rows", filtered.rows_out
        )
        source = out / "dedup"
    release = PushDatasetConfig(
        input=str(source), release_dir=str(out / "dataset"), pretty_name="lamini-lm quickstart", embed="tfidf"
    )
    return run_push_dataset(release).release_dir


def _build(release: Path):
    """Prepare the release into the datasets cache, so ``load_dataset("lamini_lm/instructions")`` finds it."""
    from lamini_lm.builders.build import BuildArguments, run_build

    return run_build(BuildArguments(generated=[str(release)]))


def _train(config: QuickstartConfig, out: Path, release: Path) -> Path:
    """The LaMini-Flan-T5-77M recipe (``lamini_lm.train``) at toy scale: the toy dataset, a few epochs, CPU-sized."""
    from lamini_lm.train import load_recipe

    base = config.base_model
    if config.is_offline:
        from transformers import AutoTokenizer

        from lamini_lm.testing import build_tiny_t5

        tokenizer = AutoTokenizer.from_pretrained(out / "tokenizer")
        base = build_tiny_t5(out / "student-init", seed=config.seed, tokenizer=tokenizer)
        Manifest(
            stage="toy-student",
            config={"seed": config.seed},
            extra={"description": "tiny T5 with random weights, built from config by lamini_lm.testing"},
        ).save(base)
    recipe = load_recipe(
        "lamini-flan-t5-77m",
        model_name_or_path=str(base),
        dataset_name=str(release.resolve()),  # the card and manifest name it wherever they are read
        output_dir=str(out / "student"),
        overwrite_output_dir=True,  # the quickstart's own student of an earlier run
        resume_from_checkpoint="none",
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
    """Zero-shot scores of the student: the evaluation artifact (results, manifest) and a PNG of them."""
    from lamini_lm.evaluation.harness import EvalConfig, run_evaluate

    settings: dict[str, Any] = {"tasks": config.eval_tasks, "limit": config.eval_limit}
    if config.is_offline:
        from lamini_lm.evaluation.demo_tasks import DEMO_TASKS, write_demo_tasks

        tasks_dir = write_demo_tasks(out / "eval-tasks", n=config.eval_limit, seed=config.seed)
        settings = {"tasks": [t for t in DEMO_TASKS if t != "demo_generate"], "include_path": str(tasks_dir)}
        settings["include_defaults"] = False  # index only the local tasks, not lm-eval's thousands
    cfg = EvalConfig(
        model=str(student),
        output_dir=str(out / "eval"),
        batch_size="8",
        device="cpu",
        bootstrap_iters=0,
        seed=config.seed,
        **settings,
    )
    results, _ = run_evaluate(cfg)
    return results


def _model_card(config: QuickstartConfig, student: Path) -> Path:
    """Write the student's model card (README.md) from the manifests; publish if asked."""
    from lamini_lm.publishing.model import publish, write_model_card

    repo_id = config.push_to_hub or "your-name/lamini-quickstart-t5"
    if config.push_to_hub:
        publish(student, repo_id)  # the evaluation in out/eval is found beside the student
    else:
        write_model_card(student, repo_id)
    return student / "README.md"


def run_quickstart(config: QuickstartConfig) -> dict[str, Any]:
    """Run every stage into ``config.output``; return a summary (also written to ``summary.json``).

    ``config.output`` is refused if it holds files that are not an earlier quickstart's (unless ``overwrite``);
    an earlier quickstart's artifacts are replaced, its teacher answers reused.
    """
    out = Path(config.output)
    check_output(out, STAGE, config.overwrite)
    out.mkdir(parents=True, exist_ok=True)
    if not (out / MANIFEST_FILE).is_file():  # marks the folder as a quickstart's while it runs
        Manifest(stage=STAGE, config=config, extra={"complete": False}).save(out)
    if config.is_offline:
        print(OFFLINE_BANNER, file=sys.stderr)
    timings: dict[str, float] = {}

    @contextlib.contextmanager
    def timed(name):
        start = time.perf_counter()
        yield
        timings[name] = round(time.perf_counter() - start, 1)
        logger.info("quickstart: %s done in %.1fs", name, timings[name])

    with contextlib.ExitStack() as stack:
        with timed("teacher"):  # offline: built and fitted on the first run, then served
            teacher = stack.enter_context(_teacher(config, out))
        with timed("dataset"):
            release = _dataset(config, out, teacher)
    with timed("build"):
        built = _build(release)
    with timed("train"):
        student = _train(config, out, release)
    with timed("evaluate"):
        results = _evaluate(config, out, student)
    with timed("model card"):
        card = _model_card(config, student)
    artifacts = ["instructions", "responses", "dedup", "filtered", "dataset", "student", "eval"]
    generated = read_manifest(out / "instructions")
    parsed = generated.report("parse_instructions") if generated is not None else None
    released = read_manifest(release)
    summary = {
        "offline": config.is_offline,
        "instructions_parsed": parsed.rows_out if parsed else 0,
        "instruction_requests": parsed.details.get("requests") if parsed else 0,
        "rows": built.num_rows.get("all"),
        "sources": (released.extra.get("stats") or {}).get("counts", {}) if released is not None else {},
        "dataset": str(release),
        "load_dataset": "lamini_lm/instructions",
        "student": str(student),
        "evaluation": str(out / "eval" / "results.json"),
        "average": results.get("average"),
        "average_label": results.get("average_label"),
        "scored": {task: r.get("n") for task, r in results.get("tasks", {}).items() if r.get("value") is not None},
        "model_card": str(card),
        "timings_s": timings,
    }
    write_json(summary, out / "summary.json")
    Manifest(
        stage=STAGE,
        config=config,
        inputs=[describe_input(out / name, role=name) for name in artifacts]
        + [describe_input(out / "teacher.sqlite", role="teacher_store")],
        rows=summary["rows"],
        timings=timings,
        extra={"complete": True, "summary": summary},
    ).save(out)
    return summary


def main(argv: list[str] | None = None, prog: str = "lamini-lm quickstart") -> int:
    """Run the whole pipeline at toy scale (offline with a tiny local teacher if no key is set) into one folder."""
    from lamini_lm.config import StageParser

    parser = StageParser(
        [QuickstartConfig],
        prog=prog,
        description=main.__doc__,
        examples="  lamini-lm quickstart --output quickstart-output\n"
        "  lamini-lm quickstart --base_url http://127.0.0.1:8000/v1 --teacher_model my-model --output qs",
    )
    (config,) = parser.parse(argv)
    summary = run_quickstart(config)
    out = Path(config.output)
    average = summary["average"]
    parsed, asked = summary["instructions_parsed"], summary["instruction_requests"]
    print(f"instructions: {parsed} parsed from {asked} requests to the teacher -> {out / 'instructions'}")
    sources = ", ".join(f"{source} {n}" for source, n in summary["sources"].items())
    print(
        f"dataset: {summary['rows']} rows ({sources}) in {summary['dataset']}; "
        'load_dataset("lamini_lm/instructions") loads them'
    )
    print(f"student: {summary['student']} (model card: {summary['model_card']})")
    score = "n/a" if average is None else f"{average:.3f}"
    counts = sorted(set(summary["scored"].values()), key=str)
    n = (
        f"; n={counts[0]} each"
        if len(counts) == 1
        else "; n=" + ", ".join(f"{t} {k}" for t, k in summary["scored"].items())
    )
    print(f"evaluation: {score} ({summary['average_label'] or 'average'}{n}) -> {summary['evaluation']}")
    print(f"every artifact has its lamini_lm.json manifest; the whole summary: {out / 'summary.json'}")
    return 0
