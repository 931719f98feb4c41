"""A recipe: a family's config, and the few steps that turn it into a trained student with its manifest.

``Recipe.train()`` refuses an ``output_dir`` that holds someone else's files or another run's checkpoints, resumes
only its own run's checkpoints, saves a checkpoint on Ctrl-C, and leaves ``output_dir/lamini_lm.json``: the
training manifest (config, inputs with their lineage, base model, dataset ids, world size, effective batch,
precision, seed, parameters, steps, losses, teacher models) that the model card is rendered from.

Example (three lines; any shipped recipe name or YAML path, any setting overridden by keyword):
    >>> from lamini_lm.train import load_recipe  # doctest: +SKIP
    >>> recipe = load_recipe("lamini-flan-t5-248m", output_dir="runs/flan-t5-248m")  # doctest: +SKIP
    >>> recipe.train()  # doctest: +SKIP
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from lamini_lm.artifacts import Manifest, describe_input, lineage, read_manifest
from lamini_lm.config import ConfigError, StageParser, config_from_dict, load_yaml
from lamini_lm.errors import OutputExistsError, UsageError
from lamini_lm.train.data import load_instruction_splits, tokenize_dataset
from lamini_lm.train.distill import distillation_facts, is_distill_config, wants_distillation
from lamini_lm.train.registry import RecipeFamily, get_family

__all__ = ["Recipe", "load_recipe", "merge_lora", "parse_recipe_args", "recipe_parser"]

logger = logging.getLogger(__name__)

STAGE = "train"
# What makes two runs "the same run": a checkpoint is resumed only when all of these agree.
IDENTITY_KEYS = ("recipe", "family", "base_model", "data", "dataset_config_name", "use_lora", "teacher")
# TrainingArguments shown on the card (left out when zero/False/empty: features not used).
CARD_HYPERPARAMETERS = (
    "learning_rate",
    "num_train_epochs",
    "max_steps",
    "per_device_train_batch_size",
    "gradient_accumulation_steps",
    "lr_scheduler_type",
    "warmup_steps",
    "weight_decay",
    "optim",
    "max_source_length",
    "max_target_length",
    "max_length",
    "lora_r",
    "lora_alpha",
)
_NONE = (None, "", "none", "None", "false", "False")


class Recipe:
    """A family plus its config; ``build()`` makes the Trainer, ``train()`` runs (resuming) and saves the student."""

    def __init__(self, config, family: str | RecipeFamily | None = None, name: str | None = None):
        family = family or config.family
        self.family = get_family(family) if isinstance(family, str) else family
        self.config = config
        self.name = name  # the recipe's name (shipped name or YAML file stem), recorded in the manifest
        self.trainer = None
        self._identity: dict[str, Any] | None = None

    def load_tokenizer(self):
        from transformers import AutoTokenizer

        cfg = self.config
        tokenizer = AutoTokenizer.from_pretrained(cfg.tokenizer_name_or_path or cfg.model_name_or_path)
        if tokenizer.eos_token_id is None:
            raise UsageError(f"{cfg.model_name_or_path}: the tokenizer has no EOS token; students must learn to stop")
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
        from lamini_lm.families import check_model_family
        from lamini_lm.sources import check_source

        check_source(cfg.model_name_or_path, "model", "--model_name_or_path")
        check_model_family(cfg.model_name_or_path, self.family, "--model_name_or_path")
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
        train, evals = load_instruction_splits(cfg)  # first: a wrong dataset costs no model download
        tokenizer = self.load_tokenizer()
        model = self.load_model()
        with cfg.main_process_first(desc="tokenise"):
            same = (tokenizer, self.family, cfg.response_column)
            keep = _keep_teacher_columns if is_distill_config(cfg) else lambda raw, rows, *_: rows  # SFT: text only
            train = keep(train, tokenize_dataset(train, tokenizer, self.family, cfg, desc="tokenise train"), *same)
            if evals is not None:
                evals = keep(evals, tokenize_dataset(evals, tokenizer, self.family, cfg, desc="tokenise eval"), *same)
        if evals is None and cfg.eval_strategy != "no":
            logger.warning("no held-out split (eval_split_size=0 and no %r split): evaluation off", cfg.eval_split)
            cfg.eval_strategy = "no"
        kwargs: dict[str, Any] = {}
        generates = getattr(cfg, "predict_with_generate", False) and getattr(cfg, "rouge_eval", False)
        if self.family.compute_metrics and generates and evals is not None:
            kwargs["compute_metrics"] = self.family.metrics(tokenizer)
        multiple = 8 if (cfg.bf16 or cfg.fp16) else None  # tensor cores like multiples of 8
        trainer_cls = self.family.trainer_cls
        if is_distill_config(cfg):  # the family's trainer with the distillation loss
            from lamini_lm.train.distill import distill_trainer_cls

            trainer_cls = distill_trainer_cls(self.family)
        self.trainer = trainer_cls(
            model=model,
            args=cfg,
            train_dataset=train,
            eval_dataset=evals,
            processing_class=tokenizer,
            data_collator=self.family.collator(tokenizer, model=model, pad_to_multiple_of=multiple),
            **kwargs,
        )
        if cfg.packing:
            self._use_packing(tokenizer)
        return self.trainer

    def _use_packing(self, tokenizer) -> None:
        """``packing: true``: training batches packed padding-free, once the model proves it keeps examples apart
        (:func:`lamini_lm.train.packing.check_packing`)."""
        from lamini_lm.train.packing import check_packing

        trainer, cfg = self.trainer, self.config
        one_row = check_packing(trainer.model, use_cache=bool(cfg.use_cache))
        packed = self.family.packing_collator(
            tokenizer, model=trainer.model, max_row_tokens=getattr(cfg, "max_length", None), one_row=one_row
        )
        trainer.packing_collator = packed  # training batches only; evaluation keeps the padded ones

    # --- the run's identity and output safety ---

    def inputs(self) -> list[dict[str, Any]]:
        """The manifest entries of the dataset and the base model (path + fingerprint + lineage, or Hub id)."""
        cfg = self.config
        inputs = [
            describe_input(cfg.dataset_name, role="dataset"),
            describe_input(cfg.model_name_or_path, role="base_model"),
        ]
        if getattr(cfg, "teacher_model_name_or_path", None):  # token-level distillation: the teacher is an input
            inputs.append(describe_input(cfg.teacher_model_name_or_path, role="teacher"))
        elif getattr(cfg, "teacher_logits", None):  # offline: the teacher that computed the stored log-probs
            stored = read_manifest(cfg.teacher_logits)
            teacher = stored.input("teacher") if stored is not None else None
            if teacher:
                inputs.append({**teacher, "via": str(Path(cfg.teacher_logits).resolve())})
        return inputs

    def identity(self) -> dict[str, Any]:
        """What makes a run this run: recipe, family, base model, data fingerprint (or Hub id), data config, LoRA."""
        if self._identity is None:
            data, base = self.inputs()[:2]
            facts = distillation_facts(self.config)
            self._identity = {
                "recipe": self.name,
                "family": self.family.name,
                "base_model": base.get("hub_id") or base.get("fingerprint") or base.get("path"),
                "data": data.get("hub_id") or data.get("fingerprint") or data.get("path"),
                "dataset_config_name": self.config.dataset_config_name,
                "use_lora": bool(self.config.use_lora),
                "teacher": facts and facts["teacher"],
            }
        return self._identity

    def check_output_dir(self) -> None:
        """Refuse an ``output_dir`` holding files that are not a training run, or another run's checkpoints
        (when they would be resumed), unless ``overwrite_output_dir``; one line saying what differs."""
        from transformers.trainer_utils import get_last_checkpoint

        cfg = self.config
        out = Path(cfg.output_dir)
        if cfg.overwrite_output_dir or not out.exists():
            return
        if not out.is_dir():
            raise OutputExistsError(f"--output_dir {out}: is a file; choose another --output_dir")
        names = sorted(p.name for p in out.iterdir())
        if not names:
            return
        manifest = read_manifest(out)
        if manifest is None or manifest.stage != STAGE:
            what = f"a lamini-lm {manifest.stage!r} output" if manifest else f"other files {names[:3]}"
            raise OutputExistsError(
                f"--output_dir {out}: holds {what}; choose another --output_dir, or pass --overwrite_output_dir "
                "to train there anyway (nothing is deleted; files the run writes are replaced)"
            )
        if cfg.resume_from_checkpoint != "auto" or get_last_checkpoint(str(out)) is None:
            return  # nothing of the other run is resumed; this run's artifact replaces its files
        theirs = manifest.extra.get("run_identity") or {}
        mine = self.identity()
        differ = [k for k in IDENTITY_KEYS if theirs.get(k) != mine.get(k)]
        if None in (theirs.get("recipe"), mine.get("recipe")):  # a Python run without a recipe name: not compared
            differ = [k for k in differ if k != "recipe"]
        if differ:
            what = "; ".join(f"{k} {_short(theirs.get(k))} there, {_short(mine.get(k))} now" for k in differ)
            raise UsageError(
                f"--output_dir {out}: holds checkpoints of another run ({what}); choose another --output_dir, or "
                "pass --overwrite_output_dir or --resume_from_checkpoint none to start fresh there"
            )

    def resume_checkpoint(self) -> str | None:
        """The checkpoint ``train()`` continues from: ``auto`` finds the last one in ``output_dir`` when it is
        this run's (see :meth:`check_output_dir`); ``none`` or ``overwrite_output_dir``: none; a path: that one."""
        from transformers.trainer_utils import get_last_checkpoint

        self.check_output_dir()
        value = self.config.resume_from_checkpoint
        if value in _NONE:
            return None
        if value == "auto":
            out = self.config.output_dir
            if self.config.overwrite_output_dir or not (out and os.path.isdir(out)):
                return None
            return get_last_checkpoint(out)
        if not Path(value).is_dir():
            raise UsageError(f"--resume_from_checkpoint {value}: no such checkpoint folder")
        return value

    # --- training ---

    def train(self):
        """Train (continuing this run's last checkpoint if there is one), save the student and its manifest.

        Ctrl-C saves a checkpoint at the end of the current step and raises ``KeyboardInterrupt``; running the same
        command again continues from it. Returns the Trainer's ``TrainOutput``.
        """
        checkpoint = self.resume_checkpoint()  # before anything is loaded: a wrong folder costs nothing
        started = time.perf_counter()
        trainer = self.trainer or self.build()
        if checkpoint:
            logger.warning("resuming from %s", checkpoint)
        stop = _StopOnInterrupt()
        trainer.add_callback(stop.callback)
        with stop.installed():
            if trainer.is_world_process_zero():
                self.manifest(status="running").save(self.config.output_dir)
            result = trainer.train(resume_from_checkpoint=checkpoint)
        if stop.interrupted:
            where = Path(self.config.output_dir) / f"checkpoint-{trainer.state.global_step}"
            print(
                f"training stopped at step {trainer.state.global_step} (Ctrl-C); checkpoint saved in {where}. "
                "Run the same command again to continue from it.",
                file=sys.stderr,
            )
            raise KeyboardInterrupt
        trainer.log_metrics("train", result.metrics)
        trainer.save_metrics("train", result.metrics)
        trainer.save_state()
        parameters = _count_parameters(trainer.model)
        self.save()
        if trainer.is_world_process_zero():
            timings = {"train_s": round(time.perf_counter() - started, 1)}
            self.manifest(result=result, parameters=parameters, timings=timings).save(self.config.output_dir)
        return result

    def manifest(self, status: str = "complete", result=None, parameters: int | None = None, timings=None) -> Manifest:
        """The training manifest (``output_dir/lamini_lm.json``); ``status="running"`` is the one written at start."""
        cfg, trainer = self.config, self.trainer
        inputs = self.inputs()
        data, base = inputs[:2]
        teachers: list[str] = []
        if data.get("artifact"):
            for m in lineage(data["artifact"]):
                teachers += [t for t in m.teacher_models if t not in teachers]
        world_size = int(trainer.args.world_size) if trainer is not None else int(cfg.world_size)
        effective = cfg.per_device_train_batch_size * cfg.gradient_accumulation_steps * world_size
        precision = "bf16" if cfg.bf16 else "fp16" if cfg.fp16 else "fp32"
        extra: dict[str, Any] = {
            "status": status,
            "run_identity": self.identity(),
            "recipe": self.name,
            "family": self.family.name,
            "base_model": _base_model_id(cfg.model_name_or_path, base),
            "datasets": [data["hub_id"]] if data.get("hub_id") else [],
            "dataset_sources": [cfg.dataset_name],
            "world_size": world_size,
            "effective_batch_size": effective,
            "precision": precision,
            "seed": cfg.seed,
            "batching": self._batching(world_size),
        }
        if distillation_facts(cfg):  # what the card says about a token-level distillation run
            extra["distillation"] = distillation_facts(cfg)
        train_rows = len(trainer.train_dataset) if trainer is not None and trainer.train_dataset is not None else None
        eval_rows = len(trainer.eval_dataset) if trainer is not None and trainer.eval_dataset is not None else None
        extra.update(train_examples=train_rows, eval_examples=eval_rows)
        if result is not None:
            history = trainer.state.log_history
            evals = [h["eval_loss"] for h in history if "eval_loss" in h]
            extra.update(
                parameters=parameters,
                steps=trainer.state.global_step,
                train_loss=round(float(result.metrics.get("train_loss", result.training_loss)), 4),
                eval_loss=round(float(evals[-1]), 4) if evals else None,
            )
        hyper = {k: getattr(cfg, k, None) for k in CARD_HYPERPARAMETERS}
        hyper = {k: getattr(v, "value", v) for k, v in hyper.items() if v not in (None, 0, -1, False, "")}
        if not cfg.use_lora:
            hyper = {k: v for k, v in hyper.items() if not k.startswith("lora_")}
        hyper.update(world_size=world_size, effective_batch_size=effective, precision=precision, seed=cfg.seed)
        if extra.get("steps"):
            hyper["steps"] = extra["steps"]
        extra["hyperparameters"] = hyper
        return Manifest(
            stage=STAGE,
            config=cfg.to_dict(),
            inputs=inputs,
            rows=train_rows,
            teacher_models=teachers,
            timings=timings or {},
            extra=extra,
        )

    def _batching(self, world_size: int) -> dict[str, Any]:
        """How batches were built: packing, token budget and, with a budget, the mean effective batch in examples."""
        cfg = self.config
        out: dict[str, Any] = {"packing": bool(cfg.packing), "batch_by_tokens": bool(cfg.batch_by_tokens)}
        plan = getattr(self.trainer, "batch_plan", None)
        if plan:
            out.update(plan)
            mean = plan["examples_per_batch_mean"] * cfg.gradient_accumulation_steps * world_size
            out["effective_batch_size_mean"] = round(mean, 2)
        return out

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


