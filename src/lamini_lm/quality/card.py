"""The dataset card of a run, and the parquet + card folder that ``lamini-lm push-dataset`` publishes.

The card is a ``huggingface_hub.DatasetCard`` rendered from ``lamini_lm/templates/dataset_card.md`` with
``DatasetCardData`` metadata (license cc-by-nc-4.0, text2text-generation, en, the ``configs`` entry pointing at the
parquet shards); its text is filled from the data (sources and counts, teacher models, token and cost totals) and
from the run's reports (dedup, filters, decontamination, statistics and plots).

Example:
    >>> import datasets, tempfile
    >>> from huggingface_hub import DatasetCard
    >>> from lamini_lm.quality import dataset_card
    >>> ds = datasets.Dataset.from_dict({"instruction": ["Name a colour."], "response": ["Red."],
    ...                                  "instruction_source": ["alpaca"]})
    >>> card = dataset_card(ds, pretty_name="My LaMini data")
    >>> path = tempfile.mktemp(suffix=".md"); card.save(path)
    >>> DatasetCard.load(path).data.license
    'cc-by-nc-4.0'
"""

from __future__ import annotations

import datetime as _dt
import logging
import os
import shutil
import tempfile
from importlib import resources
from typing import TYPE_CHECKING, Any

from lamini_lm import __version__
from lamini_lm.io import replace_dir
from lamini_lm.prompts import EXAMPLE_GUIDED_TEMPLATE, PROMPT_HASHES, PROMPT_VERSION, SYSTEM_MESSAGE
from lamini_lm.quality.stats import compute_stats

if TYPE_CHECKING:
    import datasets
    from huggingface_hub import DatasetCard

__all__ = ["build_release", "dataset_card", "push_dataset"]

logger = logging.getLogger(__name__)


def _size_category(n: int) -> str:
    for limit, name in ((1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"), (1_000_000, "100K<n<1M")):
        if n < limit:
            return name
    return "1M<n<10M" if n < 10_000_000 else "10M<n<100M"


def dataset_card(
    ds: datasets.Dataset,
    *,
    pretty_name: str = "LaMini-style instructions",
    reports: dict[str, Any] | None = None,
    stats: dict[str, Any] | None = None,
    plots_prefix: str = "plots/",
    created: str | None = None,
    template_path: str | os.PathLike | None = None,
) -> DatasetCard:
    """A ``DatasetCard`` for ``ds``.

    Args:
        reports: ``{"dedup": ..., "filters": ..., "decontamination": ...}``, the reports of :func:`dedup`,
            :func:`filter_rows`, :func:`decontaminate` (any subset).
        stats: :func:`compute_stats`'s result (computed without plots when None); its ``plots`` are linked as
            ``plots_prefix + file name``.
        created: the date shown (default: today, UTC).
    """
    from huggingface_hub import DatasetCard, DatasetCardData

    reports = reports or {}
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
    tokens = None
    if "prompt_tokens" in stats or "completion_tokens" in stats:
        tokens = {"prompt": int(stats.get("prompt_tokens", 0)), "completion": int(stats.get("completion_tokens", 0))}
    if template_path is None:
        template = resources.files("lamini_lm.templates").joinpath("dataset_card.md").read_text(encoding="utf-8")
    else:
        template = open(template_path, encoding="utf-8").read()
    return DatasetCard.from_template(
        data,
        template_str=template,
        rows=len(ds),
        columns=ds.column_names,
        counts=stats["counts"],
        plots=stats.get("plots", {}),
        plots_prefix=plots_prefix,
        teacher_models=stats.get("teacher_models", []),
        instruction_models=stats.get("instruction_models", []),
        tokens=tokens,
        cost_usd=stats.get("cost_usd"),
        prompt_version=PROMPT_VERSION,
        prompt_hashes=PROMPT_HASHES,
        system_message=SYSTEM_MESSAGE,
        example_guided_template=EXAMPLE_GUIDED_TEMPLATE,
        dedup=reports.get("dedup"),
        filters=reports.get("filters"),
        decontamination=reports.get("decontamination"),
        created=created or _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d"),
        library_version=__version__,
    )


def build_release(
    ds: datasets.Dataset,
    out_dir: str | os.PathLike,
    *,
    pretty_name: str = "LaMini-style instructions",
    reports: dict[str, Any] | None = None,
    embed: str = "auto",
    max_shard_rows: int = 500_000,
) -> str:
    """Write the folder a Hub dataset repo holds: ``data/train-XXXXX-of-YYYYY.parquet``, ``plots/*.png``, README.md.

    Written to a temporary sibling and moved into place, so ``out_dir`` is never half-written. Returns ``out_dir``.
    """
    out_dir = os.fspath(out_dir)
    parent = os.path.dirname(os.path.abspath(out_dir))
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=".release-", dir=parent)
    try:
        os.makedirs(os.path.join(tmp, "data"))
        shards = max(1, -(-len(ds) // max_shard_rows))
        for k in range(shards):
            part = ds.shard(shards, k, contiguous=True)
            part.to_parquet(os.path.join(tmp, "data", f"train-{k:05d}-of-{shards:05d}.parquet"))
        stats = compute_stats(ds, os.path.join(tmp, "plots"), embed=embed)
        card = dataset_card(ds, pretty_name=pretty_name, reports=reports, stats=stats)
        card.save(os.path.join(tmp, "README.md"))
        replace_dir(tmp, out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    logger.info("release folder written: %s (%d rows, %d parquet shard(s))", out_dir, len(ds), shards)
    return out_dir


def push_dataset(
    folder: str | os.PathLike,
    repo_id: str,
    *,
    private: bool = False,
    token: str | None = None,
    commit_message: str = "Upload dataset with lamini-lm",
) -> str:
    """Create the dataset repo if needed and upload a :func:`build_release` folder; returns the commit URL.

    The endpoint is ``HF_ENDPOINT`` (huggingface_hub's own setting); the token is ``token`` or the one
    huggingface_hub finds (``HF_TOKEN``, ``hf auth login``) and is never logged.
    """
    from huggingface_hub import HfApi

    folder = os.fspath(folder)
    if not os.path.isfile(os.path.join(folder, "README.md")) or not os.path.isdir(os.path.join(folder, "data")):
        raise FileNotFoundError(f"{folder}: not a release folder (needs README.md and data/); run build_release first")
    api = HfApi(token=token)
    api.create_repo(repo_id, repo_type="dataset", private=private, exist_ok=True)
    info = api.upload_folder(repo_id=repo_id, repo_type="dataset", folder_path=folder, commit_message=commit_message)
    logger.info("pushed %s to dataset repo %s", folder, repo_id)
    return str(getattr(info, "commit_url", info))
