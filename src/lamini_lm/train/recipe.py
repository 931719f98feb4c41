"""A recipe: a family's config, and the few steps that turn it into a trained student.

Example (three lines; any shipped recipe name or YAML path, any setting overridden by keyword):
    >>> from lamini_lm.train import load_recipe  # doctest: +SKIP
    >>> recipe = load_recipe("lamini-flan-t5-248m", output_dir="runs/flan-t5-248m")  # doctest: +SKIP
    >>> recipe.train()  # doctest: +SKIP
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from lamini_lm.config import ConfigError, load_yaml, parse_config
from lamini_lm.train.data import load_instruction_splits, tokenize_dataset
from lamini_lm.train.registry import RecipeFamily, get_family

__all__ = ["Recipe", "load_recipe", "merge_lora", "parse_recipe_args"]

logger = logging.getLogger(__name__)


class Recipe:
    """A family plus its config; ``build()`` makes the Trainer, ``train()`` runs (resuming) and saves the student."""

    def __init__(self, config, family: str | RecipeFamily):
        self.family = get_family(family) if isinstance(family, str) else family
        self.config = config
        self.trainer = None

    def load_tokenizer(self):
        from transformers import AutoTokenizer

        cfg = self.config
        tokenizer = AutoTokenizer.from_pretrained(cfg.tokenizer_name_or_path or cfg.model_name_or_path)
        if tokenizer.eos_token_id is None:
            raise ValueError(f"{cfg.model_name_or_path}: the tokenizer has no EOS token; students must learn to stop")
        if tokenizer.pad_token_id is None:  # GPT-2 and friends: padded positions are masked, any id will do
            tokenizer.pad_token = tokenizer.eos_token
        return tokenizer

    def load_model(self):
        import transformers

        cfg = self.config
        kwargs: dict[str, Any] = {}
        if cfg.load_in_4bit:
            from transformers.utils import is_bitsandbytes_available

            if not is_bitsandbytes_available():
                raise ImportError("load_in_4bit (QLoRA) needs bitsandbytes and a CUDA GPU: pip install bitsandbytes")
            import torch

            kwargs["quantization_config"] = transformers.BitsAndBytesConfig(
                load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_compute_dtype=torch.bfloat16
            )
        model = getattr(transformers, self.family.auto_model).from_pretrained(cfg.model_name_or_path, **kwargs)
        if cfg.use_lora:
            model = self._wrap_lora(model)
        return model

    def _wrap_lora(self, model):
        from peft import LoraConfig, TaskType, get_peft_model, prepare_model_for_kbit_training

        cfg = self.config
        if cfg.load_in_4bit:
            model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=cfg.activation_checkpointing)
        targets = cfg.lora_target_modules
        lora = LoraConfig(
            r=cfg.lora_r,
            lora_alpha=cfg.lora_alpha,
            lora_dropout=cfg.lora_dropout,
            target_modules=targets if targets == "all-linear" else [t.strip() for t in targets.split(",")],
            task_type=getattr(TaskType, self.family.task_type),
        )
        model = get_peft_model(model, lora)
        model.print_trainable_parameters()
        return model

    def build(self):
        """Load tokenizer, model and data; return the family's Trainer (also kept as ``self.trainer``)."""
        cfg = self.config
        tokenizer = self.load_tokenizer()
        model = self.load_model()
        train, evals = load_instruction_splits(cfg)
        with cfg.main_process_first(desc="tokenise"):
            train = tokenize_dataset(train, tokenizer, self.family, cfg, desc="tokenise train")
            if evals is not None:
                evals = tokenize_dataset(evals, tokenizer, self.family, cfg, desc="tokenise eval")
        if evals is None and cfg.eval_strategy != "no":
            logger.warning("no held-out split (eval_split_size=0 and no %r split): evaluation off", cfg.eval_split)
            cfg.eval_strategy = "no"
        kwargs: dict[str, Any] = {}
        generates = getattr(cfg, "predict_with_generate", False) and getattr(cfg, "rouge_eval", False)
        if self.family.compute_metrics and generates and evals is not None:
            kwargs["compute_metrics"] = self.family.metrics(tokenizer)
        multiple = 8 if (cfg.bf16 or cfg.fp16) else None  # tensor cores like multiples of 8
        self.trainer = self.family.trainer_cls(
            model=model,
            args=cfg,
            train_dataset=train,
            eval_dataset=evals,
            processing_class=tokenizer,
            data_collator=self.family.collator(tokenizer, model=model, pad_to_multiple_of=multiple),
            **kwargs,
        )
        return self.trainer

    def resume_checkpoint(self) -> str | None:
        """The checkpoint ``train()`` continues from: ``auto`` finds the last one in ``output_dir``."""
        from transformers.trainer_utils import get_last_checkpoint

        value = self.config.resume_from_checkpoint
        if value in (None, "", "none", "None", "false", "False"):
            return None
        if value == "auto":
            out = self.config.output_dir
            return get_last_checkpoint(out) if out and os.path.isdir(out) else None
        return value

    def train(self):
        """Train (continuing from the last checkpoint if there is one), save the student, return TrainOutput."""
        trainer = self.trainer or self.build()
        checkpoint = self.resume_checkpoint()
        if checkpoint:
            logger.warning("resuming from %s", checkpoint)
        result = trainer.train(resume_from_checkpoint=checkpoint)
        trainer.log_metrics("train", result.metrics)
        trainer.save_metrics("train", result.metrics)
        trainer.save_state()
        self.save()
        return result

    def save(self) -> Path:
        """Save the student to ``output_dir``: the full model, or with LoRA the adapter (in ``adapter/``) and,
        if ``merge_lora``, the merged model."""
        trainer, cfg = self.trainer, self.config
        out = Path(cfg.output_dir)
        if not cfg.use_lora:
            trainer.save_model(str(out))
            return out
        trainer.save_model(str(out / "adapter"))
        if cfg.merge_lora and trainer.is_world_process_zero():
            if cfg.load_in_4bit:
                logger.warning("not merging a 4-bit model; merge the adapter in adapter/ onto the bf16 base")
                return out
            merge_lora(out / "adapter", out, model=trainer.model, tokenizer=trainer.processing_class)
        return out


