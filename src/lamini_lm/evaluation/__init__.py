"""Evaluation: the paper's 15 zero-shot benchmarks through lm-evaluation-harness, and the A-D rubric judge.

Heavy packages (lm_eval, torch, transformers, openai) are imported inside the functions that need them.

Example:
    >>> from lamini_lm.evaluation import evaluate_model, save_results
    >>> results = evaluate_model("runs/lamini-gpt-124m", tasks=["sciq", "rte"], limit=100)  # doctest: +SKIP
    >>> save_results(results, "eval/lamini-gpt-124m")  # doctest: +SKIP
"""

from lamini_lm.evaluation.harness import EvalConfig, detect_family, evaluate_model, make_lm
from lamini_lm.evaluation.judge import Judgement, judge_answers, parse_rating, rubric_counts
from lamini_lm.evaluation.plots import plot_comparison, plot_rubric
from lamini_lm.evaluation.results import (
    eval_results_for_card,
    format_table,
    load_results,
    results_frame,
    save_results,
    select_metric,
    summarize,
)
from lamini_lm.paper import PAPER_AVERAGES, PAPER_RUBRIC, PAPER_TASKS, PaperTask

__all__ = [
    "PAPER_AVERAGES",
    "PAPER_RUBRIC",
    "PAPER_TASKS",
    "EvalConfig",
    "Judgement",
    "PaperTask",
    "detect_family",
    "eval_results_for_card",
    "evaluate_model",
    "format_table",
    "judge_answers",
    "load_results",
    "make_lm",
    "parse_rating",
    "plot_comparison",
    "plot_rubric",
    "results_frame",
    "rubric_counts",
    "save_results",
    "select_metric",
    "summarize",
]
