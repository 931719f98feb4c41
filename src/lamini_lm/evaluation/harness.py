"""The paper's zero-shot benchmarks through lm-evaluation-harness, with the student's prompt wrapper.

The paper applies the student's prompt wrapper during evaluation as at inference (decoder-only students: Alpaca's
no-input template). lm-eval has no such switch, so :class:`lamini_lm.evaluation.lm.WrappedHFLM` is a thin subclass of
lm-eval's ``HFLM`` that rewrites each request's context with :func:`lamini_lm.prompts.wrap_instruction` and hands it on
unchanged otherwise: tokenisation, batching, scoring and aggregation are lm-eval's own.

* decoder-only students (family ``causal``): ``backend="causal"``, context wrapped in Alpaca's no-input template,
  exactly as in training and inference;
* encoder-decoder students (family ``seq2seq``): ``backend="seq2seq"``, raw context (the paper: they take the raw
  instruction, and were trained on it);
* a family registered with :func:`lamini_lm.families.register_family`: its own backend and wrapper;
* ``wrapper=False`` (``--no-wrapper``): raw contexts for every model, for base models that were never trained on
  a wrapper (GPT-2, T5, LLaMA, ...); the paper does not say how its base-model columns were prompted.

``clean_against=`` (``--clean_against DATASET``): each task is also scored on its clean subset, the items that
share no 13-gram with the training data (:mod:`lamini_lm.evaluation.clean`), from the same run's per-item results;
both are reported per task (``results["tasks"][task]["clean"]``, a table in results.md, the manifest).

Example:
    >>> from lamini_lm.evaluation import evaluate_model
    >>> results = evaluate_model("MBZUAI/LaMini-GPT-124M", tasks=["sciq", "rte"], limit=50)  # doctest: +SKIP
    >>> results["average"], results["tasks"]["sciq"]["metric"]  # doctest: +SKIP
    (0.61, 'acc_norm')
"""

from __future__ import annotations

import dataclasses
import logging
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from lamini_lm.families import detect_family as detect
from lamini_lm.families import get_family
from lamini_lm.prompts import Family, detect_family  # detect_family re-exported: it was first defined here

__all__ = [
    "EvalConfig",
    "detect_family",
    "evaluate_model",
    "main",
    "make_lm",
    "parse_metric_overrides",
    "resolve_device",
    "run_evaluate",
    "save_evaluation",
]

logger = logging.getLogger(__name__)


@dataclasses.dataclass
class EvalConfig:
    """Settings of ``lamini-lm evaluate``."""

    model: str = dataclasses.field(
        default=None,
        metadata={
            "help": "student to evaluate: a local folder or a Hub id (also the first argument)",
            "required": True,
        },
    )
    output_dir: str = dataclasses.field(
        default=None,
        metadata={
            "help": "where to write results.json/.md/.csv and the manifest lamini_lm.json "
            "(default: eval/<model folder name>)"
        },
    )
    overwrite: bool = dataclasses.field(
        default=False, metadata={"help": "replace output_dir even if it holds files that are not an evaluation"}
    )
    tasks: list[str] = dataclasses.field(
        default=None, metadata={"help": "lm-eval task names (default: the paper's 15 tasks)"}
    )
    wrapper: bool = dataclasses.field(
        default=True,
        metadata={
            "help": "wrap contexts as the student was trained (Alpaca for decoder-only, raw for "
            "encoder-decoder); --no_wrapper scores raw contexts, e.g. for base models"
        },
    )
    family: str = dataclasses.field(
        default=None,
        metadata={"help": "a registered model family: causal, seq2seq, ... (default: detected from the config)"},
    )
    limit: float = dataclasses.field(
        default=None, metadata={"help": "examples per task (an int, or a fraction < 1); for quick checks only"}
    )
    batch_size: str = dataclasses.field(default="8", metadata={"help": "batch size, or 'auto' (lm-eval's search)"})
    device: str = dataclasses.field(default=None, metadata={"help": "torch device (default: cuda if available)"})
    dtype: str = dataclasses.field(default="auto", metadata={"help": "torch dtype to load the model in"})
    include_path: str = dataclasses.field(
        default=None, metadata={"help": "a folder of extra lm-eval task YAMLs (local data, custom tasks)"}
    )
    include_defaults: bool = dataclasses.field(
        default=True, metadata={"help": "index lm-eval's built-in tasks too (--no_include_defaults: only yours)"}
    )
    metrics: list[str] = dataclasses.field(
        default=None, metadata={"help": "metric overrides as task=metric, for tasks outside the paper's table"}
    )
    bootstrap_iters: int = dataclasses.field(
        default=1000,
        metadata={
            "help": "bootstrap iterations for the stderr of non-mean metrics such as ReCoRD's f1 (0: skip); "
            "acc stderr is closed-form. lm-eval's 100000 makes f1 on 10K examples take many minutes"
        },
    )
    log_samples: bool = dataclasses.field(
        default=False, metadata={"help": "also write every scored request to samples.jsonl (what the model saw)"}
    )
    seed: int = dataclasses.field(default=0, metadata={"help": "random, numpy and torch seed of lm-eval"})
    clean_against: str = dataclasses.field(
        default=None,
        metadata={
            "help": "training data (a file or dataset folder with instruction/response): also score each task on "
            "its items that share no --clean_ngram-gram with it, and report both"
        },
    )
    clean_ngram: int = dataclasses.field(
        default=13, metadata={"help": "n-gram length (words) of --clean_against's overlap test"}
    )

    def __post_init__(self):
        from lamini_lm.config import check_range

        check_range("clean_ngram", self.clean_ngram, 1)


