"""The quality stages as functions of config dataclasses: ``run_dedup``, ``run_filter``, ``run_decontaminate``,
``run_stats``. ``lamini-lm dedup | filter | decontaminate | stats`` parse the same dataclasses and call them.

Each stage reads its input (a ``save_to_disk`` folder, a release folder, a ``.parquet`` or ``.jsonl`` file) and
the input's manifest, runs its step, and writes an artifact folder: the rows (``save_to_disk``) and a
``lamini_lm.json`` manifest holding the config, the input (with its manifest id: the lineage), the row count, and
the reports of every earlier step followed by this one's (plus teacher models, tokens and cost carried from the
input). The folder is written beside ``--output`` and renamed into place; a folder holding anything but this
stage's own artifact is refused unless ``--overwrite``.

Example:
    >>> import datasets, os, tempfile
    >>> from lamini_lm.artifacts import read_manifest
    >>> from lamini_lm.quality.stages import StageIO, run_dedup
    >>> tmp = tempfile.mkdtemp()
    >>> _ = datasets.Dataset.from_dict({"instruction": ["Add 2 and 3.", "add 2 and 3"]}).to_json(f"{tmp}/in.jsonl")
    >>> run_dedup(StageIO(input=f"{tmp}/in.jsonl", output=f"{tmp}/dedup")).summary()
    'dedup: 2 rows in, 1 out (exact 1)'
    >>> [r["step"] for r in read_manifest(f"{tmp}/dedup").reports]
    ['dedup']
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lamini_lm.artifacts import Manifest, StepReport, artifact_output, check_output, describe_input, read_manifest
from lamini_lm.config import check_choice, check_range, check_required
from lamini_lm.errors import DataError, UsageError
from lamini_lm.quality.decontaminate import DecontaminateConfig, decontaminate
from lamini_lm.quality.dedup import DedupConfig, dedup
from lamini_lm.quality.filters import FilterConfig, filter_rows

if TYPE_CHECKING:
    import datasets

__all__ = [
    "StageIO",
    "StatsConfig",
    "load_input",
    "run_decontaminate",
    "run_dedup",
    "run_filter",
    "run_stats",
]

_INPUT_HELP = "dataset to read: a save_to_disk folder, a release folder, .parquet or .jsonl"


@dataclass
class StageIO:
    """Where a quality stage reads and writes."""

    input: str = field(default=None, metadata={"help": _INPUT_HELP, "required": True})
    output: str = field(
        default=None, metadata={"help": "folder to write: the rows (save_to_disk), lamini_lm.json", "required": True}
    )
    overwrite: bool = field(
        default=False, metadata={"help": "replace --output even if it holds files that are not this stage's output"}
    )

    def __post_init__(self):
        check_required(self)
        self.input, self.output = str(self.input), str(self.output)
        if Path(self.input).resolve() == Path(self.output).resolve():
            raise UsageError(f"--output {self.output}: is the --input; write the result to another folder")


@dataclass
class StatsConfig:
    """Settings of ``lamini-lm stats`` (and :func:`run_stats`)."""

    input: str = field(default=None, metadata={"help": _INPUT_HELP, "required": True})
    output: str = field(
        default=None, metadata={"help": "folder for stats.json, the PNG plots and lamini_lm.json", "required": True}
    )
    embed: str = field(default="auto", metadata={"help": "diversity map embedding: auto, minilm, tfidf or none"})
    max_points: int = field(default=2000, metadata={"help": "instructions sampled for the diversity map"})
    overwrite: bool = field(
        default=False, metadata={"help": "replace --output even if it holds files that are not a stats output"}
    )

    def __post_init__(self):
        check_required(self)
        check_choice("embed", self.embed, ("auto", "minilm", "tfidf", "none"))
        check_range("max_points", self.max_points, 3)


def load_input(path: str) -> tuple[datasets.Dataset, Manifest | None, dict[str, Any]]:
    """The rows of ``path``, the manifest of the artifact it belongs to (None if none), and its manifest entry.

    ``path`` is a ``save_to_disk`` folder, a release folder (``data/*.parquet``), or a ``.parquet``/``.jsonl``/
    ``.json``/``.csv`` file. Unreadable input is a :class:`~lamini_lm.errors.DataError` naming the file (and line).
    """
    from lamini_lm.io import load_table

    source = Path(path)
    if not source.exists():
        raise FileNotFoundError(f"--input {source}: no such file or folder")
    ds = load_table(source)
    entry = describe_input(source)
    manifest = read_manifest(entry["artifact"]) if entry.get("artifact") else None
    return ds, manifest, entry


def _write(
    ds: datasets.Dataset,
    report: StepReport | None,
    *,
    output: str,
    overwrite: bool,
    stage: str,
    config: dict[str, Any],
    upstream: Manifest | None,
    entry: dict[str, Any],
    save_rows: bool = True,
    before_save=None,
) -> Manifest:
    """Write ``ds`` and its manifest as ``output`` (beside it, then renamed); returns the manifest.

    The manifest carries the input's reports (then ``report``), teacher models, tokens, cost and prompt hashes.
    """
    manifest = Manifest(
        stage=stage,
        config=config,
        inputs=[entry],
        rows=len(ds),
        tokens=upstream.tokens if upstream else None,
        cost_usd=upstream.cost_usd if upstream else None,
        teacher_models=list(upstream.teacher_models) if upstream else [],
        prompt_hashes=upstream.prompt_hashes if upstream else None,
        reports=[*(upstream.reports if upstream else []), *([report] if report is not None else [])],
        timings={"seconds": report.seconds} if report is not None else {},
    )
    with artifact_output(output, stage, overwrite) as tmp:
        if save_rows:
            ds.save_to_disk(str(tmp))
        if before_save is not None:
            before_save(tmp, manifest)
        manifest.save(tmp)
    return manifest


def _step(io: StageIO, stage: str, config: Any, run) -> StepReport:
    check_output(io.output, stage, io.overwrite)  # before any work: a bad --output costs nothing
    ds, upstream, entry = load_input(io.input)
    out, report = run(ds)
    _write(out, report, stage=stage, config={**asdict(io), **asdict(config)}, upstream=upstream, entry=entry,
           output=io.output, overwrite=io.overwrite)  # fmt: skip
    return report


def run_dedup(io: StageIO, config: DedupConfig | None = None) -> StepReport:
    """``lamini-lm dedup``: exact, then MinHash + ROUGE-L near-duplicate removal (see :func:`dedup`)."""
    config = config or DedupConfig()
    from lamini_lm.quality.dialogues import dedup_dialogues, is_dialogue

    return _step(io, "dedup", config, lambda ds: (dedup_dialogues if is_dialogue(ds) else dedup)(ds, config))


def run_filter(io: StageIO, config: FilterConfig | None = None) -> StepReport:
    """``lamini-lm filter``: the heuristic row filters (see :func:`filter_rows`)."""
    config = config or FilterConfig()
    from lamini_lm.quality.dialogues import filter_dialogues, is_dialogue

    return _step(io, "filter", config, lambda ds: (filter_dialogues if is_dialogue(ds) else filter_rows)(ds, config))


def run_decontaminate(io: StageIO, config: DecontaminateConfig | None = None) -> StepReport:
    """``lamini-lm decontaminate``: remove or tag rows sharing an n-gram with the evaluation sets.

    The input's columns are checked before any evaluation set is loaded.
    """
    config = config or DecontaminateConfig()
    check_output(io.output, "decontaminate", io.overwrite)
    ds, upstream, entry = load_input(io.input)
    from lamini_lm.quality.dialogues import decontaminate_dialogues, is_dialogue

    missing = [c for c in config.columns if c not in ds.column_names]
    if is_dialogue(ds):  # dialogues: every turn of `messages` is checked, whatever --columns says
        out, report = decontaminate_dialogues(
            ds, config.sources(), ngram=config.ngram, action=config.action, examples=config.examples
        )
    elif missing:
        raise DataError(
            f"--input {io.input}: no {missing[0]!r} column to check (its columns: {', '.join(ds.column_names)}); "
            "pass --columns with the columns it has"
        )
    else:
        out, report = decontaminate(
            ds,
            config.sources(),
            ngram=config.ngram,
            columns=config.columns,
            action=config.action,
            examples=config.examples,
        )
    _write(out, report, stage="decontaminate", config={**asdict(io), **asdict(config)}, upstream=upstream,
           entry=entry, output=io.output, overwrite=io.overwrite)  # fmt: skip
    return report


def run_stats(config: StatsConfig) -> dict[str, Any]:
    """``lamini-lm stats``: ``stats.json`` and the PNG plots of a dataset, with a manifest; returns the statistics."""
    from lamini_lm.io import write_json
    from lamini_lm.quality.stats import compute_stats

    check_output(config.output, "stats", config.overwrite)
    start = time.perf_counter()
    ds, upstream, entry = load_input(config.input)
    result: dict[str, Any] = {}

    def plots(tmp: Path, manifest: Manifest) -> None:
        from lamini_lm.quality.dialogues import dialogue_stats, dialogue_view, is_dialogue

        view = dialogue_view(ds) if is_dialogue(ds) else ds
        result.update(compute_stats(view, tmp, embed=config.embed, max_points=config.max_points))
        if is_dialogue(ds):
            dialogue = dialogue_stats(ds, tmp)
            result["plots"].update(dialogue.pop("plots"))
            result["dialogues"] = dialogue
        write_json(result, tmp / "stats.json")
        manifest.extra = {"stats": result}
        manifest.timings = {"seconds": round(time.perf_counter() - start, 3)}

    _write(ds, None, stage="stats", config=asdict(config), upstream=upstream, entry=entry, output=config.output,
           overwrite=config.overwrite, save_rows=False, before_save=plots)  # fmt: skip
    return result
