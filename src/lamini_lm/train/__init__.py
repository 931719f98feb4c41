"""Training: ``import lamini_lm.train`` for the Seq2Seq and causal recipes of the LaMini herd.

Example:
    >>> from lamini_lm.train import load_recipe  # doctest: +SKIP
    >>> recipe = load_recipe("lamini-flan-t5-248m", output_dir="runs/flan-t5-248m")  # doctest: +SKIP
    >>> recipe.train()  # doctest: +SKIP
"""

from lamini_lm.train.config import CausalRecipeConfig, RecipeArguments, Seq2SeqRecipeConfig
from lamini_lm.train.data import DataCollatorForRecipes, load_instruction_splits, tokenize_causal, tokenize_seq2seq
from lamini_lm.train.metrics import mean_rouge_l
from lamini_lm.train.recipe import Recipe, load_recipe, merge_lora, parse_recipe_args
from lamini_lm.train.registry import RecipeFamily, get_family, list_families, register_family
from lamini_lm.train.trainers import CausalRecipeTrainer, Seq2SeqRecipeTrainer

__all__ = [
    "CausalRecipeConfig",
    "CausalRecipeTrainer",
    "DataCollatorForRecipes",
    "Recipe",
    "RecipeArguments",
    "RecipeFamily",
    "Seq2SeqRecipeConfig",
    "Seq2SeqRecipeTrainer",
    "get_family",
    "list_families",
    "load_instruction_splits",
    "load_recipe",
    "mean_rouge_l",
    "merge_lora",
    "parse_recipe_args",
    "register_family",
    "tokenize_causal",
    "tokenize_seq2seq",
]
