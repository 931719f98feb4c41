"""Data for a recipe: load instruction/response rows, hold out an eval split, tokenise per family, pad per batch.

Each family's record (:mod:`lamini_lm.families`) tokenises a row and masks its labels. Truncation never cuts the
response's EOS silently: a response that is too long is cut and EOS appended again, an instruction that is too
long loses its middle-to-end text while the wrapper's tail (Alpaca's ``### Response:``) stays, and every cut is
counted and logged.

Example:
    >>> from lamini_lm.train.data import tokenize_causal  # doctest: +SKIP
    >>> row = tokenize_causal(tokenizer, "Name a fruit.", "Apple.", max_length=512)  # doctest: +SKIP
    >>> row["labels"][: row["prompt_length"]] == [-100] * row["prompt_length"]  # doctest: +SKIP
    True
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from lamini_lm.errors import DataError, UsageError
from lamini_lm.families import IGNORE_INDEX, Family, get_family, lengths, tokenizer_adds_bos

__all__ = [
    "DataCollatorForRecipes",
    "load_instruction_splits",
    "tokenize_causal",
    "tokenize_dataset",
    "tokenize_seq2seq",
]

logger = logging.getLogger(__name__)

_FILE_FORMATS = {".parquet": "parquet", ".jsonl": "json", ".json": "json", ".csv": "csv"}


def _load_any(name: str, config_name: str | None):
    """A Dataset or DatasetDict from a local file or folder, or a Hub id; missing paths and an unreachable Hub
    are one line (``lamini_lm.sources``), a broken JSONL names its file and line (``lamini_lm.io.load_table``)."""
    import datasets

    from lamini_lm.io import load_table
    from lamini_lm.sources import check_source

    kind = check_source(name, "dataset", "--dataset_name")
    path = Path(name).expanduser()
    if kind == "path" and path.is_dir() and any((path / f).exists() for f in ("dataset_dict.json", "state.json")):
        return datasets.load_from_disk(str(path))
    if kind == "path" and path.is_file():
        if path.suffix not in _FILE_FORMATS:
            raise DataError(f"--dataset_name {name}: unsupported format; use .jsonl, .json, .csv or .parquet")
        try:
            return load_table(path)
        except ValueError as e:  # io reports the file and line (a broken JSONL row, no rows)
            raise DataError(str(e)) from None
    try:
        return datasets.load_dataset(str(path) if kind == "path" else name, config_name)
    except (ConnectionError, FileNotFoundError) as e:
        where = "that folder" if kind == "path" else "the Hub or the cache"
        raise DataError(f"--dataset_name {name}: could not be loaded from {where}: {str(e).splitlines()[0]}") from None


def load_instruction_splits(cfg) -> tuple[Any, Any | None]:
    """(train, eval) datasets for ``cfg`` (a recipe config): eval is the ``eval_split`` if the data has one,
    else ``eval_split_size`` rows carved off train with the run's seed, else None."""
    import datasets

    data = _load_any(cfg.dataset_name, cfg.dataset_config_name)
    if isinstance(data, datasets.Dataset):
        data = datasets.DatasetDict({cfg.train_split: data})
    if cfg.train_split not in data:
        raise UsageError(f"{cfg.dataset_name}: no split {cfg.train_split!r}; it has {sorted(data)}")
    train = data[cfg.train_split]
    missing = [c for c in (cfg.instruction_column, cfg.response_column) if c not in train.column_names]
    if missing and "messages" not in train.column_names:  # a `messages` column: dialogues (tokenize_dataset)
        raise UsageError(
            f"{cfg.dataset_name}: missing column(s) {missing}; it has {train.column_names} "
            "(set instruction_column/response_column)"
        )
    evals = data[cfg.eval_split] if cfg.eval_split in data else None
    if evals is None and cfg.eval_split_size > 0 and len(train) > 1:
        size = int(cfg.eval_split_size) if cfg.eval_split_size >= 1 else cfg.eval_split_size
        parts = train.train_test_split(test_size=size, seed=cfg.seed, shuffle=True)
        train, evals = parts["train"], parts["test"]
    if cfg.max_train_samples is not None:
        train = train.select(range(min(cfg.max_train_samples, len(train))))
    if evals is not None and cfg.max_eval_samples is not None:
        evals = evals.select(range(min(cfg.max_eval_samples, len(evals))))
    return train, evals


