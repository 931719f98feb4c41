"""``lamini-lm build``: prepare every config of the ``instructions`` builder into the ``datasets`` cache under the
repo id ``lamini_lm/instructions``, so that in any later Python process, offline::

    from datasets import load_dataset
    ds = load_dataset("lamini_lm/instructions", split="train")             # the `all` config
    flan = load_dataset("lamini_lm/instructions", "generated_flan", split="train")

How: ``load_dataset`` falls back to ``datasets``' cache module when the Hub has no such repo (or is offline), and
picks ``<cache>/lamini_lm___instructions/<config>/<version>/<hash>``, the newest one for a named config, the newest
of all for no config. Each build therefore writes every config under a hash of its inputs (so new generation runs
are a new hash, never a stale cache), removes the older hashes once everything succeeded, and touches ``all`` last
so that it is the default. A failure removes what this build wrote and leaves the previous build in place.

Usage:
    lamini-lm build --generated quickstart-output/dataset            # a release folder
    lamini-lm build --generated runs/flan/responses runs/clean       # save_to_disk folders
    lamini-lm build --original                 # the released MBZUAI/LaMini-instruction (needs the Hub once)
    lamini-lm build build.yaml --cache_dir /data/hf/datasets
"""

from __future__ import annotations

import glob
import hashlib
import logging
import os
import shutil
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from lamini_lm.errors import UsageError

from ._io import inputs_fingerprint

logger = logging.getLogger(__name__)

__all__ = ["REPO_ID", "BuildArguments", "BuildResult", "build_instructions", "main", "resolve_inputs", "run_build"]

REPO_ID = "lamini_lm/instructions"
_TABLE_FILES = (".jsonl", ".json", ".parquet", ".csv", ".tsv")


@dataclass
class BuildArguments:
    """Settings of ``lamini-lm build`` (and :func:`run_build`)."""

    generated: list[str] = field(
        default_factory=list,
        metadata={
            "help": "data to build from: release folders (data/*.parquet, as push-dataset and the quickstart write), "
            "save_to_disk folders (generation and quality outputs), .parquet or .jsonl files"
        },
    )
    original: bool = field(
        default=False, metadata={"help": "also include the released MBZUAI/LaMini-instruction (from the Hub)"}
    )
    original_files: list[str] = field(
        default_factory=list, metadata={"help": "local parquet files of the released dataset (instead of the Hub)"}
    )
    configs: list[str] = field(
        default_factory=list, metadata={"help": "configs to build (default: all of them; `all` is always built)"}
    )
    cache_dir: str | None = field(
        default=None, metadata={"help": "datasets cache to build into (default: HF_DATASETS_CACHE)"}
    )

    def __post_init__(self):
        self.generated = [os.fspath(p) for p in self.generated or []]
        self.original_files = [os.fspath(p) for p in self.original_files or []]
        self.configs = list(self.configs or [])
        if not (self.generated or self.original or self.original_files):
            raise UsageError("nothing to build: pass --generated PATH [PATH ...] and/or --original")
        from .instructions import Instructions

        names = [c.name for c in Instructions.BUILDER_CONFIGS]
        unknown = sorted(set(self.configs) - set(names))
        if unknown:
            raise UsageError(f"--configs: unknown config(s) {unknown}; available: {', '.join(names)}")


@dataclass
class BuildResult:
    """What a build wrote: the cache folder, row count and skipped rows (by reason) of each config, and the inputs
    it read (path, fingerprint, and the manifest id and stage of the lamini-lm artifact each came from)."""

    paths: dict[str, str]
    num_rows: dict[str, int]
    skipped: dict[str, int]
    inputs: list[dict[str, Any]] = field(default_factory=list)


def resolve_inputs(paths: Sequence[str | os.PathLike]) -> list[str]:
    """The files and folders the builder reads for ``paths``: a release folder becomes its ``data/*.parquet``
    shards; ``save_to_disk`` folders and table files stay as they are. Anything else is an error naming it."""
    from lamini_lm.io import release_shards

    from .instructions import is_saved_dataset

    resolved: list[str] = []
    for path in map(os.fspath, paths):
        if not os.path.exists(path):
            raise FileNotFoundError(f"--generated {path}: no such file or folder")
        if os.path.isdir(path):
            if is_saved_dataset(path):
                resolved.append(path)
            elif release_shards(path):
                resolved += [str(p) for p in release_shards(path)]
            else:
                raise UsageError(
                    f"--generated {path}: a folder that is neither a release folder (data/*.parquet) nor a saved "
                    "dataset (save_to_disk)"
                )
        elif path.lower().removesuffix(".gz").endswith(_TABLE_FILES):
            resolved.append(path)
        else:
            raise UsageError(f"--generated {path}: unsupported file; use .parquet, .jsonl, .json, .csv or .tsv")
    return resolved