def _short(value: Any, n: int = 24) -> str:
    text = str(value)
    return text if len(text) <= n else text[: n - 3] + "..."


def _count_parameters(model) -> int:
    """Parameters of the student as published: with LoRA, the base model's (the adapter merges into it)."""
    if hasattr(model, "get_nb_trainable_parameters") and hasattr(model, "peft_config"):
        trainable, total = model.get_nb_trainable_parameters()
        return int(total - trainable)
    return int(model.num_parameters())


def _base_model_id(value: str, entry: dict[str, Any]) -> str | None:
    """The Hub id of the base model: as given, or for a local folder the one its own manifest or config names."""
    import json

    from lamini_lm.artifacts import is_hub_id

    if entry.get("hub_id"):
        return entry["hub_id"]
    folder = Path(value)
    manifest = read_manifest(folder) if folder.is_dir() else None
    if manifest is not None and manifest.extra.get("base_model"):
        return manifest.extra["base_model"]
    try:
        name = json.loads((folder / "config.json").read_text(encoding="utf-8")).get("_name_or_path") or ""
    except (OSError, ValueError):
        return None
    return name if name and is_hub_id(name) else None


class _StopOnInterrupt:
    """Ctrl-C during ``trainer.train``: finish the step, save a checkpoint, stop (a second Ctrl-C stops at once)."""

    def __init__(self):
        from transformers import TrainerCallback

        outer = self

        class _Callback(TrainerCallback):
            def on_step_end(self, args, state, control, **kwargs):
                if outer.interrupted:
                    control.should_save = True
                    control.should_training_stop = True

        self.callback = _Callback()
        self.interrupted = False

    def _handler(self, signum, frame):
        if self.interrupted:
            raise KeyboardInterrupt
        self.interrupted = True
        logger.warning("Ctrl-C: saving a checkpoint at the end of this step (Ctrl-C again to stop at once)")

    class _Installed:
        def __init__(self, owner):
            self.owner, self.previous = owner, None

        def __enter__(self):
            try:
                self.previous = signal.signal(signal.SIGINT, self.owner._handler)
            except ValueError:  # not the main thread: Ctrl-C keeps its default behaviour
                self.previous = None
            return self

        def __exit__(self, *exc):
            if self.previous is not None:
                signal.signal(signal.SIGINT, self.previous)

    def installed(self):
        return self._Installed(self)


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


