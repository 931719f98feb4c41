"""The dataset release: one folder format, its card, and the push to a Hub dataset repo.

A release folder is what a Hub dataset repo holds and what ``datasets`` loads natively::

    data/train-00000-of-00001.parquet   the rows (shards of at most ``max_shard_rows``)
    README.md                           the dataset card, with ``configs:`` pointing at data/train-*
    plots/*.png                         counts, lengths, verb-noun pairs, diversity map
    lamini_lm.json                      the manifest: lineage, every step's report, teacher models, tokens, cost

The card is rendered from the manifest (the reports of the steps that ran, in order; teacher models, tokens, cost,
the prompt hashes recorded) and from the data, nothing else: a step that did not run is not mentioned as done.
Internal columns of generation (``request_key``, ``error``, usage and prompt versions, see
:data:`INTERNAL_COLUMNS`) stay out unless ``keep_internal_columns=True``; rows whose request failed are left out
and counted in the release's own report.

Example:
    >>> import datasets, os, tempfile
    >>> from lamini_lm.publishing.dataset import build_release
    >>> ds = datasets.Dataset.from_dict({"instruction": ["Name a colour."], "response": ["Red."],
    ...                                  "instruction_source": ["alpaca"], "request_key": ["k1"]})
    >>> out = build_release(ds, os.path.join(tempfile.mkdtemp(), "release"), embed="none")
    >>> sorted(os.listdir(out))
    ['README.md', 'data', 'lamini_lm.json', 'plots']
    >>> datasets.load_dataset(str(out), split="train").column_names
    ['instruction', 'response', 'instruction_source']
"""

from __future__ import annotations

import datetime as _dt
import logging
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lamini_lm import __version__
from lamini_lm.artifacts import (
    MANIFEST_FILE,
    Manifest,
    StepReport,
    artifact_output,
    check_output,
    describe_model,
    lineage,
    read_manifest,
)
from lamini_lm.config import check_choice, check_range, check_required
from lamini_lm.errors import OutputExistsError, UsageError
from lamini_lm.io import release_shards
from lamini_lm.prompts import EXAMPLE_GUIDED_TEMPLATE, PROMPT_HASHES, SYSTEM_MESSAGE, TOPIC_GUIDED_TEMPLATE

if TYPE_CHECKING:
    import datasets
    from huggingface_hub import DatasetCard

__all__ = [
    "INTERNAL_COLUMNS",
    "RELEASE_STAGE",
    "PushDatasetConfig",
    "PushResult",
    "build_release",
    "dataset_card",
    "is_release_folder",
    "main",
    "push_dataset",
    "release_shards",
    "run_push_dataset",
]

logger = logging.getLogger(__name__)

RELEASE_STAGE = "release"
# Bookkeeping columns of a generation run: useful to resume and audit it, noise (or private) in a published dataset.
INTERNAL_COLUMNS = (
    "request_key",
    "error",
    "finish_reason",
    "prompt_tokens",
    "completion_tokens",
    "cost_usd",
    "instruction_prompt_version",
    "response_prompt_version",
)
_EMBEDS = ("auto", "minilm", "tfidf", "none")
# What the card can quote, by prompt hash: the texts of this version of lamini-lm.
_PROMPT_TEXTS = {
    "system_message": SYSTEM_MESSAGE,
    "example_guided": EXAMPLE_GUIDED_TEMPLATE,
    "topic_guided": TOPIC_GUIDED_TEMPLATE,
}


def is_release_folder(folder: str | os.PathLike) -> bool:
    """A folder holding ``data/*.parquet`` and a README.md (the layout :func:`build_release` writes)."""
    folder = Path(folder)
    return folder.is_dir() and (folder / "README.md").is_file() and bool(release_shards(folder))


