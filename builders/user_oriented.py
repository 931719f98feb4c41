"""The user-oriented instruction set the rubric judge rates answers on.

By default the public Self-Instruct set (252 instructions motivated by real applications, one instance each; the
LaMini-LM paper's human evaluation used 114 of them); any local JSONL/JSON file with the same fields works too.
Rows have ``id``, ``motivation_app``, ``instruction``, ``input`` (may be empty), ``output`` (a reference answer)
and ``prompt``: what the student is asked (the instruction, then the input after a blank line when there is one:
:func:`lamini_lm.records.join_input`, the same join Alpaca's rows get in the training data).

Accepted rows: Self-Instruct's ``{"id", "motivation_app", "instruction", "instances": [{"input", "output"}]}``
(the first instance is used) or flat ``{"instruction", "input"?, "output"?, "id"?, "motivation_app"?}``.

Example:
    >>> from lamini_lm.builders.user_oriented import load_user_oriented
    >>> ds = load_user_oriented("my_instructions.jsonl")  # doctest: +SKIP
    >>> ds[0]["prompt"]  # doctest: +SKIP
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from typing import Any

import datasets
from datasets.builder import Key

from lamini_lm.errors import OfflineError
from lamini_lm.records import join_input

from ._io import card_description, iter_records

__all__ = ["DEFAULT_URL", "UserOriented", "load_user_oriented", "user_prompt"]

DEFAULT_URL = (
    "https://raw.githubusercontent.com/yizhongw/self-instruct/main/human_eval/user_oriented_instructions.jsonl"
)

FEATURES = datasets.Features(
    {
        "id": datasets.Value("string"),
        "motivation_app": datasets.Value("string"),
        "instruction": datasets.Value("string"),
        "input": datasets.Value("string"),
        "output": datasets.Value("string"),
        "prompt": datasets.Value("string"),
    }
)


def user_prompt(instruction: str, input_text: str = "") -> str:
    """What the student is asked: :func:`lamini_lm.records.join_input` of the stripped instruction and its input
    (the instruction, and the input after a blank line when there is one)."""
    return join_input(instruction.strip(), input_text)


class UserOriented(datasets.GeneratorBasedBuilder):
    """``datasets`` builder of the user-oriented instructions: one ``test`` split."""

    VERSION = datasets.Version("1.0.0")
    BUILDER_CONFIGS = [datasets.BuilderConfig(name="default", version=VERSION, description="one instance each")]

    def _info(self) -> datasets.DatasetInfo:
        return datasets.DatasetInfo(
            description=card_description("user_oriented"),
            features=FEATURES,
            homepage="https://github.com/yizhongw/self-instruct/tree/main/human_eval",
            license="apache-2.0",
        )

    def _split_generators(self, dl_manager):
        if self.config.data_files:
            files = [f for split_files in self.config.data_files.values() for f in split_files]
        else:
            files = [dl_manager.download(DEFAULT_URL)]
        return [datasets.SplitGenerator(name=datasets.Split.TEST, gen_kwargs={"files": files})]

    def _generate_examples(self, files: Sequence[str]) -> Iterator[tuple[Key, dict[str, Any]]]:
        for file_idx, path in enumerate(files):
            # ids and messages count rows (blank lines skipped), not the file's lines
            for row_idx, (_, row) in enumerate(iter_records(path)):
                yield Key(file_idx, row_idx), _example(row, path, row_idx + 1, file_idx)


def _example(row: dict[str, Any], path: str, row_no: int, file_idx: int) -> dict[str, str]:
    where = f"{path}, row {row_no}"  # iter_records already rejected rows that are not objects
    instruction = row.get("instruction")
    if not isinstance(instruction, str) or not instruction.strip():
        raise ValueError(f"{where}: field 'instruction' is missing or empty")
    instance = row
    if "instances" in row:
        instances = row["instances"]
        if not isinstance(instances, list) or not instances or not isinstance(instances[0], dict):
            raise ValueError(f"{where}: field 'instances' must be a non-empty list of {{input, output}} objects")
        instance = instances[0]
    input_text, output = instance.get("input") or "", instance.get("output") or ""
    for name, value in (("input", input_text), ("output", output)):
        if not isinstance(value, str):
            raise ValueError(f"{where}: field {name!r} must be a string, got {type(value).__name__}")
    prefix = "" if file_idx == 0 else f"{file_idx}_"
    return {
        "id": str(row.get("id") or f"{prefix}{row_no - 1}"),
        "motivation_app": str(row.get("motivation_app") or ""),
        "instruction": instruction.strip(),
        "input": input_text,
        "output": output,
        "prompt": user_prompt(instruction, input_text),
    }


def load_user_oriented(
    data_files: str | os.PathLike | Sequence[str | os.PathLike] | None = None, cache_dir: str | None = None
) -> datasets.Dataset:
    """The ``test`` split of :class:`UserOriented`: ``data_files`` when given, else the public 252 (a download)."""
    if data_files is not None:
        data_files = [str(data_files)] if isinstance(data_files, (str, os.PathLike)) else [str(f) for f in data_files]
        for f in data_files:
            if not os.path.exists(f):
                raise FileNotFoundError(f"user-oriented instructions file not found: {f}")
    elif datasets.config.HF_HUB_OFFLINE or os.environ.get("HF_DATASETS_OFFLINE") == "1":
        raise OfflineError(
            f"offline (HF_HUB_OFFLINE/HF_DATASETS_OFFLINE): the public user-oriented instructions come from "
            f"{DEFAULT_URL}; pass a local copy with --instructions FILE.jsonl"
        )
    builder = UserOriented(data_files=data_files, cache_dir=cache_dir)
    try:
        builder.download_and_prepare()
    except ConnectionError as e:
        raise OfflineError(
            f"cannot download the user-oriented instructions ({type(e).__name__}); pass a local copy with "
            "--instructions FILE.jsonl"
        ) from None
    except datasets.exceptions.DatasetGenerationError as e:
        # datasets hides a bad row behind a generic message: surface the one naming file, row and field.
        if isinstance(e.__cause__, ValueError):
            raise e.__cause__ from None
        raise
    return builder.as_dataset(split="test")
