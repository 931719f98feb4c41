"""Evaluation: the paper's 15 zero-shot benchmarks through lm-evaluation-harness, and the A-D rubric judge."""

__all__: list[str] = []