def tokenize_seq2seq(tokenizer, instruction: str, response: str, max_source_length: int, max_target_length: int):
    """An encoder-decoder row of the ``seq2seq`` family: the raw instruction as input, the response as labels, each
    ending in EOS (:func:`lamini_lm.families.tokenize_encoder_decoder`)."""
    cfg = lengths(max_source_length=max_source_length, max_target_length=max_target_length)
    return get_family("seq2seq").tokenize(tokenizer, instruction, response, cfg)


def tokenize_causal(tokenizer, instruction: str, response: str, max_length: int, *, adds_bos: bool | None = None):
    """A decoder-only row of the ``causal`` family: Alpaca-wrapped prompt + response + EOS, labels -100 on every
    prompt token (:func:`lamini_lm.families.decoder_only_row` says how a long row is cut)."""
    cfg = lengths(max_length=max_length)
    return get_family("causal").tokenize(tokenizer, instruction, response, cfg, adds_bos=adds_bos)


def tokenize_dataset(dataset, tokenizer, family: str | Family, cfg, desc: str = "tokenise"):
    """Tokenise ``dataset`` with ``family``'s tokenisation (a registered name or a Family); log how many
    prompts/responses were cut."""
    family = get_family(family)
    icol, rcol = cfg.instruction_column, cfg.response_column
    adds_bos = tokenizer_adds_bos(tokenizer)  # once per dataset, not once per row

    def dialogues(batch):  # a `messages` column: the family's dialogue tokeniser (one or more rows per dialogue)
        rows = [r for m in batch["messages"] for r in family.tokenize_dialogue(tokenizer, m, cfg, adds_bos=adds_bos)]
        return {k: [r[k] for r in rows] for k in rows[0]} if rows else {}

    def fn(batch):
        rows = []
        for ins, resp in zip(batch[icol], batch[rcol]):
            if not isinstance(ins, str) or not isinstance(resp, str):
                raise DataError(f"{cfg.dataset_name}: {icol!r}/{rcol!r} must be strings, got {ins!r}, {resp!r}")
            rows.append(family.tokenize(tokenizer, ins, resp, cfg, adds_bos=adds_bos))
        return {k: [r[k] for r in rows] for k in rows[0]} if rows else {}

    out = dataset.map(
        dialogues if "messages" in dataset.column_names else fn,
        batched=True,
        remove_columns=dataset.column_names,
        num_proc=cfg.preprocessing_num_workers,
        desc=desc,
    )
    counts = {"prompt": sum(out["prompt_truncated"]), "response": sum(out["response_truncated"]), "rows": len(out)}
    if counts["prompt"] or counts["response"]:
        logger.warning(
            "%s: truncated %d instruction(s) and %d response(s) of %d rows (EOS kept on every response)",
            desc,
            counts["prompt"],
            counts["response"],
            counts["rows"],
        )
    out = out.remove_columns([c for c in ("prompt_truncated", "response_truncated", "prompt_length") if c in out])
    return out


class DataCollatorForRecipes:
    """Dynamic padding for the built-in families (their ``Family.collator``): pads ``input_ids``/``attention_mask``
    with the tokenizer and ``labels`` with -100 to the longest row of the batch; drops the ``length`` column used
    for grouping."""

    def __init__(self, tokenizer, model=None, pad_to_multiple_of: int | None = None):
        from transformers import DataCollatorForSeq2Seq

        self._inner = DataCollatorForSeq2Seq(
            tokenizer, model=model, label_pad_token_id=IGNORE_INDEX, pad_to_multiple_of=pad_to_multiple_of
        )

    def __call__(self, features: list[dict[str, Any]]):
        keep = ("input_ids", "attention_mask", "labels")
        return self._inner([{k: f[k] for k in keep if k in f} for f in features])
