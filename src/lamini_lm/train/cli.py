"""``lamini-lm train RECIPE [--key value ...]``: train a student from a YAML recipe or a shipped recipe name.

Usage:
    lamini-lm train recipes/lamini-flan-t5-248m.yaml --output_dir runs/flan-t5-248m
    lamini-lm train lamini-gpt-124m --output_dir runs/gpt --per_device_train_batch_size 8
    accelerate launch --multi_gpu --num_processes 2 -m lamini_lm.train.cli lamini-flan-t5-77m --output_dir runs/t5

Re-running the same command after a stop (or Ctrl-C) continues from this run's last checkpoint in ``output_dir``;
the run's record is ``output_dir/lamini_lm.json``.
"""

from __future__ import annotations

import sys

__all__ = ["main"]


def main(argv: list[str] | None = None, prog: str = "lamini-lm train") -> int:
    """Parse ``argv`` into the recipe's config (``StageParser``), train, print where the student is."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or (argv[0] in ("-h", "--help") and len(argv) == 1):
        from lamini_lm.train.recipe import TRAIN_EXAMPLES, print_recipe_usage

        what = "Train a student from a recipe (a shipped name or a YAML file); any setting can be given as a flag."
        print_recipe_usage(prog, what, TRAIN_EXAMPLES)
        return 0
    from lamini_lm.train.recipe import parse_recipe_args

    recipe = parse_recipe_args(argv, prog=prog)
    result = recipe.train()
    if recipe.trainer is None or recipe.trainer.is_world_process_zero():
        out = recipe.config.output_dir
        print(f"trained {recipe.config.model_name_or_path} for {recipe.trainer.state.global_step} steps ", end="")
        print(f"(train loss {result.training_loss:.4f}); student and manifest in {out}")
    return 0


if __name__ == "__main__":
    from lamini_lm.cli import configure_logging, run_stage_main

    args = sys.argv[1:]
    configure_logging(sum(a in ("-v", "--verbose") for a in args))
    sys.exit(run_stage_main(main, args, prog="lamini-lm train"))