def _size_category(n: int) -> str:
    for limit, name in ((1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"), (1_000_000, "100K<n<1M")):
        if n < limit:
            return name
    return "1M<n<10M" if n < 10_000_000 else "10M<n<100M"


def _column_values(ds: datasets.Dataset, name: str) -> list:
    return ds[name][:] if name in ds.column_names else []


def _tokens(manifest: Manifest | None, ds: datasets.Dataset) -> dict[str, int] | None:
    """``{"prompt": n, "completion": m}`` from the manifest, else from the data's usage columns; None if neither."""
    recorded = (manifest.tokens if manifest else None) or {}
    if recorded:
        prompt = recorded.get("prompt", recorded.get("prompt_tokens", 0))
        completion = recorded.get("completion", recorded.get("completion_tokens", 0))
        return {"prompt": int(prompt or 0), "completion": int(completion or 0)}
    if "prompt_tokens" in ds.column_names or "completion_tokens" in ds.column_names:
        return {
            "prompt": int(sum(v or 0 for v in _column_values(ds, "prompt_tokens"))),
            "completion": int(sum(v or 0 for v in _column_values(ds, "completion_tokens"))),
        }
    return None


def _cost(manifest: Manifest | None, ds: datasets.Dataset) -> float | None:
    if manifest is not None and manifest.cost_usd is not None:
        return float(manifest.cost_usd)
    if "cost_usd" in ds.column_names:
        return float(sum(v or 0.0 for v in _column_values(ds, "cost_usd")))
    return None


# The instruction-generation prompt behind each generated instruction_source (records.InstructionSource).
_STRATEGY_SOURCES = {
    "example_guided": {"self_instruct_without_topic", "generated_flan", "generated_p3"},
    "topic_guided": {"self_instruct_with_topic"},
}
_GENERATED_SOURCES = set().union(*_STRATEGY_SOURCES.values())
# The stages that pay a teacher; their manifests hold the tokens and cost of what they asked.
_GENERATION_STAGES = {"generate_instructions": "instructions", "generate_responses": "responses",
                      "generate_dialogues": "dialogues"}  # fmt: skip


def _prompts_used(manifest: Manifest | None, ds: datasets.Dataset, upstream: Sequence[str] = ()) -> dict[str, str]:
    """``{prompt name: hash}`` of the prompts the records say were used (manifest, or the data's version columns).

    ``upstream``: hashes recorded further up the lineage (:func:`_spend`). An instruction-generation prompt named
    only by a manifest is listed when rows it produced are in the data
    (their ``instruction_source``): a strategy whose every instruction was dropped did not make this data.
    A hash this version of lamini-lm does not know is listed under its own value.
    """
    from_rows: set[str] = set()
    for col in ("instruction_prompt_version", "response_prompt_version"):
        from_rows |= {h for h in _column_values(ds, col) if h}
    sources = set(_column_values(ds, "instruction_source"))
    hashes = set(from_rows)
    for h in {*((manifest.prompt_hashes or {}).values() if manifest else ()), *upstream}:
        strategy = next((name for name in _STRATEGY_SOURCES if PROMPT_HASHES[name] == h), None)
        if strategy is None or _STRATEGY_SOURCES[strategy] & sources:
            hashes.add(h)
    known = {h: name for name, h in PROMPT_HASHES.items()}
    used = {known[h]: h for h in hashes if h in known}
    used.update({f"unknown prompt {h}": h for h in hashes if h not in known})
    return dict(sorted(used.items()))


def _models(manifest: Manifest | None, ds: datasets.Dataset, column: str) -> list[str]:
    models = set(_column_values(ds, column))
    if column == "teacher_model" and manifest is not None:
        models |= set(manifest.teacher_models or [])
    return sorted(m for m in models if m)


def _spend(inputs: Sequence[Mapping[str, Any]] | None) -> list[dict[str, Any]]:
    """Tokens, cost and models of each generation artifact in the lineage of ``inputs``, each counted once: what
    making this data cost, instruction generation included (a response artifact records only its own requests)."""
    seen: set[str] = set()
    spend = []
    for entry in inputs or []:
        for m in lineage(entry["artifact"]) if entry.get("artifact") else []:
            if m.stage in _GENERATION_STAGES and m.id not in seen:
                seen.add(m.id)
                tokens = m.tokens or {}
                spend.append(
                    {
                        "stage": m.stage,
                        "manifest_id": m.id,
                        "prompt_tokens": int(tokens.get("prompt") or 0),
                        "completion_tokens": int(tokens.get("completion") or 0),
                        "cost_usd": m.cost_usd,
                        "models": list(m.teacher_models or []),
                        "prompt_hashes": dict(m.prompt_hashes or {}),
                    }
                )
    return spend


def _cost_text(cost: float | None, tokens: Mapping[str, int] | None, models: Sequence[str]) -> str | None:
    """The card's cost line: dollars to the cent (below a cent, to the millionth: never "$0.00" for spend), or why
    nothing was counted."""
    if cost is None:
        return None
    if cost > 0:
        return f"${cost:,.2f}" if cost >= 0.01 else "$" + f"{cost:.6f}".rstrip("0")
    if tokens and (tokens.get("prompt") or tokens.get("completion")):
        who = ", ".join(models) if models else "the teacher"
        return f"not priced ($0 recorded: lamini-lm knows no price for {who}; set TeacherConfig.prices to count one)"
    return "$0"


def dataset_card(
    ds: datasets.Dataset,
    manifest: Manifest | Mapping[str, Any] | None = None,
    *,
    pretty_name: str = "LaMini-style instructions",
    stats: dict[str, Any] | None = None,
    plots_prefix: str = "plots/",
    created: str | None = None,
    template_path: str | os.PathLike | None = None,
) -> DatasetCard:
    """A ``huggingface_hub.DatasetCard`` for ``ds``, from its manifest and the data alone.

    Args:
        manifest: the record of how ``ds`` was made (its ``reports`` are rendered in order; teacher models,
            tokens, cost and prompt hashes come from it, or from the data's columns when it has none).
        stats: :func:`lamini_lm.quality.compute_stats`'s result (computed without plots when None); its
            ``plots`` are linked as ``plots_prefix + file name``.
        created: the date shown (default: today, UTC).

    Example:
        >>> import datasets
        >>> from lamini_lm.publishing.dataset import dataset_card
        >>> ds = datasets.Dataset.from_dict({"instruction": ["Name a colour."], "response": ["Red."],
        ...                                  "instruction_source": ["alpaca"]})
        >>> "Decontamination" in dataset_card(ds).text  # no step recorded, none claimed
        False
    """
    from huggingface_hub import DatasetCard, DatasetCardData

    from lamini_lm.quality.stats import compute_stats

    if isinstance(manifest, Mapping):
        manifest = Manifest.from_dict(manifest)
    stats = stats if stats is not None else compute_stats(ds, None)
    data = DatasetCardData(
        language="en",
        license="cc-by-nc-4.0",
        task_categories=["text2text-generation"],
        size_categories=_size_category(len(ds)),
        pretty_name=pretty_name,
        tags=["lamini-lm", "instruction-tuning", "distillation", "synthetic"],
        configs=[{"config_name": "default", "data_files": [{"split": "train", "path": "data/train-*"}]}],
    )
    if template_path is None:
        template = resources.files("lamini_lm.templates").joinpath("dataset_card.md").read_text(encoding="utf-8")
    else:
        template = Path(template_path).read_text(encoding="utf-8")
    reports = [StepReport.from_dict(r) for r in (manifest.reports if manifest else [])]
    prompts = _prompts_used(manifest, ds)
    tokens = _tokens(manifest, ds)
    teachers = _models(manifest, ds, "teacher_model")
    spend = list((manifest.extra or {}).get("spend") or []) if manifest else []
    sources = set(stats["counts"])
    return DatasetCard.from_template(
        data,
        template_str=template,
        rows=len(ds),
        columns=ds.column_names,
        counts=stats["counts"],
        plots=stats.get("plots", {}),
        plots_prefix=plots_prefix,
        teacher_models=[describe_model(m) for m in teachers],
        instruction_models=[describe_model(m) for m in _models(manifest, ds, "instruction_model")],
        generated=bool(sources & _GENERATED_SOURCES),
        existing=bool(sources - _GENERATED_SOURCES),
        tokens=tokens,
        spend=[{**s, "what": _GENERATION_STAGES[s["stage"]]} for s in spend if s.get("stage") in _GENERATION_STAGES],
        cost=_cost_text(_cost(manifest, ds), tokens, teachers),
        prompts=prompts,
        prompt_texts={name: _PROMPT_TEXTS[name] for name in prompts if name in _PROMPT_TEXTS},
        reports=reports,
        steps=[r.step for r in reports],
        manifest_id=manifest.id if manifest else None,
        created=created or _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d"),
        library_version=__version__,
    )


def _failed_rows(ds: datasets.Dataset) -> list[int]:
    """Rows whose request failed (``error`` set) or that have no response: nothing to publish there."""
    errors = _column_values(ds, "error") or [None] * len(ds)
    responses = _column_values(ds, "response") or [""] * len(ds)
    return [i for i, (e, r) in enumerate(zip(errors, responses)) if e or r is None]


def build_release(
    ds: datasets.Dataset,
    out_dir: str | os.PathLike,
    *,
    pretty_name: str = "LaMini-style instructions",
    manifest: Manifest | None = None,
    reports: Sequence[StepReport | Mapping] | Mapping[str, StepReport | Mapping] | None = None,
    inputs: Sequence[Mapping[str, Any]] | None = None,
    embed: str = "auto",
    max_shard_rows: int = 500_000,
    keep_internal_columns: bool = False,
    overwrite: bool = False,
    created: str | None = None,
) -> Path:
    """Write the release folder of ``ds`` (``data/train-XXXXX-of-YYYYY.parquet``, ``plots/``, README.md, manifest).

    Args:
        manifest: the manifest of the artifact ``ds`` was read from; its reports, teacher models, tokens and cost
            are carried into the release's manifest and card.
        reports: reports of steps run in this process (after those of ``manifest``), e.g. ``[dedup_report]``.
        inputs: the release manifest's inputs (``describe_input`` entries); default: ``manifest``'s artifact.
        keep_internal_columns: publish :data:`INTERNAL_COLUMNS` too.
        overwrite: replace ``out_dir`` even if it holds something other than a release.

    The folder is written beside ``out_dir`` and renamed into place (see :func:`lamini_lm.artifacts.artifact_output`):
    a folder holding other files is refused unless ``overwrite``. Returns ``out_dir``.
    """
    from lamini_lm.quality.stats import compute_stats

    check_choice("embed", embed, _EMBEDS)
    check_range("max_shard_rows", max_shard_rows, 1)
    check_output(out_dir, RELEASE_STAGE, overwrite)
    start = time.perf_counter()
    extra = list(reports.values()) if isinstance(reports, Mapping) else list(reports or [])
    upstream = [*(manifest.reports if manifest else []), *extra]
    failed = _failed_rows(ds)
    rows_in = len(ds)
    if failed:
        drop = set(failed)
        ds = ds.select([i for i in range(len(ds)) if i not in drop])
    dropped_columns = [] if keep_internal_columns else [c for c in INTERNAL_COLUMNS if c in ds.column_names]
    stats = compute_stats(ds, None)  # tokens, cost and models of the rows published, before columns are dropped
    inputs = list(inputs) if inputs is not None else ([_manifest_input(manifest)] if manifest else [])
    spend = _spend(inputs)
    if spend:  # every generation artifact upstream, not only the last one
        tokens = {
            "prompt": sum(s["prompt_tokens"] for s in spend),
            "completion": sum(s["completion_tokens"] for s in spend),
        }
        costs = [s["cost_usd"] for s in spend if s["cost_usd"] is not None]
        cost = round(sum(costs), 6) if costs else None
    else:
        tokens, cost = _tokens(manifest, ds), _cost(manifest, ds)
    record = Manifest(
        stage=RELEASE_STAGE,
        config={
            "pretty_name": pretty_name,
            "embed": embed,
            "max_shard_rows": max_shard_rows,
            "keep_internal_columns": keep_internal_columns,
        },
        inputs=inputs,
        rows=len(ds),
        tokens=tokens,
        cost_usd=cost,
        teacher_models=_models(manifest, ds, "teacher_model"),
        prompt_hashes=_prompts_used(manifest, ds, [h for s in spend for h in s["prompt_hashes"].values()]) or None,
        reports=upstream,
    )
    public = ds.remove_columns(dropped_columns) if dropped_columns else ds
    record.reports.append(
        StepReport(
            step=RELEASE_STAGE,
            rows_in=rows_in,
            rows_out=len(public),
            removed={"failed_request": len(failed)} if failed else {},
            seconds=round(time.perf_counter() - start, 3),
            config=dict(record.config),
            details={"columns": public.column_names, "dropped_columns": dropped_columns},
        ).to_dict()
    )
    with artifact_output(out_dir, RELEASE_STAGE, overwrite) as tmp:
        (tmp / "data").mkdir()
        shards = max(1, -(-len(public) // max_shard_rows))
        for k in range(shards):
            part = public.shard(shards, k, contiguous=True)
            part.to_parquet(str(tmp / "data" / f"train-{k:05d}-of-{shards:05d}.parquet"))
        plots = compute_stats(public, tmp / "plots", embed=embed)
        (tmp / "plots").mkdir(exist_ok=True)
        stats["plots"] = plots["plots"]
        if "diversity_map" in plots:
            stats["diversity_map"] = plots["diversity_map"]
        record.extra = {"stats": stats, "shards": shards, **({"spend": spend} if spend else {})}
        record.timings = {"seconds": round(time.perf_counter() - start, 3)}
        card = dataset_card(public, record, pretty_name=pretty_name, stats=stats, created=created)
        card.save(str(tmp / "README.md"))
        record.save(tmp)
    logger.info("release folder written: %s (%d rows, %d parquet shard(s))", out_dir, len(public), shards)
    return Path(out_dir)


def _manifest_input(manifest: Manifest) -> dict[str, Any]:
    """An input known only by its manifest (a dataset in memory, read from an artifact earlier)."""
    return {"role": "input", "manifest_id": manifest.id, "stage": manifest.stage}


def _check_hub_target(repo_id: str, overwrite: bool, token: str | None = None) -> None:
    """Refuse a Hub dataset repo holding files lamini-lm did not write (no release manifest), unless overwrite."""
    from huggingface_hub import HfApi
    from huggingface_hub.errors import RepositoryNotFoundError

    try:
        files = HfApi(token=token).list_repo_files(repo_id, repo_type="dataset")
    except RepositoryNotFoundError:
        return
    theirs = sorted(f for f in files if f not in (".gitattributes",))
    if overwrite or not theirs or MANIFEST_FILE in files:
        return
    raise OutputExistsError(
        f"--repo_id {repo_id}: the Hub dataset repo holds files that are not a lamini-lm release ({theirs[:3]}); "
        "choose another --repo_id or pass --overwrite to replace its data/, plots/ and README.md"
    )


def push_dataset(
    folder: str | os.PathLike,
    repo_id: str,
    *,
    private: bool = False,
    token: str | None = None,
    overwrite: bool = False,
    commit_message: str = "Upload dataset with lamini-lm",
) -> str:
    """Create the dataset repo if needed and upload a release folder in one commit; returns the commit URL.

    Old shards (``data/*``) and plots of an earlier release are removed in the same commit, so the repo serves
    exactly this release. A repo holding files that are not a lamini-lm release is refused unless ``overwrite``.
    The endpoint is ``HF_ENDPOINT`` (huggingface_hub's setting); the token is ``token`` or the one huggingface_hub
    finds (``HF_TOKEN``, ``hf auth login``) and is never logged.
    """
    from huggingface_hub import HfApi

    folder = Path(folder)
    if not is_release_folder(folder):
        raise UsageError(f"{folder}: not a release folder (needs README.md and data/*.parquet); build one first")
    _check_hub_target(repo_id, overwrite, token)
    api = HfApi(token=token)
    api.create_repo(repo_id, repo_type="dataset", private=private, exist_ok=True)
    info = api.upload_folder(
        repo_id=repo_id,
        repo_type="dataset",
        folder_path=str(folder),
        commit_message=commit_message,
        delete_patterns=["data/*", "plots/*"],
    )
    logger.info("pushed %s to dataset repo %s", folder, repo_id)
    return str(getattr(info, "commit_url", info))


# --- the push-dataset stage ---


@dataclass
class PushDatasetConfig:
    """Settings of ``lamini-lm push-dataset`` (and :func:`run_push_dataset`)."""

    input: str = field(
        default=None,
        metadata={
            "help": "a release folder to push as it is, or a dataset to release: save_to_disk folder, .parquet, "
            ".jsonl",
            "required": True,
        },
    )
    release_dir: str | None = field(
        default=None, metadata={"help": "folder to write the release into (needed unless --input is a release)"}
    )
    repo_id: str | None = field(
        default=None, metadata={"help": "Hub dataset repo to push to (none: only write the release folder)"}
    )
    pretty_name: str = field(default="LaMini-style instructions", metadata={"help": "dataset name on the card"})
    private: bool = field(default=False, metadata={"help": "create the Hub repo as private"})
    embed: str = field(default="auto", metadata={"help": "diversity map embedding: auto, minilm, tfidf or none"})
    keep_columns: bool = field(
        default=False,
        metadata={"help": "keep generation's internal columns (request_key, error, usage, prompt versions)"},
    )
    max_shard_rows: int = field(default=500_000, metadata={"help": "rows per parquet shard"})
    overwrite: bool = field(
        default=False, metadata={"help": "replace a --release_dir or Hub repo that holds other files"}
    )

    def __post_init__(self):
        check_required(self)
        check_choice("embed", self.embed, _EMBEDS)
        check_range("max_shard_rows", self.max_shard_rows, 1)


@dataclass
class PushResult:
    """What :func:`run_push_dataset` did: the release folder, its manifest, and the commit URL if pushed."""

    release_dir: Path
    manifest: Manifest
    url: str | None = None


def run_push_dataset(config: PushDatasetConfig, token: str | None = None) -> PushResult:
    """Release ``config.input`` (unless it is a release folder already) and push it to ``config.repo_id``.

    Every check that can fail (the input, ``--release_dir``, the Hub repo's content) runs before any file is
    written or uploaded.

    Example:
        >>> from lamini_lm.publishing.dataset import PushDatasetConfig, run_push_dataset
        >>> run_push_dataset(PushDatasetConfig(input="runs/clean", release_dir="runs/release",
        ...                                    repo_id="me/my-lamini"))  # doctest: +SKIP
    """
    from lamini_lm.quality.stages import load_input

    source = Path(config.input)
    if not source.exists():
        raise FileNotFoundError(f"--input {source}: no such file or folder")
    if is_release_folder(source) and read_manifest(source) is not None:
        if config.release_dir and Path(config.release_dir).resolve() != source.resolve():
            raise UsageError(f"--input {source} is a release folder already: push it as it is, without --release_dir")
        if not config.repo_id:
            raise UsageError(f"--input {source} is a release folder already: give --repo_id to push it")
        folder = source
    else:
        if not config.release_dir:
            raise UsageError("--release_dir is required when --input is a dataset (not a release folder)")
        check_output(config.release_dir, RELEASE_STAGE, config.overwrite, flag="--release_dir")
        if config.repo_id:
            _check_hub_target(config.repo_id, config.overwrite, token)
        ds, upstream, entry = load_input(config.input)
        folder = build_release(
            ds,
            config.release_dir,
            pretty_name=config.pretty_name,
            manifest=upstream,
            inputs=[entry],
            embed=config.embed,
            max_shard_rows=config.max_shard_rows,
            keep_internal_columns=config.keep_columns,
            overwrite=config.overwrite,
        )
    manifest = read_manifest(folder)
    url = None
    if config.repo_id:
        url = push_dataset(folder, config.repo_id, private=config.private, token=token, overwrite=config.overwrite)
    return PushResult(Path(folder), manifest, url)


def main(argv: list[str] | None = None, prog: str = "lamini-lm push-dataset") -> int:
    """``lamini-lm push-dataset``: write a dataset's release folder and push it to a Hub dataset repo."""
    from lamini_lm.config import StageParser

    (config,) = StageParser(
        [PushDatasetConfig],
        prog,
        "Write the release folder of a dataset (data/*.parquet, README.md card, plots/, lamini_lm.json) and push it "
        "to a Hub dataset repo; the card is rendered from the dataset's manifest.",
        examples=f"  {prog} --input runs/clean --release_dir runs/release                    # the folder only\n"
        f"  {prog} --input runs/clean --release_dir runs/release --repo_id me/my-lamini\n"
        f"  {prog} --input runs/release --repo_id me/my-lamini                           # push a release as it is",
    ).parse(argv)
    result = run_push_dataset(config)
    rows = result.manifest.rows if result.manifest else None
    print(f"release folder: {result.release_dir} ({rows:,} rows)" if rows is not None else f"{result.release_dir}")
    if result.url:
        print(f"pushed to {config.repo_id}: {result.url}")
    return 0
