"""The shape every source builder shares: files in (the user's local files or the public default), one ``train``
split, rows out through the builder's Arrow writer. A subclass declares its configs and features and writes
``_examples(path)``; the three ``datasets`` methods live here."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import datasets
from datasets.builder import Key

from ._io import card_description, source_files

__all__ = ["SourceBuilder"]


class SourceBuilder(datasets.GeneratorBasedBuilder):
    """Base of the source builders: ``_info`` from ``FEATURES`` and the card, ``_split_generators`` from the
    user's ``data_files``/``data_dir`` or :meth:`_default_files`, ``_generate_examples`` over :meth:`_examples`."""

    CARD: str = ""  # name of the card template builders/<CARD>.md
    HOMEPAGE: str = ""
    LICENSE: str = ""

    def _features(self) -> datasets.Features:
        raise NotImplementedError

    def _info(self) -> datasets.DatasetInfo:
        return datasets.DatasetInfo(
            description=card_description(self.CARD),
            features=self._features(),
            homepage=self.HOMEPAGE,
            license=self.LICENSE,
        )

    def _default_files(self) -> list[str]:
        """URLs or ``hf://`` paths of the public source, used when the user gives no local files."""
        raise NotImplementedError

    def _split_generators(self, dl_manager):
        # The default source is only resolved (a Hub listing) when no local files were given.
        has_local = bool(self.config.data_files or self.config.data_dir)
        files = source_files(self.config, dl_manager, None if has_local else self._default_files())
        return [datasets.SplitGenerator(name=datasets.Split.TRAIN, gen_kwargs={"files": files})]

    def _generate_shards(self, files):
        yield from files

    def _generate_examples(self, files: list[str]) -> Iterator[tuple[Key, dict[str, Any]]]:
        for file_idx, path in enumerate(files):
            for row_idx, example in enumerate(self._examples(path)):
                yield Key(file_idx, row_idx), example

    def _examples(self, path: str) -> Iterator[dict[str, Any]]:
        raise NotImplementedError
