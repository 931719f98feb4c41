"""Recipe settings: one dataclass per family, each a ``TrainingArguments`` subclass plus the fields training needs.

The pattern is TRL's ``SFTConfig``: the Trainer's own arguments stay as they are (checkpoints, logging,
``report_to``, mixed precision, DeepSpeed/FSDP), the recipe adds model, data, length and LoRA fields, and the
defaults it changes sit in labelled blocks: the ones both families share in ``_PaperDefaults``, the
family-specific ones (learning rate, generation) on each class. ``HfArgumentParser`` reads YAML and flags into them.

Example:
    >>> from lamini_lm.train.config import Seq2SeqRecipeConfig
    >>> cfg = Seq2SeqRecipeConfig(output_dir="runs/demo", model_name_or_path="google/flan-t5-small")
    >>> cfg.learning_rate, cfg.num_train_epochs, cfg.train_sampling_strategy
    (0.0005, 5.0, 'group_by_length')
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from transformers import Seq2SeqTrainingArguments, TrainingArguments

from lamini_lm.config import ConfigError, check_range

__all__ = ["CausalRecipeConfig", "RecipeArguments", "Seq2SeqRecipeConfig"]

logger = logging.getLogger(__name__)


@dataclass
class RecipeArguments:
    """What both families add to the Trainer's arguments: family, model, data, lengths, LoRA, output safety."""

    family: str | None = field(
        default=None, metadata={"help": "the student family this config trains (seq2seq or causal); set by the recipe"}
    )
    # Model
    model_name_or_path: str | None = field(
        default=None, metadata={"help": "the base model: a Hub id (e.g. google/flan-t5-base) or a local folder"}
    )
    tokenizer_name_or_path: str | None = field(
        default=None, metadata={"help": "tokenizer to use if not the model's own (Hub id or folder)"}
    )
    # Data
    dataset_name: str = field(
        default="MBZUAI/LaMini-instruction",
        metadata={
            "help": "instruction/response data: a Hub id (MBZUAI/LaMini-instruction, lamini_lm/instructions), a "
            "folder written by Dataset.save_to_disk, or a .parquet/.jsonl/.json/.csv file"
        },
    )
    dataset_config_name: str | None = field(default=None, metadata={"help": "the dataset's config name, if any"})
    instruction_column: str = field(default="instruction", metadata={"help": "column holding the instruction"})
    response_column: str = field(default="response", metadata={"help": "column holding the teacher's response"})
    train_split: str = field(default="train", metadata={"help": "split to train on"})
    eval_split: str = field(
        default="validation",
        metadata={"help": "held-out split to evaluate on if the dataset has it; else eval_split_size is carved off"},
    )
    eval_split_size: float = field(
        default=0.01,
        metadata={"help": "fraction (<1) or count (>=1) of train rows held out when there is no eval split; 0: none"},
    )
    max_train_samples: int | None = field(default=None, metadata={"help": "use only this many training rows"})
    max_eval_samples: int | None = field(default=None, metadata={"help": "use only this many held-out rows"})
    preprocessing_num_workers: int | None = field(default=None, metadata={"help": "processes for tokenisation"})
    # LoRA / QLoRA
    use_lora: bool = field(default=False, metadata={"help": "train a LoRA adapter instead of all weights"})
    lora_r: int = field(default=16, metadata={"help": "LoRA rank"})
    lora_alpha: int = field(default=32, metadata={"help": "LoRA scaling alpha"})
    lora_dropout: float = field(default=0.05, metadata={"help": "LoRA dropout"})
    lora_target_modules: str = field(
        default="all-linear", metadata={"help": "comma-separated module names for LoRA, or 'all-linear'"}
    )
    load_in_4bit: bool = field(
        default=False, metadata={"help": "QLoRA: load the base model in 4-bit (needs bitsandbytes and a GPU)"}
    )
    merge_lora: bool = field(
        default=True,
        metadata={"help": "after LoRA training, merge the adapter and save a plain model to output_dir"},
    )

    # Batching (lamini_lm.train.packing): fewer padded tokens per step
    packing: bool = field(
        default=False,
        metadata={
            "help": "decoder-only families: pack each batch's examples padding-free into rows of max_length tokens "
            "(position ids restart per example, no token attends across examples; checked on the model before "
            "training); the batch in examples is unchanged"
        },
    )
    batch_by_tokens: bool = field(
        default=False,
        metadata={
            "help": "build batches by a token budget (max_tokens_per_batch, padding included; lengths bucketed) "
            "instead of a fixed per_device_train_batch_size examples"
        },
    )
    max_tokens_per_batch: int | None = field(
        default=None,
        metadata={
            "help": "with batch_by_tokens: input + label tokens per batch, padding included; default: calibrated so "
            "a batch holds per_device_train_batch_size examples on average"
        },
    )

    overwrite_output_dir: bool = field(
        default=False,
        metadata={
            "help": "train into output_dir even if it holds other files or another run's checkpoints "
            "(starts fresh; nothing there is deleted, files the run writes are replaced)"
        },
    )

    def _check_recipe(self) -> None:
        if self.family is None:
            self.family = type(self).__dataclass_fields__["family"].default
        if self.family is not None:
            from lamini_lm.families import get_family

            try:
                expected = get_family(self.family).config_cls
            except ValueError as e:
                raise ConfigError(f"--family: {e}") from None
            if not isinstance(self, expected):
                raise ConfigError(
                    f"--family {self.family}: its recipes use {expected.__name__}, not {type(self).__name__}"
                )
        self._check_batching()
        if not self.model_name_or_path:
            raise ConfigError("model_name_or_path is required (a Hub id or a local model folder)")
        if self.load_in_4bit and not self.use_lora:
            raise ConfigError("--load_in_4bit is QLoRA: set --use_lora too")
        check_range("eval_split_size", self.eval_split_size, 0)
        if self.bf16 and not self.use_cpu:
            # recipes say bf16 for GPUs; the same recipe on a laptop or CI should still run, in fp32, and say so
            from transformers.utils import is_torch_bf16_gpu_available, is_torch_xla_available

            if not is_torch_bf16_gpu_available() and not is_torch_xla_available():
                logger.warning("bf16 asked for but no bf16 GPU here: training in fp32")
                self.bf16 = False
        if self.dataloader_pin_memory:  # pinned memory only helps copies to an accelerator
            import torch

            if not torch.cuda.is_available():
                self.dataloader_pin_memory = False

    def _check_batching(self) -> None:
        if self.packing:
            from lamini_lm.families import get_family

            family = get_family(self.family) if self.family else None
            if family is not None and not family.can_pack:
                raise ConfigError(
                    f"--packing: the {family.name} family ({family.description}) cannot pack its batches; "
                    "use --batch_by_tokens true for full batches instead"
                )
            if getattr(self, "use_cache", False):
                raise ConfigError("--packing needs --use_cache false (a cache turns off packed-sequence masking)")
        if self.max_tokens_per_batch is not None:
            if not self.batch_by_tokens:
                raise ConfigError(
                    "--max_tokens_per_batch is the budget of --batch_by_tokens: set --batch_by_tokens true"
                )
            check_range("max_tokens_per_batch", self.max_tokens_per_batch, 1)


