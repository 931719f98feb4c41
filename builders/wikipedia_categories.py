"""Wikipedia categories: every category's name with its subcategory and page counts, and the topic filter of
LaMini-LM (SPEC 2): keep a category whose name has fewer than three words, more than 10 subcategories and more
than 50 pages (2.2M categories -> ~3.5K topics for topic-guided generation).

Configs: ``all`` (every category) and ``topics`` (the filter; thresholds are config fields).

Example:
    >>> from lamini_lm.builders.wikipedia_categories import WikipediaCategories
    >>> builder = WikipediaCategories(config_name="topics")  # reads the enwiki category table dump
    >>> builder.download_and_prepare()  # doctest: +SKIP
    >>> topics = builder.as_dataset(split="train")["name"]  # doctest: +SKIP
    >>> # local: the .sql(.gz) dump, or .jsonl/.csv/.parquet with name, subcategories, pages
    >>> WikipediaCategories(config_name="topics", data_files="enwiki-latest-category.sql.gz")  # doctest: +SKIP
"""

from __future__ import annotations

import gzip
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import datasets

from lamini_lm.paper import TOPIC_RULE, TopicRule, is_paper_topic

from ._base import SourceBuilder
from ._io import DataFileError, field_value, iter_records, open_source

__all__ = ["CATEGORY_DUMP_URL", "TopicFilterConfig", "WikipediaCategories", "is_topic"]

# MediaWiki's `category` table (cat_id, cat_title, cat_pages, cat_subcats, cat_files) for English Wikipedia.
CATEGORY_DUMP_URL = "https://dumps.wikimedia.org/enwiki/latest/enwiki-latest-category.sql.gz"

# One row of an INSERT statement: (id,'title',pages,subcats,files); titles escape quotes with backslashes.
_ROW = re.compile(r"\((\d+),'((?:[^'\\]|\\.)*)',(-?\d+),(-?\d+),(-?\d+)\)")
_UNESCAPE = re.compile(r"\\(.)")


@dataclass
class TopicFilterConfig(datasets.BuilderConfig):
    """Args:
    filter_topics: apply the paper's topic filter (:data:`lamini_lm.paper.TOPIC_RULE`); the thresholds below are
        the paper's, all strict.
    words_below: keep names of fewer than this many words (the paper: fewer than three).
    subcategories_above: keep categories with more than this many subcategories (the paper: more than 10).
    pages_above: keep categories with more than this many pages (the paper: more than 50).
    """

    filter_topics: bool = False
    words_below: int = TOPIC_RULE.words_below
    subcategories_above: int = TOPIC_RULE.subcategories_above
    pages_above: int = TOPIC_RULE.pages_above

    @property
    def rule(self) -> TopicRule:
        return TopicRule(self.words_below, self.subcategories_above, self.pages_above)


def is_topic(name: str, subcategories: int, pages: int, config: TopicFilterConfig | None = None) -> bool:
    """LaMini-LM's topic filter (:func:`lamini_lm.paper.is_paper_topic`), with ``config``'s thresholds if given."""
    return is_paper_topic(name, subcategories, pages, config.rule if config is not None else TOPIC_RULE)


class WikipediaCategories(SourceBuilder):
    VERSION = datasets.Version("1.0.0")
    CARD = "wikipedia_categories"
    HOMEPAGE = "https://dumps.wikimedia.org/enwiki/latest/"
    LICENSE = "cc-by-sa-4.0"
    BUILDER_CONFIG_CLASS = TopicFilterConfig
    BUILDER_CONFIGS = [
        TopicFilterConfig(name="all", version=VERSION, description="every category"),
        TopicFilterConfig(name="topics", version=VERSION, filter_topics=True, description="the paper's filter"),
    ]
    DEFAULT_CONFIG_NAME = "topics"

    def _features(self) -> datasets.Features:
        return datasets.Features(
            {
                "name": datasets.Value("string"),
                "subcategories": datasets.Value("int64"),
                "pages": datasets.Value("int64"),
            }
        )

    def _default_files(self) -> list[str]:
        return [CATEGORY_DUMP_URL]

    def _examples(self, path: str) -> Iterator[dict[str, Any]]:
        rows = self._sql_rows(path) if ".sql" in str(path).lower() else self._table_rows(path)
        for row in rows:
            if not self.config.filter_topics or is_topic(row["name"], row["subcategories"], row["pages"], self.config):
                yield row

    @staticmethod
    def _sql_rows(path: str) -> Iterator[dict[str, Any]]:
        if str(path).endswith(".gz"):
            f = gzip.open(open_source(path, "rb"), "rt", encoding="utf-8", errors="replace")
        else:
            f = open_source(path)
        with f:
            for line in f:
                if not line.startswith("INSERT INTO"):
                    continue
                for m in _ROW.finditer(line):
                    title = _UNESCAPE.sub(r"\1", m.group(2)).replace("_", " ")
                    yield {"name": title, "subcategories": int(m.group(4)), "pages": int(m.group(3))}

    @staticmethod
    def _table_rows(path: str) -> Iterator[dict[str, Any]]:
        for line, row in iter_records(path):
            name = field_value(row, "name", path, line)
            counts = {}
            for key in ("subcategories", "pages"):
                value = field_value(row, key, path, line, (int, str))
                try:  # CSV cells arrive as text
                    counts[key] = int(value)
                except ValueError:
                    raise DataFileError(path, line, key, f"expected an integer, got {value!r:.60}") from None
            yield {"name": name.replace("_", " "), **counts}
