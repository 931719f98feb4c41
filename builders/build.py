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
    lamini-lm build --generated runs/flan/responses runs/self_instruct/responses
    lamini-lm build --original true            # the released MBZUAI/LaMini-instruction (needs the Hub once)
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

from ._io import inputs_fingerprint

logger = logging.getLogger(__name__)

__all__ = ["REPO_ID", "BuildArguments", "BuildResult", "build_instructions", "main"]

REPO_ID = "lamini_lm/instructions"


@dataclass
class BuildArguments:
    """Settings of ``lamini-lm build``."""

    generated: list[str] = field(
        default_factory=list,
        metadata={"help": "folders written by generation runs (save_to_disk), or .jsonl/.parquet LaMini files"},
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


@dataclass
class BuildResult:
    """What a build wrote: the cache folder, row count and skipped rows (by reason) of each config."""

    paths: dict[str, str]
    num_rows: dict[str, int]
    skipped: dict[str, int]


def build_instructions(
    generated: Sequence[str | os.PathLike] = (),
    original: bool = False,
    original_files: Sequence[str | os.PathLike] | None = None,
    cache_dir: str | os.PathLike | None = None,
    configs: Sequence[str] | None = None,
) -> BuildResult:
    """Prepare the ``instructions`` builder's configs into the cache as ``lamini_lm/instructions``.

    Example:
        >>> from lamini_lm.builders import build_instructions
        >>> result = build_instructions(generated=["runs/flan/responses"])  # doctest: +SKIP
        >>> result.num_rows["all"]  # doctest: +SKIP
        >>> from datasets import load_dataset
        >>> ds = load_dataset("lamini_lm/instructions", split="train")  # doctest: +SKIP

    Raises:
        DataFileError: a row or column that cannot be used, naming file, line and field; nothing is left behind.
    """
    import datasets

    from .instructions import LAMINI_REPO, Instructions

    generated = [os.fspath(p) for p in generated]
    original_files = [os.fspath(p) for p in original_files or []]
    revision = None
    if original and not original_files:  # pin the Hub revision: it enters the hash and what is read
        from huggingface_hub import HfApi

        revision = HfApi().dataset_info(LAMINI_REPO).sha
    names = [c.name for c in Instructions.BUILDER_CONFIGS]
    wanted = list(configs) if configs else names
    unknown = sorted(set(wanted) - set(names))
    if unknown:
        raise ValueError(f"unknown config(s) {unknown}; available: {names}")
    # `all` first: it reads every row, so bad input fails before anything else is written.
    order = ["all"] + [c for c in names if c in wanted and c != "all"]
    fingerprint = inputs_fingerprint(generated + original_files, extra=f"{original}|{revision}")
    result = BuildResult({}, {}, {})
    created: list[str] = []
    try:
        for name in order:
            builder = Instructions(
                config_name=name,
                repo_id=REPO_ID,
                hash=hashlib.sha256(f"{fingerprint}|{name}".encode()).hexdigest()[:16],
                cache_dir=None if cache_dir is None else os.fspath(cache_dir),
                generated=generated,
                original=original,
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
                    raise ValueError(f"no usable rows in the inputs (skipped: {result.skipped or 'none'})")
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
    root = _dataset_root(result.paths["all"])
    for name in names:  # older hashes, and configs left out or empty this time, would be served stale
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
    """``lamini-lm build [CONFIG.yaml] [--generated DIR ...] [--original true] [--cache_dir DIR]``."""
    from lamini_lm.config import parse_config

    description = (
        "Prepare the LaMini instructions (generation runs and/or the released dataset) into the datasets cache as "
        'lamini_lm/instructions, so that load_dataset("lamini_lm/instructions"[, config]) works offline.'
    )
    (args,) = parse_config([BuildArguments], argv, prog=prog, description=description)
    if not args.generated and not args.original and not args.original_files:
        print(f"{prog}: nothing to build: pass --generated DIR [DIR ...] and/or --original true")
        return 2
    from ._io import DataFileError

    try:
        result = build_instructions(
            generated=args.generated,
            original=args.original,
            original_files=args.original_files,
            cache_dir=args.cache_dir,
            configs=args.configs or None,
        )
    except DataFileError as e:
        print(f"{prog}: bad input: {e}")
        return 1
    width = max(map(len, result.num_rows))
    for name, rows in result.num_rows.items():
        print(f"{name:<{width}}  {rows:>10,} rows  {result.paths.get(name, '(empty: not cached)')}")
    if result.skipped:
        print("skipped: " + ", ".join(f"{n:,} ({why})" for why, n in result.skipped.items()))
    print(f'load it with: datasets.load_dataset("{REPO_ID}"[, "<config>"], split="train")')
    return 0