@dataclass
class _PaperDefaults(RecipeArguments):
    """The Trainer defaults both families change (the paper's settings), and the check both run.

    Every field here already exists on ``TrainingArguments``, so a subclass keeps each in the Trainer's own
    position; only the default and help text change. Family-specific defaults stay on the family's class.
    """

    # --- defaults changed from TrainingArguments (the paper's settings) ---
    output_dir: str | None = field(default=None, metadata={"help": "where checkpoints and the model go"})
    num_train_epochs: float = field(default=5.0, metadata={"help": "5 epochs (the paper)"})
    lr_scheduler_type: str = field(default="linear", metadata={"help": "linear decay (the paper)"})
    train_sampling_strategy: str = field(
        default="group_by_length", metadata={"help": "batch similar lengths together: less padding, same data"}
    )
    remove_unused_columns: bool = field(
        default=False, metadata={"help": "kept False: the recipe's collator drops the length column itself"}
    )
    eval_strategy: str = field(default="epoch", metadata={"help": "evaluate on the held-out split every epoch"})
    save_strategy: str = field(default="epoch", metadata={"help": "checkpoint every epoch (resume continues)"})
    logging_steps: float = field(default=10, metadata={"help": "log every N steps"})
    save_total_limit: int | None = field(default=2, metadata={"help": "keep the last N checkpoints"})
    resume_from_checkpoint: str | None = field(
        default="auto", metadata={"help": "'auto': continue from the last checkpoint in output_dir; a path; or none"}
    )
    # --- end of changed defaults ---

    def __post_init__(self):
        self._check_recipe()
        super().__post_init__()


@dataclass
class Seq2SeqRecipeConfig(_PaperDefaults, Seq2SeqTrainingArguments):
    """Settings of an encoder-decoder student (T5, Flan-T5): raw instruction in, teacher's response out."""

    family: str | None = field(default="seq2seq", metadata={"help": "the student family: seq2seq"})

    max_source_length: int = field(default=512, metadata={"help": "instruction tokens kept (EOS included)"})
    max_target_length: int = field(default=512, metadata={"help": "response tokens kept (EOS included)"})
    rouge_eval: bool = field(
        default=True,
        metadata={"help": "with predict_with_generate, report ROUGE-L of generations against held-out responses"},
    )

    # --- defaults changed from Seq2SeqTrainingArguments for encoder-decoder students (the rest: _PaperDefaults) ---
    learning_rate: float = field(default=5e-4, metadata={"help": "5e-4 for encoder-decoder students (the paper)"})
    predict_with_generate: bool = field(default=True, metadata={"help": "generate during eval (for ROUGE-L)"})
    generation_max_length: int | None = field(default=256, metadata={"help": "max new tokens when generating"})
    # --- end of changed defaults ---


@dataclass
class CausalRecipeConfig(_PaperDefaults, TrainingArguments):
    """Settings of a decoder-only student (GPT-2, Cerebras-GPT, GPT-Neo, LLaMA): Alpaca-wrapped prompt, loss on
    the response only."""

    family: str | None = field(default="causal", metadata={"help": "the student family: causal"})

    max_length: int = field(default=512, metadata={"help": "prompt + response tokens kept (EOS included)"})

    # --- defaults changed from TrainingArguments for decoder-only students (the rest: _PaperDefaults) ---
    learning_rate: float = field(default=2e-5, metadata={"help": "2e-5 for decoder-only students (Alpaca's)"})
    # --- end of changed defaults ---