def merge_lora(adapter_dir: str | os.PathLike, output_dir: str | os.PathLike, model=None, tokenizer=None) -> Path:
    """Merge a LoRA adapter into its base model and save a plain ``transformers`` model to ``output_dir``.

    Example:
        >>> from lamini_lm.train import merge_lora  # doctest: +SKIP
        >>> merge_lora("runs/gpt2-lora/adapter", "runs/gpt2-merged")  # doctest: +SKIP
    """
    output_dir = Path(output_dir)
    if model is None:
        from peft import AutoPeftModel

        model = AutoPeftModel.from_pretrained(str(adapter_dir))
    merged = model.merge_and_unload()
    merged.save_pretrained(str(output_dir))
    if tokenizer is not None:
        tokenizer.save_pretrained(str(output_dir))
    logger.warning("merged LoRA adapter %s into %s", adapter_dir, output_dir)
    return output_dir


def _overrides_to_argv(overrides: dict[str, Any]) -> list[str]:
    argv: list[str] = []
    for key, value in overrides.items():
        values = value if isinstance(value, (list, tuple)) else [value]
        argv += [f"--{key}", *(str(v) for v in values)]
    return argv


def parse_recipe_args(argv: Sequence[str], prog: str | None = None) -> Recipe:
    """A :class:`Recipe` from ``[RECIPE.yaml | shipped-name] [--family F] [--key value ...]``."""
    from lamini_lm.recipes import recipe_path

    argv = list(argv)
    family = None
    if "--family" in argv:
        i = argv.index("--family")
        if i + 1 >= len(argv):
            raise ConfigError("--family needs a value: seq2seq or causal")
        family = argv[i + 1]
        del argv[i : i + 2]
    if argv and not argv[0].startswith("-"):
        argv[0] = str(recipe_path(argv[0]))
        family = family or load_yaml(argv[0]).get("family")
        if family is None:
            raise ConfigError(f"{argv[0]}: no `family:` key (seq2seq or causal)")
    if family is None:
        raise ConfigError("give a recipe (YAML file or shipped name) or --family seq2seq|causal")
    fam = get_family(family)
    (config,) = parse_config([fam.config_cls], argv, prog=prog, extra_yaml_keys=("family",))
    return Recipe(config, fam)


def load_recipe(name_or_path: str | None = None, family: str | None = None, **overrides: Any) -> Recipe:
    """A :class:`Recipe` from a shipped recipe name or YAML file, with settings overridden by keyword.

    Example:
        >>> from lamini_lm.train import load_recipe  # doctest: +SKIP
        >>> recipe = load_recipe("lamini-gpt-124m", output_dir="runs/g", model_name_or_path="tiny/")  # doctest: +SKIP
        >>> recipe.train()  # doctest: +SKIP
    """
    argv = ([name_or_path] if name_or_path else []) + (["--family", family] if family else [])
    return parse_recipe_args(argv + _overrides_to_argv(overrides))