def _warn_if_on_hub() -> str | None:
    """Online, ``load_dataset("lamini_lm/instructions")`` asks the Hub first: a repo of that name would shadow the
    local build. Returns the warning (also logged) when the name resolves there; offline nothing is asked."""
    from huggingface_hub import HfApi, constants

    if constants.HF_HUB_OFFLINE:
        return None
    try:
        HfApi().dataset_info(REPO_ID, timeout=5)
    except Exception as e:  # not found (the usual case), or the Hub unreachable: nothing shadows the build
        logger.debug("%s on the Hub: %s", REPO_ID, type(e).__name__)
        return None
    message = (
        f"the Hub has a dataset named {REPO_ID}: online, load_dataset({REPO_ID!r}) loads that one, not this build "
        "(set HF_HUB_OFFLINE=1 to load the local build)"
    )
    logger.warning(message)
    return message


def build_instructions(
    generated: Sequence[str | os.PathLike] = (),
    original: bool = False,
    original_files: Sequence[str | os.PathLike] | None = None,
    cache_dir: str | os.PathLike | None = None,
    configs: Sequence[str] | None = None,
) -> BuildResult:
    """Prepare the ``instructions`` builder's configs into the cache as ``lamini_lm/instructions``.

    The same as :func:`run_build` (``BuildArguments(...)``), with keyword arguments.

    Example:
        >>> from lamini_lm.builders import build_instructions
        >>> result = build_instructions(generated=["quickstart-output/dataset"])  # doctest: +SKIP
        >>> result.num_rows["all"]  # doctest: +SKIP
        >>> from datasets import load_dataset
        >>> ds = load_dataset("lamini_lm/instructions", split="train")  # doctest: +SKIP
    """
    return run_build(
        BuildArguments(
            generated=list(generated),
            original=original,
            original_files=list(original_files or []),
            cache_dir=None if cache_dir is None else os.fspath(cache_dir),
            configs=list(configs or []),
        )
    )


def run_build(config: BuildArguments) -> BuildResult:
    """``lamini-lm build``: prepare every config of the ``instructions`` builder into the datasets cache.

    Raises:
        DataFileError: a row or column that cannot be used, naming file, line and field; nothing is left behind.
    """
    import datasets

    from lamini_lm.artifacts import describe_input

    from .instructions import LAMINI_REPO, Instructions

    generated = resolve_inputs(config.generated)
    original_files = list(config.original_files)
    inputs = [describe_input(p, role="generated") for p in config.generated]
    inputs += [describe_input(p, role="original") for p in original_files]
    for entry in inputs:
        if entry.get("manifest_id"):
            logger.info("input %s: %s artifact, manifest %s", entry["path"], entry["stage"], entry["manifest_id"])
    revision = None
    if config.original and not original_files:  # pin the Hub revision: it enters the hash and what is read
        from huggingface_hub import HfApi

        revision = HfApi().dataset_info(LAMINI_REPO).sha
        inputs.append({"role": "original", "hub_id": LAMINI_REPO, "revision": revision})
    names = [c.name for c in Instructions.BUILDER_CONFIGS]
    wanted = config.configs or names
    # `all` first: it reads every row, so bad input fails before anything else is written.
    order = ["all"] + [c for c in names if c in wanted and c != "all"]
    fingerprint = inputs_fingerprint(generated + original_files, extra=f"{config.original}|{revision}")
    result = BuildResult({}, {}, {}, inputs)
    created: list[str] = []
    try:
        for name in order:
            builder = Instructions(
                config_name=name,
                repo_id=REPO_ID,
                hash=hashlib.sha256(f"{fingerprint}|{name}".encode()).hexdigest()[:16],
                cache_dir=config.cache_dir,
                generated=generated,
                original=config.original,
                original_files=original_files,
                original_revision=revision,
            )
            existed = os.path.isdir(builder.cache_dir)
            if not existed:
                created.append(builder.cache_dir)
            builder.download_and_prepare()
            num_rows = builder.info.splits["train"].num_examples
            result.num_rows[name] = num_rows
            if name == "all" and not existed:
                result.skipped = dict(builder.skipped)
            if num_rows == 0:  # datasets cannot load an empty split: leave the config out of the cache
                if name == "all":
                    from lamini_lm.errors import DataError

                    raise DataError(f"no usable rows in the inputs (skipped: {result.skipped or 'none'})")
                _remove_entry(builder.cache_dir)
                _remove_empty_parents(builder.cache_dir, stop=_dataset_root(builder.cache_dir))
                continue
            result.paths[name] = builder.cache_dir
            logger.info("built %s/%s: %d rows", REPO_ID, name, num_rows)
    except Exception as e:
        for path in created:
            _remove_entry(path)
            _remove_empty_parents(path, stop=_dataset_root(path))
        cause = e.__cause__ if isinstance(e, datasets.exceptions.DatasetGenerationError) else None
        if cause is not None:  # show the user our message (file, line, field), not only "error while generating"
            raise cause from e
        raise
    # The cache module serves the newest prepared folder of a name; older hashes (and configs left out or empty
    # this time) would be served stale. datasets has no public API to drop them: this relies on its cache layout.
    root = _dataset_root(result.paths["all"])
    for name in names:
        _remove_stale(os.path.join(root, name), keep=result.paths.get(name))
    os.utime(result.paths["all"])  # the newest folder is what load_dataset("lamini_lm/instructions") picks
    return result


