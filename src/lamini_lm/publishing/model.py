"""Publishing a trained student: its model card, rendered from manifests alone, and one commit to the Hub.

What the card says comes from the training manifest (``MODEL_DIR/lamini_lm.json``, written by
``lamini_lm.train.Recipe.train``): base model, Hub dataset ids (local sources are named in the text only), the
teacher models of the data's lineage, train examples, hyperparameters (world size and effective batch included),
final losses, parameter count and framework versions. Nothing is read back from a Trainer's leftovers. The
``model-index`` comes from the evaluation of this student: ``eval_results`` if given, else the ``lamini-lm
evaluate`` artifact whose manifest names this student as its model (in ``MODEL_DIR/eval``, ``MODEL_DIR/../eval``
or a sibling folder). Metadata goes through ``huggingface_hub.ModelCardData``, text through
``lamini_lm/templates/model_card.md``.

``publish`` pushes the weights, config, generation config, tokenizer files, the card and the manifest in one
``upload_folder`` commit; checkpoints, optimizer states, ``training_args.bin`` and ``trainer_state.json`` stay
local unless ``include_checkpoints``.

Example:
    >>> from lamini_lm.publishing.model import build_model_card, publish
    >>> card = build_model_card("runs/t5", "me/lamini-flan-t5-77m")  # doctest: +SKIP
    >>> publish("runs/t5", "me/lamini-flan-t5-77m")  # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
import fnmatch
import json
import logging
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import field
from pathlib import Path
from typing import Any

from lamini_lm.artifacts import Manifest, describe_model, is_hub_id, package_versions, read_manifest
from lamini_lm.errors import UsageError
from lamini_lm.families import STUDENT_TAGS, detect_family, get_family
from lamini_lm.io import write_text_atomic

__all__ = [
    "CHECKPOINT_FILES",
    "PUBLISHED_FILES",
    "STUDENT_TAGS",
    "PublishConfig",
    "PublishError",
    "build_model_card",
    "card_eval_results",
    "find_eval_results",
    "format_parameters",
    "main",
    "publish",
    "published_files",
    "write_model_card",
]

logger = logging.getLogger(__name__)

# The tags every student card carries: this module's cards and the Trainer-written ones (train.trainers).
TEMPLATE = Path(__file__).resolve().parent.parent / "templates" / "model_card.md"
_FRAMEWORKS = ("lamini-lm", "transformers", "torch", "datasets", "tokenizers", "peft", "accelerate")


class PublishError(UsageError):
    """A model folder that cannot be published, or a push that the Hub refused; the message says what to do."""


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


def card_eval_results(results: str | os.PathLike | Mapping, model_name: str) -> list:
    """``huggingface_hub.EvalResult`` entries for the card's model-index from an evaluation results file or dict.

    Accepts the evaluation stage's results (``lamini-lm evaluate``'s ``results.json``) or raw
    ``lm_eval.simple_evaluate`` output, and builds the entries with ``lamini_lm.evaluation.eval_results_for_card``.
    """
    return _one_entry_per_task(_eval_entries(_load_eval_results(results, model_name), model_name, results), results)


def _load_eval_results(results: str | os.PathLike | Mapping, model_name: str) -> Mapping:
    """A results file or dict as :func:`lamini_lm.evaluation.summarize` writes it (raw lm-eval output summarized)."""
    source = results
    if not isinstance(results, Mapping):
        if not Path(results).is_file():
            raise PublishError(f"evaluation results not found: {results}")
        results = _read_json(Path(results))
    from lamini_lm.evaluation import summarize

    try:
        if "tasks" not in results and "results" in results:  # raw lm_eval.simple_evaluate output
            results = summarize(results, model=model_name)
    except (KeyError, ValueError) as e:
        raise PublishError(f"{source}: no task results found ({e})") from None
    return results


def _eval_entries(results: Mapping, model_name: str, source) -> list:
    from lamini_lm.evaluation import eval_results_for_card

    try:
        return list(eval_results_for_card(results, model_name))
    except (KeyError, ValueError) as e:  # eval_results_for_card raises ValueError rather than return no entries
        raise PublishError(f"{source}: no task results found ({e})") from None


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


def _train_manifest(model_dir: Path) -> Manifest | None:
    manifest = read_manifest(model_dir)
    return manifest if manifest is not None and manifest.stage == "train" else None


def _same_model(entry: Mapping[str, Any] | None, model_dir: Path, manifest: Manifest | None) -> bool:
    if not entry:
        return False
    if manifest is not None and entry.get("manifest_id") == manifest.id:
        return True
    path = entry.get("path") or entry.get("artifact")
    return bool(path) and Path(path).resolve() == model_dir.resolve()


def find_eval_results(model_dir: str | os.PathLike) -> Path | None:
    """The ``results.json`` of this student's evaluation: an ``evaluate`` artifact whose manifest's ``model``
    input is this folder (or its training manifest), in ``MODEL_DIR/eval``, ``MODEL_DIR/../eval`` or any folder
    beside ``MODEL_DIR``; the newest if there are several. None if there is none."""
    model_dir = Path(model_dir).resolve()
    manifest = _train_manifest(model_dir)
    parent = model_dir.parent
    candidates = [model_dir / "eval", parent / "eval"]
    candidates += sorted(p for p in parent.iterdir() if p.is_dir() and p != model_dir) if parent.is_dir() else []
    found: list[tuple[str, Path]] = []
    for folder in dict.fromkeys(candidates):
        try:
            evaluation = read_manifest(folder)
        except UsageError:
            continue
        except Exception:  # a broken manifest elsewhere is not this student's problem
            continue
        if evaluation is None or evaluation.stage != "evaluate" or not (folder / "results.json").is_file():
            continue
        if _same_model(evaluation.input("model"), model_dir, manifest):
            found.append((evaluation.created, folder / "results.json"))
    return max(found)[1] if found else None


def build_model_card(
    model_dir: str | os.PathLike,
    repo_id: str,
    *,
    base_model: str | None = None,
    datasets: Sequence[str] | str | None = None,
    eval_results: str | os.PathLike | Mapping | None = None,
    find_results: bool = True,
    license: str = "cc-by-nc-4.0",
    language: Sequence[str] = ("en",),
    tags: Sequence[str] = (),
    teacher: str | None = None,
):
    """The ``huggingface_hub.ModelCard`` for the student in ``model_dir``, to be published as ``repo_id``.

    Facts come from the training manifest; arguments win over it. ``eval_results`` is a results JSON path
    (``lamini-lm evaluate`` output or ``lm_eval``'s) or its loaded dict; without it (and with ``find_results``) the
    student's own evaluation artifact is used if one is found (:func:`find_eval_results`). Without results the card
    has no ``model-index`` at all rather than an empty one.
    """
    from huggingface_hub import ModelCard, ModelCardData

    model_dir = Path(model_dir)
    config = _read_json(model_dir / "config.json")
    if not config:
        raise PublishError(f"{model_dir}: no config.json; is this a folder written by save_pretrained?")
    manifest = _train_manifest(model_dir)
    extra = manifest.extra if manifest is not None else {}
    family = get_family(extra["family"]) if extra.get("family") else detect_family(config)
    base_model = base_model or extra.get("base_model")
    base_model = base_model if base_model and is_hub_id(base_model) else None
    # a base model that is no Hub id (a local folder) goes in the text, by what it is, never in the metadata
    base_input = manifest.input("base_model") if manifest is not None and base_model is None else None
    local_base = describe_model(base_input["path"]) if base_input and base_input.get("path") else None
    recorded = list(extra.get("datasets") or [])
    if datasets is not None:  # given: the Hub ids among them go in the metadata, the rest in the text
        sources = [datasets] if isinstance(datasets, str) else list(datasets)
        hub_datasets = [d for d in sources if is_hub_id(d)]
    else:
        sources = list(extra.get("dataset_sources") or recorded)
        hub_datasets = [d for d in recorded if is_hub_id(d)]
    model_name = repo_id.split("/")[-1]
    if eval_results is None and find_results:
        eval_results = find_eval_results(model_dir)
        if eval_results is not None:
            logger.info("model-index from %s", eval_results)
    summary = _load_eval_results(eval_results, model_name) if eval_results is not None else {}
    results = _one_entry_per_task(_eval_entries(summary, model_name, eval_results), eval_results) if summary else []
    # rows scored per task (the card's n column), by the name the entries carry
    scored = {(r.get("name") or t): r.get("n") for t, r in (summary.get("tasks") or {}).items()}
    n_params = extra.get("parameters")
    if n_params:
        _check_size_in_name(model_name, n_params)
    recorded_teachers = [describe_model(m) for m in (manifest.teacher_models if manifest is not None else [])]
    teachers = teacher or ", ".join(recorded_teachers) or None

    card_data = ModelCardData(
        model_name=model_name,
        base_model=base_model,
        datasets=hub_datasets or None,
        license=license,
        language=list(language),
        library_name="transformers",
        pipeline_tag=family.pipeline_tag,
        tags=list(dict.fromkeys([*STUDENT_TAGS, family.name, *tags])),
        eval_results=results or None,
    )
    values = [r.metric_value for r in results if isinstance(r.metric_value, (int, float))]
    versions = manifest.versions if manifest is not None else package_versions()
    losses = {k.replace("_", " "): extra[k] for k in ("train_loss", "eval_loss") if extra.get(k) is not None}
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
        parameters_exact=f"{n_params:,}" if n_params else None,
        parameters_human=format_parameters(n_params) if n_params else None,
        dataset_links=", ".join(
            f"[{d}](https://huggingface.co/datasets/{d})" if d in hub_datasets else f"`{d}` (local)"
            for d in dict.fromkeys(sources + hub_datasets)
        ),
        local_base=local_base,
        teacher=teachers,
        distillation=extra.get("distillation"),  # token-level distillation facts (None for plain SFT)
        train_examples=f"{extra['train_examples']:,}" if extra.get("train_examples") else None,
        hyperparameters=dict(extra.get("hyperparameters") or {}),
        final_losses=losses,
        framework_versions={k: versions[k] for k in _FRAMEWORKS if k in versions},
        usage=family.usage_snippet(repo_id),
        recorded=manifest is not None,
        eval_rows=[
            {
                "task": r.task_name or r.dataset_name,
                "dataset": r.dataset_type,
                "metric": r.metric_type,
                "value": round(r.metric_value, 4) if isinstance(r.metric_value, float) else r.metric_value,
                "n": scored.get(r.task_name),
            }
            for r in results
        ],
        eval_average=round(sum(values) / len(values), 4) if len(values) > 1 else None,
        eval_average_label=summary.get("average_label"),
    )


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


# What a student repository holds; checkpoints, optimizer states and pickled training arguments stay local.
PUBLISHED_FILES = [
    "README.md",
    "config.json",
    "generation_config.json",
    "*.safetensors",
    "model.safetensors.index.json",
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "added_tokens.json",
    "chat_template.jinja",
    "vocab.json",
    "vocab.txt",
    "merges.txt",
    "spiece.model",
    "tokenizer.model",
    "lamini_lm.json",
]
STALE_WEIGHTS = ["*.bin", "*.pt", "*.ckpt", "*.h5", "*.msgpack"]


CHECKPOINT_FILES = ["checkpoint-*", "training_args.bin", "trainer_state.json", "optimizer.pt", "scheduler.pt"]


def published_files(model_dir: str | os.PathLike, include_checkpoints: bool = False) -> list[str]:
    """The files of ``model_dir`` a push uploads (relative paths): the top-level model files, the card and the
    manifest; with ``include_checkpoints`` also ``checkpoint-*/`` and the Trainer's state files."""
    model_dir = Path(model_dir)
    out = []
    for path in sorted(model_dir.rglob("*")):
        if not path.is_file():
            continue
        rel = path.relative_to(model_dir).as_posix()
        top = rel.split("/", 1)[0]
        if include_checkpoints and any(fnmatch.fnmatch(top, p) for p in CHECKPOINT_FILES):
            out.append(rel)
        elif "/" not in rel and any(fnmatch.fnmatch(rel, p) for p in PUBLISHED_FILES):
            out.append(rel)
    return out


def publish(
    model_dir: str | os.PathLike,
    repo_id: str,
    *,
    private: bool = False,
    token: str | None = None,
    commit_message: str | None = None,
    include_checkpoints: bool = False,
    **card_kwargs,
):
    """Write the model card to ``model_dir/README.md`` and push the student to ``repo_id`` in one commit.

    Pushes :func:`published_files`: weights (safetensors), config, generation config, tokenizer files, the card and
    the manifest (secrets were never in it); checkpoints, optimizer states, ``training_args.bin`` and
    ``trainer_state.json`` only with ``include_checkpoints``. ``card_kwargs`` go to :func:`build_model_card`.
    Returns the ``huggingface_hub.CommitInfo``.

    Example:
        >>> publish("runs/flan-t5-77m", "me/lamini-flan-t5-77m")  # doctest: +SKIP
    """
    from huggingface_hub import HfApi, get_token
    from huggingface_hub.errors import HfHubHTTPError

    model_dir = Path(model_dir)
    if not model_dir.is_dir():
        raise PublishError(f"{model_dir}: no such model folder")
    token = token or get_token()
    if not token:
        raise PublishError(
            "no Hugging Face token found: set HF_TOKEN or run `hf auth login` with a token that can write to "
            f"{repo_id!r} (https://huggingface.co/settings/tokens)"
        )
    if "/" not in repo_id:
        raise PublishError(f"repo id {repo_id!r} must be NAMESPACE/NAME, e.g. your-user/lamini-flan-t5-77m")
    write_model_card(model_dir, repo_id, **card_kwargs)
    manifest = read_manifest(model_dir)
    if manifest is not None:
        manifest.save(model_dir)  # re-saved through Manifest: redacted again, whatever wrote it
    files = published_files(model_dir, include_checkpoints)
    api = HfApi(token=token)
    try:
        api.create_repo(repo_id, private=private, exist_ok=True)
        info = api.upload_folder(
            folder_path=model_dir,
            repo_id=repo_id,
            allow_patterns=files,
            # Weights of an earlier push (other shards, a .bin) go in the same commit: no stale mix of versions.
            delete_patterns=[*STALE_WEIGHTS, *PUBLISHED_FILES],
            commit_message=commit_message or f"Upload {repo_id.split('/')[-1]} with lamini-lm",
        )
    except HfHubHTTPError as e:
        status = e.response.status_code if e.response is not None else None
        if status in (401, 403):
            raise PublishError(
                f"the Hub refused the token for {repo_id!r} (HTTP {status}): check that it has write access"
            ) from None
        raise
    logger.info("published %s to %s", model_dir, info.commit_url)
    return info


@dataclasses.dataclass
class PublishConfig:
    """Settings of ``lamini-lm publish``."""

    model_dir: str = field(
        default=None,
        metadata={
            "help": "the trained student: a folder written by lamini-lm train (or save_pretrained)",
            "required": True,
        },
    )
    repo_id: str = field(
        default=None, metadata={"help": "the Hub repository to create or update, NAMESPACE/NAME", "required": True}
    )
    private: bool = field(default=False, metadata={"help": "create the repository as private"})
    eval_results: str | None = field(
        default=None,
        metadata={
            "help": "evaluation results JSON (lamini-lm evaluate or lm_eval) for the model-index "
            "(default: this student's lamini-lm evaluate output, found beside it)"
        },
    )
    base_model: str | None = field(default=None, metadata={"help": "Hub id of the base model, if not recorded"})
    datasets: list[str] | None = field(default=None, metadata={"help": "Hub ids of the training datasets"})
    license: str = field(
        default="cc-by-nc-4.0",
        metadata={"help": "the model's license; LaMini used cc-by-nc-4.0 as teacher outputs restrict commercial use"},
    )
    teacher: str | None = field(default=None, metadata={"help": "the teacher model, if not recorded"})
    commit_message: str | None = field(default=None, metadata={"help": "the commit message"})
    include_checkpoints: bool = field(
        default=False,
        metadata={"help": "also upload checkpoint-*/ folders, optimizer states and the Trainer's state files"},
    )
    card_only: bool = field(
        default=False, metadata={"help": "only write MODEL_DIR/README.md; push nothing (no token needed)"}
    )

    def __post_init__(self):
        from lamini_lm.config import check_required

        check_required(self)
        if not Path(self.model_dir).is_dir():
            raise PublishError(f"{self.model_dir}: no such model folder")


PUBLISH_EXAMPLES = """\
  lamini-lm publish runs/flan-t5-77m --repo_id your-name/lamini-flan-t5-77m
  lamini-lm publish runs/flan-t5-77m --repo_id your-name/lamini-flan-t5-77m --eval_results eval/results.json
  lamini-lm publish runs/flan-t5-77m --repo_id your-name/lamini-flan-t5-77m --card_only"""


def main(argv: list[str] | None = None, prog: str = "lamini-lm publish") -> int:
    """Push a trained student (weights, config, tokenizer, model card, manifest) to the Hub in one commit."""
    from lamini_lm.config import StageParser

    parser = StageParser(
        [PublishConfig], prog=prog, description=main.__doc__, examples=PUBLISH_EXAMPLES, positionals=("model_dir",)
    )
    (config,) = parser.parse(argv)
    card_kwargs = {
        "eval_results": config.eval_results,
        "base_model": config.base_model,
        "datasets": config.datasets,
        "license": config.license,
        "teacher": config.teacher,
    }
    if config.card_only:
        print(write_model_card(config.model_dir, config.repo_id, **card_kwargs))
        return 0
    info = publish(
        config.model_dir,
        config.repo_id,
        private=config.private,
        commit_message=config.commit_message,
        include_checkpoints=config.include_checkpoints,
        **card_kwargs,
    )
    print(info.commit_url)
    return 0