TRAIN_DESCRIPTION = "Train a student from a recipe: a family's settings (YAML) with any setting overridden by flag."
TRAIN_EXAMPLES = """\
  lamini-lm train lamini-flan-t5-77m --output_dir runs/flan-t5-77m
  lamini-lm train recipes/lamini-gpt-124m.yaml --dataset_name data/clean.jsonl --per_device_train_batch_size 8
  accelerate launch --multi_gpu --num_processes 2 -m lamini_lm.train.cli lamini-flan-t5-77m --output_dir runs/t5
Re-running the same command after a stop (or Ctrl-C) continues from this run's last checkpoint."""


def _recipe_file(name: str) -> Path:
    from lamini_lm.recipes import recipe_path

    try:
        return recipe_path(name)
    except FileNotFoundError as e:
        raise UsageError(str(e)) from None


def _family_class(family: str, distill: bool = False) -> type:
    """The family's recipe config; with ``distill`` (a teacher is named) its distillation config."""
    try:
        if distill:
            from lamini_lm.train.distill import distill_config_cls

            return distill_config_cls(family)
        return get_family(family).config_cls
    except ValueError as e:
        raise ConfigError(str(e)) from None


def _keep_teacher_columns(raw, tokenized, tokenizer=None, family=None, response_column="response"):
    """The tokenised rows with the raw rows' stored teacher log-probs beside them (a teacher-logits artifact, or
    responses generated with ``--top_logprobs``: those are checked against the student's tokens first)."""
    from lamini_lm.train.distill import TEACHER_COLUMNS, TEACHER_RESPONSE_IDS, align_response_columns

    if not all(c in raw.column_names for c in TEACHER_COLUMNS):
        return tokenized
    import datasets

    if TEACHER_RESPONSE_IDS in raw.column_names:
        return align_response_columns(raw, tokenized, tokenizer, family.decoder_only, response_column)
    return datasets.concatenate_datasets([tokenized, raw.select_columns(list(TEACHER_COLUMNS))], axis=1)