def _dataset_root(path: str) -> str:
    return os.path.dirname(os.path.dirname(os.path.dirname(path)))  # <root>/<config>/<version>/<hash>


def _remove_stale(config_dir: str, keep: str | None) -> None:
    """Remove every prepared folder of a config but ``keep``: the cache module would otherwise serve them."""
    for other in glob.glob(os.path.join(config_dir, "*", "*")):
        if os.path.isdir(other) and (keep is None or os.path.abspath(other) != os.path.abspath(keep)):
            _remove_entry(other)
            _remove_empty_parents(other, stop=config_dir)


def _remove_entry(path: str) -> None:
    """A prepared folder and the lock files datasets keeps beside it (``<hash>_builder.lock`` and the like)."""
    shutil.rmtree(path, ignore_errors=True)
    for lock in glob.glob(glob.escape(path) + "*.lock"):
        os.remove(lock)


def _remove_empty_parents(path: str, stop: str) -> None:
    parent = os.path.dirname(path)
    while os.path.abspath(parent).startswith(os.path.abspath(stop)) and os.path.isdir(parent):
        if os.listdir(parent):
            break
        os.rmdir(parent)
        if os.path.abspath(parent) == os.path.abspath(stop):
            break
        parent = os.path.dirname(parent)


def main(argv: list[str] | None = None, prog: str = "lamini-lm build") -> int:
    """``lamini-lm build [CONFIG.yaml] [--generated PATH ...] [--original] [--cache_dir DIR]``."""
    from lamini_lm.config import StageParser

    description = (
        "Prepare the LaMini instructions (release folders, generation or quality outputs, and/or the released "
        'dataset) into the datasets cache as lamini_lm/instructions, so that load_dataset("lamini_lm/instructions"'
        "[, config]) works offline in any later process."
    )
    examples = (
        f"  {prog} --generated quickstart-output/dataset\n"
        f"  {prog} --generated runs/clean runs/more.jsonl --configs generated_flan\n"
        f"  {prog} --original                       # the released MBZUAI/LaMini-instruction (needs the Hub once)"
    )
    (config,) = StageParser([BuildArguments], prog, description, examples=examples).parse(argv)
    result = run_build(config)
    width = max(map(len, result.num_rows))
    for name, rows in result.num_rows.items():
        print(f"{name:<{width}}  {rows:>10,} rows  {result.paths.get(name, '(empty: not cached)')}")
    if any(result.skipped.values()):
        print("skipped: " + ", ".join(f"{n:,} ({why})" for why, n in result.skipped.items() if n))
    for entry in result.inputs:
        if entry.get("manifest_id"):
            print(f"input {entry['path']}: {entry['stage']} artifact (manifest {entry['manifest_id']})")
    shadow = _warn_if_on_hub()
    if shadow:
        print(f"warning: {shadow}")
    print(f'load it with: datasets.load_dataset("{REPO_ID}"[, "<config>"], split="train")')
    return 0