def resolve_device(device: str | None) -> str:
    """``device`` as given, else ``"cuda"`` when a GPU is visible, else ``"cpu"``."""
    if device:
        return device
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def make_lm(
    model: str | os.PathLike | Any,
    *,
    family: Family | None = None,
    wrapper: bool = True,
    batch_size: int | str = 8,
    device: str | None = None,
    dtype: str = "auto",
    **hflm_kwargs,
):
    """A :class:`WrappedHFLM` for ``model`` (folder, Hub id or loaded ``PreTrainedModel``), family auto-detected."""
    family = get_family(family) if family else detect(model)  # an unknown name is refused here
    pretrained = str(model) if isinstance(model, os.PathLike) else model
    from lamini_lm.evaluation.lm import WrappedHFLM

    return WrappedHFLM(
        pretrained=pretrained,
        family=family,
        wrap=wrapper,
        batch_size=batch_size,
        device=resolve_device(device),
        dtype=dtype,
        **hflm_kwargs,
    )


def evaluate_model(
    model: str | os.PathLike | Any,
    tasks: Sequence[str] | None = None,
    *,
    wrapper: bool = True,
    family: Family | None = None,
    limit: int | float | None = None,
    batch_size: int | str = 8,
    device: str | None = None,
    dtype: str = "auto",
    include_path: str | os.PathLike | Sequence[str | os.PathLike] | None = None,
    include_defaults: bool = True,
    metrics: Mapping[str, str] | None = None,
    bootstrap_iters: int = 1000,
    log_samples: bool = False,
    seed: int = 0,
    clean_against: Any = None,
    clean_ngram: int = 13,
    **simple_evaluate_kwargs,
) -> dict | None:
    """Score ``model`` zero-shot on ``tasks`` (default: the paper's 15) with ``lm_eval.simple_evaluate``.

    ``model`` is a folder, a Hub id, a loaded ``PreTrainedModel`` or a ready lm-eval ``LM``. Returns the summary of
    :func:`lamini_lm.evaluation.results.summarize`: per task the paper's metric (or ``metrics[task]``), its value
    and stderr, the unweighted average, and lm-eval's own results under ``"lm_eval"``.

    ``clean_against``: training data (a Dataset, file or folder); each task also gets ``"clean"``: its metric on
    the items sharing no ``clean_ngram``-gram with it (:func:`lamini_lm.evaluation.clean.clean_scores`), computed
    from lm-eval's per-item results of this same run.

    Example:
        >>> results = evaluate_model("runs/lamini-gpt-124m", tasks=["sciq"], limit=100)  # doctest: +SKIP
    """
    import lm_eval
    from lm_eval.api.model import LM
    from lm_eval.tasks import TaskManager

    from lamini_lm.evaluation.results import summarize
    from lamini_lm.paper import PAPER_TASKS

    tasks = list(tasks) if tasks else [t.task for t in PAPER_TASKS]
    training = None
    if clean_against is not None:  # a bad training file fails now, not after minutes of scoring
        from lamini_lm.evaluation.clean import load_training

        training = load_training(clean_against)
    if isinstance(model, LM):
        lm = model
    else:
        lm = make_lm(model, family=family, wrapper=wrapper, batch_size=batch_size, device=device, dtype=dtype)
    paths = [include_path] if isinstance(include_path, (str, os.PathLike)) else include_path
    task_manager = TaskManager(
        include_path=[str(p) for p in paths] if paths else None, include_defaults=include_defaults
    )
    logger.info("evaluating %s on %d task(s): %s", model, len(tasks), ", ".join(tasks))
    raw = lm_eval.simple_evaluate(
        model=lm,
        tasks=tasks,
        num_fewshot=0,
        limit=limit,
        task_manager=task_manager,
        bootstrap_iters=bootstrap_iters,
        log_samples=log_samples or clean_against is not None,  # the clean score is read off the per-item values
        random_seed=seed,
        numpy_random_seed=seed,
        torch_random_seed=seed,
        fewshot_random_seed=seed,
        **simple_evaluate_kwargs,
    )
    if raw is None:  # a non-zero rank of a multi-process run: rank 0 reports
        return None
    if log_samples and getattr(lm, "wrap", False):
        _show_wrapped_arguments(raw, lm)
    name = (
        str(model)
        if isinstance(model, (str, os.PathLike))
        else getattr(getattr(model, "config", None), "_name_or_path", type(model).__name__)
    )
    summary = summarize(
        raw,
        model=name,
        metrics=metrics,
        family=getattr(lm, "family", None),
        wrapper=getattr(lm, "wrap", None),
    )
    if clean_against is not None:
        from lamini_lm.evaluation.clean import clean_scores

        columns = ["instruction", "response"]
        for task, clean in clean_scores(raw, summary, training, ngram=clean_ngram, columns=columns).items():
            summary["tasks"][task]["clean"] = clean
        where = clean_against if isinstance(clean_against, (str, os.PathLike)) else type(clean_against).__name__
        summary["clean_against"] = {"dataset": str(where), "ngram": clean_ngram, "columns": columns}
        if not log_samples:
            summary.pop("samples", None)
    return summary


