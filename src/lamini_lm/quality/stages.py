"""The quality stages as functions of config dataclasses: ``run_dedup``, ``run_filter``, ``run_decontaminate``,
``run_stats``. ``lamini-lm dedup | filter | decontaminate | stats`` parse the same dataclasses and call them.

Each stage reads its input (a ``save_to_disk`` folder, a folder of parquet shards, a ``.parquet`` or ``.jsonl``
file) and the input's manifest, runs its step, and writes an artifact folder: the rows and a ``lamini_lm.json``
manifest holding the config, the input (with its manifest id: the lineage), the row count, and
the reports of every earlier step followed by this one's (plus teacher models, tokens and cost carried from the
input). The folder is written beside ``--output`` and renamed into place; a folder holding anything but this
stage's own artifact is refused unless ``--overwrite``.

``dedup`` and ``decontaminate`` read Arrow batches and write parquet shards (``data/train-*.parquet``), so their
memory does not grow with the input (``--max_memory``); ``--engine ray`` runs them on Ray Data.
``filter`` and ``stats`` load the table and ``filter`` writes ``save_to_disk``.

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
from lamini_lm.quality.decontaminate import DecontaminateConfig, build_index
from lamini_lm.quality.dedup import DedupConfig
from lamini_lm.quality.filters import FilterConfig, filter_rows

if TYPE_CHECKING:
    import datasets

__all__ = [
    "StageIO",
    "decontaminate_files",
    "dedup_files",
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
        default=None,
        metadata={
            "help": "folder to write: the rows (parquet shards or save_to_disk), lamini_lm.json",
            "required": True,
        },
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


def _upstream(path: str) -> tuple[Manifest | None, dict[str, Any]]:
    if "://" in path:  # a URL for --engine ray (s3://, hf://): no manifest is read from it
        return None, {"role": "input", "path": path}
    source = Path(path)
    if not source.exists():
        raise FileNotFoundError(f"--input {source}: no such file or folder")
    entry = describe_input(source)
    return (read_manifest(entry["artifact"]) if entry.get("artifact") else None), entry


def _is_dialogue_input(path: str) -> bool:
    """Whether the input holds dialogues (a ``messages`` column): those take the in-memory dialogue steps."""
    from lamini_lm.io import input_columns

    return "://" not in path and Path(path).exists() and "messages" in input_columns(path)


def _batched_step(io: StageIO, stage: str, config: Any, needs: list[str], work) -> StepReport:
    """A step that streams: check the output and the input's columns, then ``work(tmp) -> (report, rows)`` writes
    the rows under ``tmp`` (the folder renamed onto ``--output``), and the manifest is saved beside them."""
    from lamini_lm.io import input_columns

    check_output(io.output, stage, io.overwrite)
    upstream, entry = _upstream(io.input)
    if "://" in io.input and getattr(config, "engine", "local") != "ray":
        raise UsageError(f"--input {io.input}: URLs are read by --engine ray only; download the rows first")
    names = needs if "://" in io.input else input_columns(io.input)
    missing = [c for c in needs if c not in names]
    if missing:
        raise DataError(
            f"--input {io.input}: no {missing[0]!r} column (its columns: {', '.join(names)}); "
            f"pass {'--column' if stage == 'dedup' else '--columns'} with the column(s) it has"
        )
    with artifact_output(io.output, stage, io.overwrite) as tmp:
        report, rows = work(Path(tmp))
        manifest = Manifest(
            stage=stage,
            config={**asdict(io), **asdict(config)},
            inputs=[entry],
            rows=rows,
            tokens=upstream.tokens if upstream else None,
            cost_usd=upstream.cost_usd if upstream else None,
            teacher_models=list(upstream.teacher_models) if upstream else [],
            prompt_hashes=upstream.prompt_hashes if upstream else None,
            reports=[*(upstream.reports if upstream else []), report],
            timings={"seconds": report.seconds},
        )
        manifest.save(tmp)
    return report


def run_dedup(io: StageIO, config: DedupConfig | None = None) -> StepReport:
    """``lamini-lm dedup``: exact, then MinHash + ROUGE-L near-duplicate removal (see :func:`dedup`).

    Reads the input twice in Arrow batches (once for the signatures, once to write the kept rows as parquet
    shards), so memory is what the passes keep per row, not the table (``--max_memory``; ``--engine ray``).
    """
    config = config or DedupConfig()
    if _is_dialogue_input(io.input):  # dialogues: dedup on the first user turn, in memory
        from lamini_lm.quality.dialogues import dedup_dialogues

        return _step(io, "dedup", config, lambda ds: dedup_dialogues(ds, config))

    def work(tmp: Path) -> tuple[StepReport, int]:
        if config.engine == "ray":
            from lamini_lm.quality.ray_engine import ray_dedup

            return ray_dedup(io.input, tmp, config)
        return dedup_files(io.input, tmp, config)

    return _batched_step(io, "dedup", config, [config.column], work)


def dedup_files(source: str, folder: Path, config: DedupConfig) -> tuple[StepReport, int]:
    """The local engine of ``lamini-lm dedup``: signatures from batches, decisions, kept rows to ``folder/data``."""
    from collections import Counter

    import numpy as np
    import pyarrow as pa

    from lamini_lm.io import ShardWriter, iter_batches
    from lamini_lm.quality.dedup import dedup_batches, dedup_report, quoted_rows, removed_by_reason_source

    start = time.perf_counter()
    # A text input (JSONL, CSV) is parsed once: its batches go to a temporary Arrow stream beside the output while
    # they are signed, and the kept rows are written from there (a parquet or Arrow input is simply read again).
    stash = _RowStash(folder / ".lamini-rows") if _is_text_input(source) else None
    try:
        if stash is None:
            texts = (b.column(0) for b in iter_batches(source, [config.column], config.batch_rows))
        else:
            texts = (stash.add(b).column(config.column) for b in iter_batches(source, batch_rows=config.batch_rows))
        res = dedup_batches(texts, config, spill_dir=folder)
        t_write = time.perf_counter()
        quoted = set(quoted_rows(res, config.examples).tolist())
        quoted_text: dict[int, str] = {}
        counts: dict[str, Counter] = {}
        keep = res.keep
        offset = 0
        with ShardWriter(folder) as writer:
            schema = None
            rows = stash.batches() if stash is not None else iter_batches(source, batch_rows=config.batch_rows)
            for batch in rows:
                n = batch.num_rows
                schema = batch.schema
                mine = [r for r in quoted if offset <= r < offset + n]
                if mine:
                    col = batch.column(config.column)
                    quoted_text.update({r: col[r - offset].as_py() for r in mine})
                if "instruction_source" in batch.schema.names:
                    sources = batch.column("instruction_source").to_pylist()
                    for k, v in removed_by_reason_source(res, sources, offset).items():
                        counts.setdefault(k, Counter()).update(v)
                m = keep[offset : offset + n]
                writer.write(batch if m.all() else batch.filter(pa.array(m)))
                offset += n
            writer.close(schema)
    finally:
        if stash is not None:
            stash.close()
    res.stats["seconds"]["write"] = round(time.perf_counter() - t_write, 3)
    report = dedup_report(res, config, quoted_text, {k: dict(v) for k, v in counts.items()},
                          time.perf_counter() - start)  # fmt: skip
    return report, int(np.count_nonzero(keep))


def _is_text_input(source: str) -> bool:
    from lamini_lm.io import _files

    return _files(Path(source))[0] in ("json", "table")


class _RowStash:
    """Record batches kept in Arrow IPC stream files under ``folder`` (a new file when the schema changes), read
    back in order by :meth:`batches`; :meth:`close` removes them."""

    def __init__(self, folder: Path):
        self.folder = folder
        self.paths: list[Path] = []
        self._writer = self._file = self._schema = None

    def add(self, batch):
        import pyarrow as pa

        if self._writer is None or batch.schema != self._schema:
            self._close_writer()
            self.folder.mkdir(parents=True, exist_ok=True)
            self.paths.append(self.folder / f"part-{len(self.paths):05d}.arrow")
            self._file = pa.OSFile(str(self.paths[-1]), "wb")
            self._writer = pa.ipc.new_stream(self._file, batch.schema)
            self._schema = batch.schema
        self._writer.write_batch(batch)
        return batch

    def _close_writer(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._file.close()
            self._writer = self._file = None

    def batches(self):
        import pyarrow as pa

        self._close_writer()
        for path in self.paths:
            with pa.OSFile(str(path), "rb") as f:
                yield from pa.ipc.open_stream(f)

    def close(self) -> None:
        import shutil

        self._close_writer()
        shutil.rmtree(self.folder, ignore_errors=True)


def run_filter(io: StageIO, config: FilterConfig | None = None) -> StepReport:
    """``lamini-lm filter``: the heuristic row filters (see :func:`filter_rows`)."""
    config = config or FilterConfig()
    from lamini_lm.quality.dialogues import filter_dialogues, is_dialogue

    return _step(io, "filter", config, lambda ds: (filter_dialogues if is_dialogue(ds) else filter_rows)(ds, config))


def run_decontaminate(io: StageIO, config: DecontaminateConfig | None = None) -> StepReport:
    """``lamini-lm decontaminate``: remove or tag rows sharing an n-gram with the evaluation sets.

    The input's columns are checked before any evaluation set is loaded; the rows are then checked and written
    batch by batch (parquet shards), on Ray Data with ``--engine ray``.
    """
    config = config or DecontaminateConfig()
    if _is_dialogue_input(io.input):  # dialogues: every turn of `messages` is checked, whatever --columns says
        from lamini_lm.quality.dialogues import decontaminate_dialogues

        return _step(
            io,
            "decontaminate",
            config,
            lambda ds: decontaminate_dialogues(
                ds, config.sources(), ngram=config.ngram, action=config.action, examples=config.examples
            ),
        )

    def work(tmp: Path) -> tuple[StepReport, int]:
        t0 = time.perf_counter()
        index = build_index(config.sources(), None, config.ngram)
        t_index = time.perf_counter() - t0
        if config.engine == "ray":
            from lamini_lm.quality.ray_engine import ray_decontaminate

            return ray_decontaminate(io.input, tmp, config, index, t_index)
        return decontaminate_files(io.input, tmp, config, index, t_index)

    return _batched_step(io, "decontaminate", config, list(config.columns), work)


def decontaminate_files(
    source: str, folder: Path, config: DecontaminateConfig, index, t_index: float
) -> tuple[StepReport, int]:
    """The local engine of ``lamini-lm decontaminate``: one pass, batch by batch, rows written as parquet shards."""
    import pyarrow as pa

    from lamini_lm.io import ShardWriter, iter_batches
    from lamini_lm.quality.decontaminate import _SHARED, DecontaminationTally, scan_shared, task_names
    from lamini_lm.quality.text import forked_map

    t1 = time.perf_counter()
    tally = DecontaminationTally(index, config.columns, config.action, config.examples)
    offset = 0
    batches = iter_batches(source, batch_rows=config.batch_rows)

    _SHARED["index"] = index  # the forked workers inherit it
    try:
        with ShardWriter(folder) as writer:
            schema = None
            # batches are checked on num_proc processes while this one reads and writes
            texts = forked_map(scan_shared, batches, config.num_proc,
                               payload=lambda b: {c: b.column(c) for c in config.columns}, fresh=True)  # fmt: skip
            for batch, (total, per_column) in texts:
                names = batch.schema.names
                sources = batch.column("instruction_source").to_pylist() if "instruction_source" in names else None
                tally.add(batch.column(config.columns[0]), total, per_column, sources, offset)
                offset += batch.num_rows
                if config.action == "tag":
                    tags = pa.array(task_names(index, total), pa.list_(pa.string()))
                    batch = batch.append_column("contaminated", tags)
                elif total.any():
                    batch = batch.filter(pa.array(total == 0))
                schema = batch.schema
                writer.write(batch)
            writer.close(schema)
    finally:
        _SHARED.clear()
    phases = {"index": round(t_index, 3), "scan_and_write": round(time.perf_counter() - t1, 3)}
    report = tally.report(t_index + time.perf_counter() - t1, phases)
    return report, int(report.rows_out)


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
