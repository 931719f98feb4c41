"""The model card of a distilled student, right the first time.

Metadata goes through ``huggingface_hub.ModelCardData`` (base model, datasets, license, language, pipeline tag,
library, tags, a ``model-index`` named after the repository and built from evaluation results), text through
``lamini_lm/templates/model_card.md``: usage that works as pasted, intended use and limitations, training
hyperparameters, framework versions, the parameter count read from the weights, and the paper's citation.

What the card says is read from the model folder: ``config.json``, the safetensors headers, ``trainer_state.json``,
``training_args.bin`` (loaded with ``weights_only=True``, only transformers/accelerate/lamini_lm types), a
Trainer-written ``README.md`` and lamini-lm's run record ``lamini_lm_run.json`` (keys ``base_model``,
``datasets``, ``teacher``, ``train_examples``, ``hyperparameters``, ``framework_versions``); arguments win over
all of them. The released LaMini cards are the counter-example: a stale model-index name, ``results: []``,
``base_model`` added later by a bot, "61M" on a 77M model.

Example:
    >>> from lamini_lm.model_card import build_model_card
    >>> card = build_model_card("runs/t5", "me/lamini-flan-t5-77m", eval_results="eval.json")  # doctest: +SKIP
    >>> card.save("runs/t5/README.md")  # doctest: +SKIP
"""

from __future__ import annotations

import json
import logging
import os
import re
import struct
from collections.abc import Mapping, Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

from lamini_lm.families import Family, detect_family, get_family
from lamini_lm.io import write_text_atomic

__all__ = [
    "RUN_METADATA_FILE",
    "STUDENT_TAGS",
    "PublishError",
    "build_model_card",
    "card_eval_results",
    "count_parameters",
    "format_parameters",
    "write_model_card",
]

logger = logging.getLogger(__name__)

RUN_METADATA_FILE = "lamini_lm_run.json"
# The tags every student card carries: this module's cards and the Trainer-written ones (train.trainers).
STUDENT_TAGS = ("lamini-lm", "distillation", "instruction-tuning")
TEMPLATE = Path(__file__).parent / "templates" / "model_card.md"
# A Hub id (NAME or NAMESPACE/NAME) that card metadata may name; anything else is a local path.
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")


class PublishError(RuntimeError):
    """A model folder that cannot be published, or a push that the Hub refused; the message says what to do."""


def count_parameters(model_dir: str | os.PathLike) -> int:
    """The number of parameters stored in the folder's ``*.safetensors`` files, read from their headers.

    Tied weights are stored once, so this is the model's unique parameter count (``model.num_parameters()``),
    never a number guessed from a name.
    """
    files = sorted(Path(model_dir).glob("*.safetensors"))
    if not files:
        raise PublishError(f"{model_dir}: no *.safetensors weights found (save with model.save_pretrained(...))")
    total = 0
    for path in files:
        with open(path, "rb") as f:
            (size,) = struct.unpack("<Q", f.read(8))
            header = json.loads(f.read(size))
        for name, info in header.items():
            if name != "__metadata__":
                n = 1
                for dim in info["shape"]:
                    n *= dim
                total += n
    return total


def format_parameters(n: int) -> str:
    """``76_961_152 -> "77M"``, ``1_345_000_000 -> "1.3B"``, ``52_000 -> "52K"`` (how the herd is named)."""
    if n >= 1e9:
        return f"{n / 1e9:.1f}B"
    if n >= 1e6:
        return f"{n / 1e6:.0f}M"
    return f"{n / 1e3:.0f}K"


def _read_json(path: Path) -> dict:
    if not path.is_file():
        return {}
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise PublishError(f"{path}: not valid JSON ({e})") from None


def _training_arguments(model_dir: Path) -> dict[str, Any]:
    """The Trainer's ``training_args.bin`` as a dict, unpickled only if it holds transformers/accelerate types."""
    path = model_dir / "training_args.bin"
    if not path.is_file():
        return {}
    import importlib

    import torch

    trusted = []
    for name in torch.serialization.get_unsafe_globals_in_checkpoint(str(path)):
        module, _, attr = name.rpartition(".")
        if not module.startswith(("transformers.", "accelerate.", "lamini_lm.")):
            logger.info("%s holds %s; not loading it for the card", path, name)
            return {}
        obj = getattr(importlib.import_module(module), attr, None)
        if not isinstance(obj, type):
            return {}
        trusted.append(obj)
    try:
        with torch.serialization.safe_globals(trusted):
            args = torch.load(path, weights_only=True)
    except Exception as e:  # an unreadable optional file only costs the card some rows
        logger.info("could not read %s (%s); the card omits its hyperparameters", path, e)
        return {}
    return args.to_dict() if hasattr(args, "to_dict") else {}