def _show_wrapped_arguments(raw: dict, lm) -> None:
    """Logged samples keep the task's raw text; write in what the model was really shown instead."""
    for task, rows in (raw.get("samples") or {}).items():
        if (raw.get("configs") or {}).get(task, {}).get("output_type") == "loglikelihood_rolling":
            continue  # never wrapped
        for row in rows:
            row["arguments"] = [[lm.wrap_context(a[0]), *a[1:]] for a in row["arguments"]]


def save_evaluation(
    results: Mapping[str, Any],
    output_dir: str | os.PathLike,
    model: str | os.PathLike | None = None,
    config: EvalConfig | Mapping[str, Any] | None = None,
    model_input: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Write the evaluation artifact into ``output_dir``: results.json/.md/.csv and the manifest ``lamini_lm.json``
    (stage ``evaluate``; input: the student with role ``model``, so ``publish`` and lineage find it; extra: the
    average and each task's metric and value). Returns the written paths."""
    from lamini_lm.artifacts import Manifest, describe_input
    from lamini_lm.evaluation.results import save_results

    written = save_results(results, output_dir)
    entry = (
        dict(model_input)
        if model_input
        else describe_input(model if model is not None else results.get("model"), role="model")
    )
    inputs = [entry]
    clean = results.get("clean_against")
    if clean:
        from lamini_lm.evaluation.clean import format_clean_table
        from lamini_lm.io import write_text_atomic

        markdown = written["markdown"]
        write_text_atomic(markdown, markdown.read_text(encoding="utf-8") + "\n" + format_clean_table(results) + "\n")
        if os.path.exists(clean["dataset"]):
            inputs.append(describe_input(clean["dataset"], role="clean_against"))
    tasks = {
        name: {k: task.get(k) for k in ("metric", "value", "stderr", "clean") if k in task}
        for name, task in (results.get("tasks") or {}).items()
        if isinstance(task, Mapping)
    }
    settings = dataclasses.asdict(config) if dataclasses.is_dataclass(config) else dict(config or {})
    manifest = Manifest(
        stage="evaluate",
        config=settings,
        inputs=inputs,
        extra={
            "average": results.get("average"),
            "tasks": tasks,
            "results_file": "results.json",
            **({"clean_against": clean} if clean else {}),
        },
    )
    written["manifest"] = manifest.save(output_dir)
    return written


def parse_metric_overrides(items: Sequence[str] | None) -> dict[str, str]:
    """``["task=metric", ...]`` -> ``{"task": "metric"}``, with an error naming a malformed item."""
    out = {}
    for item in items or []:
        task, sep, metric = item.partition("=")
        if not sep or not task or not metric:
            raise ValueError(f"--metrics expects task=metric, got {item!r}")
        out[task] = metric
    return out


EVALUATE_EXAMPLES = """\
  lamini-lm evaluate runs/flan-t5-77m --output_dir runs/eval
  lamini-lm evaluate MBZUAI/LaMini-GPT-124M --tasks sciq rte --limit 100
  lamini-lm evaluate runs/t5 --include_path my_tasks/ --no_include_defaults --tasks my_task
  lamini-lm evaluate runs/lamini-gpt-124m --clean_against lamini-output/responses"""


def run_evaluate(cfg: EvalConfig) -> tuple[dict | None, Path]:
    """``lamini-lm evaluate``: score ``cfg.model`` and write the evaluation artifact (results.json/.md/.csv and the
    manifest ``lamini_lm.json``) into ``cfg.output_dir``; return ``(results, output_dir)`` (results None on the
    ranks other than 0 of a multi-process run). The output folder and the model are checked before any scoring.

    Example:
        >>> from lamini_lm.evaluation.harness import EvalConfig, run_evaluate
        >>> results, folder = run_evaluate(EvalConfig(model="runs/t5", tasks=["sciq"], limit=50))  # doctest: +SKIP
    """
    from lamini_lm.artifacts import artifact_output, check_output, describe_input
    from lamini_lm.errors import OfflineError, UsageError
    from lamini_lm.evaluation.plots import plot_comparison
    from lamini_lm.sources import check_source

    if check_source(cfg.model, "model", "MODEL") == "path" and not (Path(cfg.model) / "config.json").is_file():
        raise UsageError(f"MODEL {cfg.model}: not a model folder (no config.json); give a folder written by training")
    output_dir = Path(cfg.output_dir or Path("eval") / Path(cfg.model.rstrip("/")).name)
    check_output(output_dir, "evaluate", cfg.overwrite, flag="--output_dir")  # before minutes of scoring
    model_input = describe_input(cfg.model, role="model")
    limit = cfg.limit
    if limit is not None and limit >= 1:
        limit = int(limit)
    batch_size = cfg.batch_size if cfg.batch_size == "auto" or ":" in cfg.batch_size else int(cfg.batch_size)
    _check_task_data(cfg)
    try:
        results = _evaluate(cfg, limit, batch_size)
    except ConnectionError as e:
        raise OfflineError(
            f"an evaluation task's data cannot be loaded ({str(e).splitlines()[0]}); {_LOCAL_TASKS_HINT}"
        ) from None
    if results is None:  # not rank 0 of a multi-process run
        return None, output_dir
    with artifact_output(output_dir, "evaluate", cfg.overwrite, flag="--output_dir") as tmp:
        save_evaluation(results, tmp, cfg.model, cfg, model_input=model_input)
        plot_comparison([results], tmp / "results.png", labels=[Path(cfg.model.rstrip("/")).name])
    return results, output_dir


_LOCAL_TASKS_HINT = (
    "offline, score tasks on local files (--include_path DIR --no_include_defaults --tasks NAME ...; see "
    "docs/evaluation.md), or run once online so the datasets cache holds them"
)


def _check_task_data(cfg: EvalConfig) -> None:
    """Online, one quick look at the first paper task's dataset on the Hub: an unreachable Hub is one line in
    seconds, not a traceback after the loaders' retries."""
    from lamini_lm.errors import OfflineError
    from lamini_lm.paper import PAPER_TASKS, paper_task
    from lamini_lm.sources import check_source, is_offline

    first = paper_task((cfg.tasks or [PAPER_TASKS[0].task])[0])
    if first is None or cfg.include_path or is_offline():
        return
    try:
        check_source(first.dataset, "dataset", f"task {first.task}:")
    except OfflineError as e:
        raise OfflineError(f"{e}; {_LOCAL_TASKS_HINT}") from None


def _evaluate(cfg: EvalConfig, limit, batch_size):
    return evaluate_model(
        cfg.model,
        cfg.tasks,
        wrapper=cfg.wrapper,
        family=cfg.family,
        limit=limit,
        batch_size=batch_size,
        device=cfg.device,
        dtype=cfg.dtype,
        include_path=cfg.include_path,
        include_defaults=cfg.include_defaults,
        metrics=parse_metric_overrides(cfg.metrics),
        bootstrap_iters=cfg.bootstrap_iters,
        log_samples=cfg.log_samples,
        seed=cfg.seed,
        clean_against=cfg.clean_against,
        clean_ngram=cfg.clean_ngram,
    )


def main(argv: list[str] | None = None, prog: str = "lamini-lm evaluate") -> int:
    """Score a student on the paper's 15 zero-shot tasks; write results.json/.md/.csv and the manifest."""
    from lamini_lm.config import StageParser
    from lamini_lm.evaluation.results import format_table

    parser = StageParser(
        [EvalConfig], prog=prog, description=main.__doc__, examples=EVALUATE_EXAMPLES, positionals=("model",)
    )
    (cfg,) = parser.parse(argv)
    results, output_dir = run_evaluate(cfg)
    if results is None:
        return 0
    print(format_table([results]))
    if results.get("clean_against"):
        from lamini_lm.evaluation.clean import format_clean_table

        print(format_clean_table(results))
    print(f"wrote {output_dir} (results.json, results.md, results.csv, results.png, lamini_lm.json)")
    return 0