def recipe_parser(
    argv: Sequence[str],
    prog: str | None = "lamini-lm train",
    extra: Sequence[type] = (),
    description: str = TRAIN_DESCRIPTION,
    examples: str = TRAIN_EXAMPLES,
) -> tuple[StageParser, str | None]:
    """The :class:`StageParser` for ``argv`` (its config class is the recipe's family's) and the recipe's name.

    ``argv`` is only read: the recipe is its first token (a shipped name or a YAML file), the family is
    ``--family`` if given, else the recipe's ``family:`` setting.
    """
    argv = list(argv)
    family = next((argv[i + 1] for i, t in enumerate(argv[:-1]) if t == "--family"), None)
    family = family or next((t.split("=", 1)[1] for t in argv if t.startswith("--family=")), None)
    recipe = argv[0] if argv and not argv[0].startswith("-") else None
    path = _recipe_file(recipe) if recipe else None
    values = load_yaml(path) if path is not None else {}
    if family is None and path is not None:
        family = values.get("family")
        if family is None:
            raise ConfigError(f"{path}: no `family:` setting (seq2seq or causal)")
    if family is None:
        raise ConfigError("give a recipe (a YAML file or a shipped name) or --family seq2seq|causal")
    parser = StageParser(
        [_family_class(family, wants_distillation(values, argv)), *extra],
        prog=prog,
        description=description,
        examples=examples,
        config_for=lambda token: str(path) if path is not None and token == recipe else None,
    )
    return parser, (Path(path).stem if path is not None else None)


