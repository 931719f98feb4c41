"""``lamini-lm train RECIPE [--key value ...]``: train a student from a YAML recipe or a shipped recipe name.

Usage:
    lamini-lm train recipes/lamini-flan-t5-248m.yaml --output_dir runs/flan-t5-248m
    lamini-lm train lamini-gpt-124m --output_dir runs/gpt --per_device_train_batch_size 8
    accelerate launch --config_file recipes/accelerate/deepspeed_zero2.yaml -m lamini_lm.train.cli \\
        recipes/lamini-flan-t5-783m.yaml --output_dir runs/flan-t5-783m

Re-running the same command after a stop continues from the last checkpoint in ``output_dir``.
"""

from __future__ import annotations

import sys

__all__ = ["main"]


def main(argv: list[str] | None = None, prog: str = "lamini-lm train") -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or (argv[0] in ("-h", "--help") and len(argv) == 1):
        from lamini_lm.recipes import list_recipes

        print(__doc__)
        print("Shipped recipes:", ", ".join(list_recipes()))
        print("All settings: lamini-lm train <recipe> --help")
        return 0
    from lamini_lm.config import ConfigError
    from lamini_lm.train.recipe import parse_recipe_args

    try:
        recipe = parse_recipe_args(argv, prog=prog)
    except (ConfigError, ValueError, FileNotFoundError) as e:
        print(f"{prog}: error: {e}", file=sys.stderr)
        return 2
    recipe.train()
    return 0


if __name__ == "__main__":
    import logging

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    sys.exit(main())