# TrainingArguments shown on the card; zero/False/empty values (features not used) are left out.
_CARD_ARGS = (
    "learning_rate",
    "num_train_epochs",
    "per_device_train_batch_size",
    "gradient_accumulation_steps",
    "lr_scheduler_type",
    "warmup_ratio",
    "warmup_steps",
    "weight_decay",
    "optim",
    "seed",
    "bf16",
    "fp16",
)


def _hyperparameters(model_dir: Path, run: Mapping[str, Any], trainer_state: Mapping[str, Any]) -> dict[str, Any]:
    args = _training_arguments(model_dir)
    out: dict[str, Any] = {k: args[k] for k in _CARD_ARGS if args.get(k) not in (None, 0, False, "")}
    if "seed" in args:
        out["seed"] = args["seed"]  # 0 is a seed worth showing
    if args:
        batch = args.get("per_device_train_batch_size", 1) * args.get("gradient_accumulation_steps", 1)
        out["effective_batch_size"] = batch * int(run.get("world_size", 1))
    steps = trainer_state.get("global_step")
    if steps:
        out["steps"] = steps
    out.update(run.get("hyperparameters") or {})
    # to_dict() leaves enums as enums (SchedulerType.LINEAR): show their value.
    return {k: getattr(v, "value", v) for k, v in out.items()}


def _final_losses(trainer_state: Mapping[str, Any]) -> dict[str, float]:
    losses: dict[str, float] = {}
    for entry in trainer_state.get("log_history", []):
        for key in ("train_loss", "eval_loss"):
            if key in entry:
                losses[key.replace("_", " ")] = round(float(entry[key]), 4)
    return losses