def parse_recipe_args(argv: Sequence[str], prog: str | None = "lamini-lm train") -> Recipe:
    """A :class:`Recipe` from ``[RECIPE.yaml | shipped-name] [--family F] [--key value ...]``."""
    parser, name = recipe_parser(argv, prog)
    (config,) = parser.parse(list(argv))
    return Recipe(config, name=name)


def load_recipe(name_or_path: str | None = None, family: str | None = None, **overrides: Any) -> Recipe:
    """A :class:`Recipe` from a shipped recipe name or YAML file, with settings overridden by keyword.

    The config dataclass is built directly (``lamini_lm.config.config_from_dict``): the YAML's values, then the
    keyword overrides; the family is ``family``, else the recipe's ``family:`` setting.

    Example:
        >>> from lamini_lm.train import load_recipe  # doctest: +SKIP
        >>> recipe = load_recipe("lamini-gpt-124m", output_dir="runs/g", model_name_or_path="tiny/")  # doctest: +SKIP
        >>> recipe.train()  # doctest: +SKIP
    """
    values: dict[str, Any] = {}
    source, name = "load_recipe()", None
    if name_or_path:
        path = _recipe_file(name_or_path)
        values, source, name = load_yaml(path), str(path), path.stem
    family = family or overrides.get("family") or values.get("family")
    if family is None:
        raise ConfigError(f"{source}: no family; give a recipe with a `family:` setting or family='seq2seq'|'causal'")
    distill = wants_distillation({**values, **overrides})
    config = config_from_dict(_family_class(family, distill), {**values, **overrides, "family": family}, source)
    return Recipe(config, name=name)


def print_recipe_usage(prog: str, description: str, examples: str) -> None:
    """``--help`` of a stage that reads a recipe, given no recipe yet: the shipped recipes and examples."""
    from lamini_lm.recipes import list_recipes

    print(f"usage: {prog} RECIPE [--key value ...]\n")
    print(description)
    print("Shipped recipes:", ", ".join(list_recipes()))
    print(f"All settings of a recipe: {prog} <recipe> --help\n")
    print("examples:\n" + examples)