def _framework_versions(run: Mapping[str, Any]) -> dict[str, str]:
    versions = {}
    for dist in ("lamini-lm", "transformers", "torch", "datasets", "tokenizers", "peft", "accelerate"):
        try:
            versions[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            pass
    versions.update(run.get("framework_versions") or {})
    return versions


def _usage(repo_id: str, family: str | Family) -> str:
    return get_family(family).usage_snippet(repo_id)


def card_eval_results(results: str | os.PathLike | Mapping, model_name: str) -> list:
    """``huggingface_hub.EvalResult`` entries for the card's model-index from an evaluation results file or dict.

    Accepts the evaluation stage's results (``lamini-lm evaluate``'s ``results.json``) or raw
    ``lm_eval.simple_evaluate`` output, and builds the entries with ``lamini_lm.evaluation.eval_results_for_card``.
    """
    source = results
    if not isinstance(results, Mapping):
        if not Path(results).is_file():
            raise PublishError(f"evaluation results not found: {results}")
        results = _read_json(Path(results))
    from lamini_lm.evaluation import eval_results_for_card, summarize

    try:
        if "tasks" not in results and "results" in results:  # raw lm_eval.simple_evaluate output
            results = summarize(results, model=model_name)
        entries = list(eval_results_for_card(results, model_name))
    except (KeyError, ValueError) as e:  # eval_results_for_card raises ValueError rather than return no entries
        raise PublishError(f"{source}: no task results found ({e})") from None
    return _one_entry_per_task(entries, source)


# datasets' packaged loaders: a task on local files reports one of these as its dataset.
_LOCAL_LOADERS = {"json", "csv", "parquet", "text", "arrow", "pandas", "generator"}


def _one_entry_per_task(entries: list, source) -> list:
    """The Hub merges model-index entries that share (task type, dataset, config, split): keep tasks apart.

    Tasks on local files all report the dataset ``json``; name them ``json:<task>`` (not a Hub id, so the Hub
    never links them to an unrelated dataset). Any remaining clash is an error rather than a silently merged entry.
    """
    for e in entries:
        if e.dataset_type in _LOCAL_LOADERS:
            e.dataset_type = f"{e.dataset_type}:{e.task_name or e.dataset_name}"
    seen: dict[tuple, str] = {}
    for e in entries:
        other = seen.setdefault(e.unique_identifier, e.task_name)
        if other != e.task_name:
            raise PublishError(
                f"{source}: tasks {other!r} and {e.task_name!r} share dataset {e.dataset_type!r} "
                f"(config {e.dataset_config!r}, split {e.dataset_split!r}); the Hub would merge them into one entry"
            )
    return entries


def _hub_ids(values: Sequence[str] | str | None) -> list[str]:
    """Dataset ids that can go in card metadata; local paths are reported in the text only."""
    values = [values] if isinstance(values, str) else list(values or [])
    return [v for v in values if _HUB_ID.match(v) and not Path(v).exists()]


def build_model_card(
    model_dir: str | os.PathLike,
    repo_id: str,
    *,
    base_model: str | None = None,
    datasets: Sequence[str] | str | None = None,
    eval_results: str | os.PathLike | Mapping | None = None,
    license: str = "cc-by-nc-4.0",
    language: Sequence[str] = ("en",),
    tags: Sequence[str] = (),
    teacher: str | None = None,
):
    """The ``huggingface_hub.ModelCard`` for the student in ``model_dir``, to be published as ``repo_id``.

    ``eval_results`` is a results JSON path (``lamini-lm evaluate`` output or ``lm_eval``'s) or its loaded dict;
    its entries become the card's ``model-index`` under the repository's own name. Without results the card has
    no ``model-index`` at all rather than an empty one.
    """
    from huggingface_hub import ModelCard, ModelCardData

    model_dir = Path(model_dir)
    config = _read_json(model_dir / "config.json")
    if not config:
        raise PublishError(f"{model_dir}: no config.json; is this a folder written by save_pretrained?")
    run = _read_json(model_dir / RUN_METADATA_FILE)
    trainer_card = _trainer_card_data(model_dir)
    family = detect_family(config)
    name_or_path = config.get("_name_or_path") or ""
    base_model = (
        base_model
        or run.get("base_model")
        or trainer_card.get("base_model")
        or (name_or_path if _hub_ids([name_or_path]) else None)
    )
    if isinstance(base_model, list):
        base_model = base_model[0] if base_model else None
    all_datasets = list(([datasets] if isinstance(datasets, str) else datasets) or run.get("datasets") or [])
    all_datasets = all_datasets or list(trainer_card.get("datasets") or [])
    hub_datasets = _hub_ids(all_datasets)
    model_name = repo_id.split("/")[-1]
    results = card_eval_results(eval_results, model_name) if eval_results is not None else []
    n_params = count_parameters(model_dir)
    _check_size_in_name(model_name, n_params)

    card_data = ModelCardData(
        model_name=model_name,
        base_model=base_model if base_model and _hub_ids([base_model]) else None,
        datasets=hub_datasets or None,
        license=license,
        language=list(language),
        library_name="transformers",
        pipeline_tag=family.pipeline_tag,
        tags=list(dict.fromkeys([*STUDENT_TAGS, family.name, *tags])),
        eval_results=results or None,
    )
    values = [r.metric_value for r in results if isinstance(r.metric_value, (int, float))]
    trainer_state = _read_json(model_dir / "trainer_state.json")
    return ModelCard.from_template(
        card_data,
        template_path=str(TEMPLATE),
        model_name=model_name,
        repo_id=repo_id,
        family=family.name,
        family_text=family.description,
        family_note=family.card_note,
        wrapped=family.template is not None,
        architecture=(config.get("architectures") or [config.get("model_type", "unknown")])[0],
        parameters_exact=f"{n_params:,}",
        parameters_human=format_parameters(n_params),
        dataset_links=", ".join(
            f"[{d}](https://huggingface.co/datasets/{d})" if d in hub_datasets else f"`{d}`" for d in all_datasets
        ),
        teacher=teacher or run.get("teacher"),
        train_examples=f"{run['train_examples']:,}" if run.get("train_examples") else None,
        hyperparameters=_hyperparameters(model_dir, run, trainer_state),
        final_losses=_final_losses(trainer_state),
        framework_versions=_framework_versions(run),
        usage=_usage(repo_id, family),
        eval_rows=[
            {
                "task": r.task_name or r.dataset_name,
                "dataset": r.dataset_type,
                "metric": r.metric_type,
                "value": round(r.metric_value, 4) if isinstance(r.metric_value, float) else r.metric_value,
            }
            for r in results
        ],
        eval_average=round(sum(values) / len(values), 4) if len(values) > 1 else None,
    )


def _trainer_card_data(model_dir: Path) -> dict:
    """Metadata of a README.md the Trainer wrote (base_model, datasets), if there is one."""
    if not (model_dir / "README.md").is_file():
        return {}
    from huggingface_hub import ModelCard

    try:
        return ModelCard.load(model_dir / "README.md", ignore_metadata_errors=True).data.to_dict()
    except Exception as e:  # a hand-written README without metadata is not an error
        logger.debug("ignoring %s: %s", model_dir / "README.md", e)
        return {}


def _check_size_in_name(model_name: str, n_params: int) -> None:
    """Warn when a size in the repository name (``...-61M``) disagrees with the weights by more than 10%."""
    match = re.search(r"(\d+(?:\.\d+)?)([MB])\b", model_name, flags=re.I)
    if match:
        named = float(match.group(1)) * (1e9 if match.group(2).upper() == "B" else 1e6)
        if abs(named - n_params) > 0.1 * n_params:
            logger.warning(
                "the name %r says %s parameters but the weights hold %s (%s)",
                model_name,
                match.group(0),
                f"{n_params:,}",
                format_parameters(n_params),
            )


def write_model_card(model_dir: str | os.PathLike, repo_id: str, **card_kwargs) -> Path:
    """Build the card for ``model_dir`` (``card_kwargs`` go to :func:`build_model_card`) and write it, atomically,
    to ``model_dir/README.md``; return that path."""
    path = Path(model_dir) / "README.md"
    write_text_atomic(path, str(build_model_card(model_dir, repo_id, **card_kwargs)))
    return path
