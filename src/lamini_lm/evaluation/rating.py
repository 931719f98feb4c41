"""People rate answers A/B/C/D in the browser, as the paper's human evaluation did; agreement with the judge.

``lamini-lm rate ANSWERS...`` serves a local page (:mod:`lamini_lm.evaluation.rating_app`) over the answers that
``judge`` wrote (its folder, ``judgements.jsonl`` or ``answers.jsonl``) or any JSONL with ``id``, ``prompt`` and
``answer`` (optional ``instruction``/``input``, and ``model`` for a file holding several models). Each rater:

* enters a name once; every answer then comes one at a time: the instruction (with its input), one model's answer,
  the paper's four grade definitions verbatim (keys A/B/C/D rate and move on; arrows go back and forth);
* sees the answers in an order of their own (items shuffled, and each item's models shuffled, deterministically
  from the rater's name) and never a model's name: the page only ever receives a position in that order;
* has each rating saved as it is given in SQLite (:class:`RatingStore`): exactly one per rater x item x model,
  re-rating replaces; restarting the app resumes at the rater's first unrated answer.

``lamini-lm rate --export OUT`` writes the ratings as a ``datasets`` table (``OUT/ratings``), the paper's stacked
bars per model (``rubric.png``), agreement statistics (``agreement.json``) and a short Markdown report
(``report.md``) fit for a paper's appendix, with a ``lamini_lm.json`` manifest. Agreement:

* between raters: Cohen's kappa for each pair (plain and quadratic-weighted, the grades being ordered), and
  Krippendorff's alpha (nominal and ordinal) over all raters, which allows for raters who did not rate everything;
* between the judge and people: Cohen's kappa of the judge against each rater and against the people's consensus
  (the median grade of an answer's ratings; of two middle grades, the worse), with the confusion matrix.

Kappa is scikit-learn's ``cohen_kappa_score``; alpha is the ``krippendorff`` package (numpy only).

Example:
    >>> from lamini_lm.evaluation.rating import cohen_kappa
    >>> round(cohen_kappa(list("AABBCD"), list("ABBBCC")), 4)  # (4/6 - 10/36) / (1 - 10/36) = 7/13
    0.5385
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as _dt
import hashlib
import json
import logging
import math
import os
import random
import re
import sqlite3
import unicodedata
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from lamini_lm.errors import DataError, DataFileError, UsageError
from lamini_lm.evaluation.judge import GRADE_DEFINITIONS, GRADES

__all__ = [
    "RateConfig",
    "RateItem",
    "RatingStore",
    "agreement",
    "cohen_kappa",
    "consensus_grade",
    "krippendorff_alpha",
    "landis_koch",
    "load_answers",
    "main",
    "normalise_rater",
    "rater_order",
    "render_report",
    "run_rate",
    "run_rate_export",
]

logger = logging.getLogger(__name__)

TOKEN_ENV = "LAMINI_RATE_TOKEN"
MAX_RATER_CHARS = 64
_LOOPBACK = {"127.0.0.1", "localhost", "::1"}


# ---------------------------------------------------------------------------------------------------- the answers


@dataclasses.dataclass(frozen=True)
class RateItem:
    """One model's answer to one instruction: what a rater sees (``instruction``/``input`` when the file has them,
    else ``prompt``), plus the judge's grade when the file came from ``lamini-lm judge``."""

    model: str
    item: str
    prompt: str
    answer: str
    instruction: str | None = None
    input: str | None = None
    judge_grade: str | None = None
    judge: str | None = None


def _judge_folder_facts(folder: Path) -> tuple[str | None, str | None]:
    """(model, judge model) recorded by ``lamini-lm judge`` in ``folder`` (its manifest, else rubric.json)."""
    from lamini_lm.artifacts import read_manifest

    try:
        manifest = read_manifest(folder)
    except DataError:
        manifest = None
    if manifest is not None and manifest.stage == "judge":
        judge = manifest.teacher_models[0] if manifest.teacher_models else None
        return manifest.extra.get("model"), judge
    rubric = folder / "rubric.json"
    if rubric.is_file():
        try:
            data = json.loads(rubric.read_text(encoding="utf-8"))
            return data.get("model"), data.get("judge")
        except (json.JSONDecodeError, AttributeError):
            pass
    return None, None


def _answer_file(path: Path) -> Path:
    if path.is_dir():
        for name in ("judgements.jsonl", "answers.jsonl"):
            if (path / name).is_file():
                return path / name
        raise UsageError(f"{path}: a folder without judgements.jsonl or answers.jsonl (give a judge output folder)")
    if not path.exists():
        raise FileNotFoundError(f"answers file not found: {path}")
    return path


def load_answers(path: str | os.PathLike, model: str | None = None, limit: int | None = None) -> list[RateItem]:
    """The answers in ``path`` (a judge folder, ``judgements.jsonl``, ``answers.jsonl`` or any JSONL/JSON/parquet
    with ``id``, ``prompt``, ``answer``). The model's name is ``model``, else the row's ``model`` field, else the
    judge's manifest, else the file's (or, for ``answers``/``judgements``, its folder's) name."""
    from lamini_lm.io import field_value, iter_records

    file = _answer_file(Path(path))
    folder_model, judge = _judge_folder_facts(file.parent)
    default = model or folder_model or (file.parent.name if file.stem in ("answers", "judgements") else file.stem)
    if default == "judge" and file.parent.parent.name:  # eval/<name>/judge
        default = file.parent.parent.name
    items: list[RateItem] = []
    seen: dict[tuple[str, str], int] = {}
    for line, row in iter_records(str(file)):
        name = model or row.get("model") or default
        if not isinstance(name, str) or not name.strip():
            raise DataFileError(str(file), line, "model", "must be a non-empty string")
        item = row.get("id", line - 1)
        if not isinstance(item, (str, int)) or isinstance(item, bool):
            raise DataFileError(str(file), line, "id", f"expected a string or integer, got {item!r:.60}")
        key = (name, str(item))
        if key in seen:
            raise DataFileError(str(file), line, "id", f"{item!r} repeats line {seen[key]} for model {name!r}")
        seen[key] = line
        grade = row.get("grade") if "grade" in row else None
        if grade is not None and grade not in GRADES:
            raise DataFileError(str(file), line, "grade", f"expected one of {list(GRADES)} or null, got {grade!r:.20}")
        items.append(
            RateItem(
                model=name.strip(),
                item=str(item),
                prompt=field_value(row, "prompt", str(file), line),
                answer=field_value(row, "answer", str(file), line),
                instruction=field_value(row, "instruction", str(file), line, optional=True)
                if "instruction" in row
                else None,
                input=field_value(row, "input", str(file), line, optional=True) if "input" in row else None,
                judge_grade=grade,
                judge=(row.get("judge") or judge or "judge") if "grade" in row else None,
            )
        )
        if limit and len(items) >= limit:
            break
    if not items:
        raise DataError(f"{file}: no answers in it")
    return items


# ---------------------------------------------------------------------------------------------------- the store

_SCHEMA = """
CREATE TABLE IF NOT EXISTS answers (
    model TEXT NOT NULL, item TEXT NOT NULL, prompt TEXT NOT NULL, answer TEXT NOT NULL,
    instruction TEXT, input TEXT, judge_grade TEXT, judge TEXT,
    PRIMARY KEY (model, item));
CREATE TABLE IF NOT EXISTS ratings (
    rater TEXT NOT NULL, item TEXT NOT NULL, model TEXT NOT NULL,
    grade TEXT NOT NULL CHECK (grade IN ('A', 'B', 'C', 'D')), rated_at TEXT NOT NULL,
    PRIMARY KEY (rater, item, model),
    FOREIGN KEY (model, item) REFERENCES answers (model, item));
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
INSERT OR IGNORE INTO meta VALUES ('schema', 'lamini-lm rate 1');
"""


def normalise_rater(name: Any) -> str:
    """A rater's name as stored: stripped, inner whitespace collapsed; 1-64 printable characters, else UsageError."""
    if not isinstance(name, str):
        raise UsageError("rater name must be text")
    name = " ".join(name.split())
    if not name:
        raise UsageError("rater name is empty; enter your name")
    if len(name) > MAX_RATER_CHARS:
        raise UsageError(f"rater name is longer than {MAX_RATER_CHARS} characters")
    if any(unicodedata.category(ch).startswith("C") for ch in name):
        raise UsageError("rater name holds control characters")
    return name


class RatingStore:
    """The SQLite file of answers and ratings: exactly one rating per rater x item x model (re-rating replaces it),
    each committed as it is given. Safe to use from several threads (one connection per call).

    Example:
        >>> store = RatingStore(":memory:")  # doctest: +SKIP
    """

    def __init__(self, path: str | os.PathLike, create: bool = True):
        self.path = Path(path)
        if not create and not self.path.is_file():
            raise FileNotFoundError(f"ratings database not found: {self.path} (rate first: lamini-lm rate ANSWERS)")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            with self._connect() as db:
                db.executescript(_SCHEMA)
                schema = db.execute("SELECT value FROM meta WHERE key = 'schema'").fetchone()
        except sqlite3.DatabaseError as e:
            raise DataError(f"{self.path}: not a ratings database ({e})") from None
        else:
            if schema is None or schema[0] != "lamini-lm rate 1":
                raise DataError(f"{self.path}: not a lamini-lm ratings database (schema {schema})")

    @contextlib.contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        db = sqlite3.connect(self.path, timeout=30, isolation_level=None)  # autocommit: each rating is on disk
        try:
            db.execute("PRAGMA foreign_keys = ON")
            db.execute("PRAGMA journal_mode = WAL")
            yield db
        finally:
            db.close()

    def add_items(self, items: Iterable[RateItem]) -> int:
        """Add answers (a restart re-adds the same ones: kept as they are); return how many were new. A different
        answer or prompt under a known model and item is refused: its ratings would no longer be about it."""
        new = 0
        with self._connect() as db:
            db.execute("BEGIN IMMEDIATE")
            try:
                for it in items:
                    old = db.execute(
                        "SELECT prompt, answer FROM answers WHERE model = ? AND item = ?", (it.model, it.item)
                    ).fetchone()
                    if old is None:
                        db.execute(
                            "INSERT INTO answers VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                            (
                                it.model,
                                it.item,
                                it.prompt,
                                it.answer,
                                it.instruction,
                                it.input,
                                it.judge_grade,
                                it.judge,
                            ),
                        )
                        new += 1
                    elif old != (it.prompt, it.answer):
                        raise DataError(
                            f"{self.path} holds a different {'prompt' if old[0] != it.prompt else 'answer'} for "
                            f"model {it.model!r}, item {it.item!r}; rate these answers with another --db"
                        )
                    elif it.judge_grade is not None:
                        db.execute(
                            "UPDATE answers SET judge_grade = ?, judge = ? WHERE model = ? AND item = ?",
                            (it.judge_grade, it.judge, it.model, it.item),
                        )
                prompts = db.execute(
                    "SELECT item, COUNT(DISTINCT prompt) FROM answers GROUP BY item HAVING COUNT(DISTINCT prompt) > 1"
                ).fetchone()
                if prompts:
                    raise DataError(
                        f"item {prompts[0]!r} has {prompts[1]} different prompts across models; the answer files "
                        "must share ids for the same instruction"
                    )
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise
        return new

    def units(self) -> list[tuple[str, str]]:
        """Every (item, model) there is to rate."""
        with self._connect() as db:
            return [tuple(r) for r in db.execute("SELECT item, model FROM answers ORDER BY item, model")]

    def item(self, item: str, model: str) -> RateItem:
        with self._connect() as db:
            row = db.execute(
                "SELECT model, item, prompt, answer, instruction, input, judge_grade, judge FROM answers "
                "WHERE item = ? AND model = ?",
                (item, model),
            ).fetchone()
        if row is None:
            raise KeyError((item, model))
        return RateItem(*row)

    def rate(self, rater: str, item: str, model: str, grade: str) -> None:
        """Save ``rater``'s grade of ``model``'s answer to ``item`` now, replacing an earlier one."""
        rater = normalise_rater(rater)
        if grade not in GRADES:
            raise UsageError(f"grade must be one of {list(GRADES)}, got {grade!r:.20}")
        now = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
        with self._connect() as db:
            try:
                db.execute(
                    "INSERT INTO ratings VALUES (?, ?, ?, ?, ?) ON CONFLICT (rater, item, model) "
                    "DO UPDATE SET grade = excluded.grade, rated_at = excluded.rated_at",
                    (rater, item, model, grade, now),
                )
            except sqlite3.IntegrityError:
                raise UsageError(f"no answer of model {model!r} to item {item!r} in {self.path}") from None

    def grades(self, rater: str) -> dict[tuple[str, str], str]:
        """``rater``'s grades by (item, model)."""
        with self._connect() as db:
            rows = db.execute("SELECT item, model, grade FROM ratings WHERE rater = ?", (rater,))
            return {(i, m): g for i, m, g in rows}

    def rows(self) -> list[dict[str, Any]]:
        """Every rating with its answer and the judge's grade, ordered by model, item, rater."""
        with self._connect() as db:
            db.row_factory = sqlite3.Row
            rows = db.execute(
                "SELECT r.rater, r.item, r.model, r.grade, a.judge_grade, a.judge, a.prompt, a.answer, r.rated_at "
                "FROM ratings r JOIN answers a USING (model, item) ORDER BY r.model, r.item, r.rater"
            )
            return [dict(r) for r in rows]

    def raters(self) -> list[str]:
        with self._connect() as db:
            return [r for (r,) in db.execute("SELECT DISTINCT rater FROM ratings ORDER BY rater")]


def rater_order(rater: str, units: Iterable[tuple[str, str]]) -> list[tuple[str, str]]:
    """The order ``rater`` sees the (item, model) answers in: items shuffled, then each item's models shuffled,
    from a seed that is the rater's name (the same name, the same order; another name, another order). The input's
    order does not matter."""
    seed = int.from_bytes(hashlib.sha256(f"lamini-lm rate\0{rater}".encode()).digest()[:8], "big")
    rng = random.Random(seed)
    by_item: dict[str, list[str]] = {}
    for item, model in sorted(set(units)):
        by_item.setdefault(item, []).append(model)
    items = list(by_item)
    rng.shuffle(items)
    order = []
    for item in items:
        models = by_item[item]
        rng.shuffle(models)
        order += [(item, m) for m in models]
    return order


# ---------------------------------------------------------------------------------------------------- agreement


def _extra(module: str, package: str):
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError:
        raise UsageError(f"agreement statistics need {package}: pip install 'lamini-lm[rate]'") from None


def _undefined(value: float) -> float | None:
    return None if value is None or math.isnan(value) else float(value)


def cohen_kappa(a: Sequence[str], b: Sequence[str], weights: str | None = None) -> float | None:
    """Cohen's kappa of two raters' grades of the same answers (``weights="quadratic"`` for the weighted one);
    ``None`` when undefined (both gave one and the same grade throughout, so chance agreement is 1)."""
    import warnings

    cohen_kappa_score = _extra("sklearn.metrics", "scikit-learn").cohen_kappa_score

    if len(a) != len(b):
        raise ValueError(f"{len(a)} grades against {len(b)}")
    if not a:
        return None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # sklearn warns when kappa is undefined; None says so here
        return _undefined(cohen_kappa_score(list(a), list(b), labels=list(GRADES), weights=weights))


def krippendorff_alpha(units: Mapping[Any, Mapping[str, str]], level: str = "nominal") -> float | None:
    """Krippendorff's alpha over ``{unit: {rater: grade}}`` (missing ratings allowed), ``nominal`` or ``ordinal``
    (A < B < C < D); ``None`` when no answer has two ratings or all ratings are one grade."""
    import warnings

    import numpy as np

    krippendorff = _extra("krippendorff", "krippendorff")

    raters = sorted({r for g in units.values() for r in g})
    keys = [u for u, g in units.items() if len(g) >= 2]
    if len(raters) < 2 or not keys:
        return None
    data = np.full((len(raters), len(keys)), np.nan)
    for j, u in enumerate(keys):
        for r, g in units[u].items():
            data[raters.index(r), j] = GRADES.index(g)
    if len(np.unique(data[~np.isnan(data)])) < 2:
        return None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return _undefined(
            krippendorff.alpha(reliability_data=data, level_of_measurement=level, value_domain=range(len(GRADES)))
        )


def consensus_grade(grades: Sequence[str]) -> str:
    """The people's grade of one answer: the median of its ratings; of two middle grades, the worse."""
    ranked = sorted(GRADES.index(g) for g in grades)
    return GRADES[ranked[len(ranked) // 2]]


def landis_koch(value: float | None) -> str:
    """Landis and Koch's (1977) words for a kappa: poor < 0 <= slight <= .20 < fair <= .40 < moderate <= .60 <
    substantial <= .80 < almost perfect."""
    if value is None:
        return "undefined"
    for bound, word in ((0, "poor"), (0.2, "slight"), (0.4, "fair"), (0.6, "moderate"), (0.8, "substantial")):
        if value < bound or (bound and value <= bound):
            return word
    return "almost perfect"


def _pair_stats(a: Sequence[str], b: Sequence[str]) -> dict[str, Any]:
    n = len(a)
    return {
        "n": n,
        "agreement": sum(x == y for x, y in zip(a, b)) / n if n else None,
        "within_one": sum(abs(GRADES.index(x) - GRADES.index(y)) <= 1 for x, y in zip(a, b)) / n if n else None,
        "kappa": cohen_kappa(a, b),
        "kappa_quadratic": cohen_kappa(a, b, weights="quadratic"),
    }


def agreement(rows: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Agreement statistics of rating rows (``rater``, ``item``, ``model``, ``grade``, optional ``judge_grade``):
    rater pairs (Cohen's kappa), all raters (Krippendorff's alpha) and the judge against people (kappa per rater
    and against the consensus, confusion matrix with the judge's grades as rows)."""
    units: dict[tuple[str, str], dict[str, str]] = {}
    judge_grades: dict[tuple[str, str], str | None] = {}
    for r in rows:
        unit = (r["item"], r["model"])
        units.setdefault(unit, {})[r["rater"]] = r["grade"]
        judge_grades[unit] = r.get("judge_grade")
    raters = sorted({r for g in units.values() for r in g})
    pairs = []
    for i, r1 in enumerate(raters):
        for r2 in raters[i + 1 :]:
            common = [u for u, g in units.items() if r1 in g and r2 in g]
            if common:
                stats = _pair_stats([units[u][r1] for u in common], [units[u][r2] for u in common])
                pairs.append({"raters": [r1, r2], **stats})
    out: dict[str, Any] = {
        "raters": raters,
        "ratings": sum(len(g) for g in units.values()),
        "answers": len(units),
        "answers_rated_twice": sum(len(g) >= 2 for g in units.values()),
        "pairs": pairs,
        "alpha": {
            "nominal": krippendorff_alpha(units, "nominal"),
            "ordinal": krippendorff_alpha(units, "ordinal"),
        },
        "judge": None,
    }
    judged = [u for u in units if judge_grades.get(u) in GRADES]
    if judged:
        per_rater = []
        for rater in raters:
            mine = [u for u in judged if rater in units[u]]
            if mine:
                stats = _pair_stats([judge_grades[u] for u in mine], [units[u][rater] for u in mine])
                per_rater.append({"rater": rater, **stats})
        judge_side = [judge_grades[u] for u in judged]
        people = [consensus_grade(list(units[u].values())) for u in judged]
        matrix = [[0] * len(GRADES) for _ in GRADES]
        for j, p in zip(judge_side, people):
            matrix[GRADES.index(j)][GRADES.index(p)] += 1
        judges = sorted({r.get("judge") or "judge" for r in rows if r.get("judge_grade") in GRADES})
        out["judge"] = {
            "judge": ", ".join(judges),
            "per_rater": per_rater,
            "consensus": _pair_stats(judge_side, people),
            "confusion": {"rows": "judge", "columns": "people (consensus)", "labels": list(GRADES), "matrix": matrix},
            "answers_without_judge_grade": len(units) - len(judged),
        }
    return out


def _counts(rows: Sequence[Mapping[str, Any]]) -> dict[str, dict[str, int]]:
    counts: dict[str, dict[str, int]] = {}
    for r in rows:
        counts.setdefault(r["model"], {g: 0 for g in GRADES})[r["grade"]] += 1
    return counts


def _f(value: float | None, digits: int = 2) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.0f}%"


def render_report(stats: Mapping[str, Any], counts: Mapping[str, Mapping[str, int]]) -> str:
    """A short Markdown report of human ratings and agreement, fit for a paper's appendix."""
    n_items = stats.get("items")
    lines = [
        "# Human evaluation on the A-D rubric",
        "",
        f"{len(stats['raters'])} rater(s) gave {stats['ratings']} ratings to {stats['answers']} answers"
        + (f" of {len(counts)} model(s) to {n_items} instructions" if n_items else "")
        + ". Each answer was shown alone, with its instruction, the model's name hidden, in an order shuffled "
        "per rater, and graded on the rubric of the LaMini-LM paper:",
        "",
        *[f"- **{g}**: {d}{'.' if g == GRADES[-1] else ';'}" for g, d in GRADE_DEFINITIONS.items()],
        "",
        "## Grades per model",
        "",
        "| model | A | B | C | D | ratings |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for model, c in counts.items():
        total = sum(c.values()) or 1
        cells = [f"{c[g]} ({100 * c[g] / total:.0f}%)" for g in GRADES]
        lines.append(f"| {model} | " + " | ".join(cells) + f" | {sum(c.values())} |")
    lines += ["", "![grades per model](rubric.png)", "", "## Agreement between raters", ""]
    if stats["pairs"]:
        lines += [
            "| raters | answers | exact | within one grade | Cohen's kappa | weighted kappa (quadratic) |",
            "| --- | --- | --- | --- | --- | --- |",
        ]
        for p in stats["pairs"]:
            lines.append(
                f"| {p['raters'][0]} / {p['raters'][1]} | {p['n']} | {_pct(p['agreement'])} | {_pct(p['within_one'])}"
                f" | {_f(p['kappa'])} ({landis_koch(p['kappa'])}) | {_f(p['kappa_quadratic'])} |"
            )
        alpha = stats["alpha"]
        lines += [
            "",
            f"Krippendorff's alpha over all raters ({stats['answers_rated_twice']} answers rated at least twice): "
            f"{_f(alpha['nominal'])} nominal, {_f(alpha['ordinal'])} ordinal (A < B < C < D).",
        ]
    else:
        lines.append("No answer was rated by two people, so agreement between raters is not measured.")
    judge = stats.get("judge")
    lines += ["", "## The judge against people", ""]
    if judge:
        c = judge["consensus"]
        lines += [
            f"Judge: {judge['judge']}. Against the people's consensus (median grade; of two middle grades, the worse) "
            f"on {c['n']} answers: exact agreement {_pct(c['agreement'])}, within one grade {_pct(c['within_one'])}, "
            f"Cohen's kappa {_f(c['kappa'])} ({landis_koch(c['kappa'])}), quadratic-weighted kappa "
            f"{_f(c['kappa_quadratic'])}.",
            "",
            "| rater | answers | exact | Cohen's kappa | weighted kappa (quadratic) |",
            "| --- | --- | --- | --- | --- |",
        ]
        for p in judge["per_rater"]:
            lines.append(
                f"| {p['rater']} | {p['n']} | {_pct(p['agreement'])} | {_f(p['kappa'])} ({landis_koch(p['kappa'])}) "
                f"| {_f(p['kappa_quadratic'])} |"
            )
        lines += ["", "Confusion matrix (rows: the judge; columns: the people's consensus):", ""]
        lines += ["| judge \\ people | " + " | ".join(GRADES) + " |", "| --- |" + " --- |" * len(GRADES)]
        for g, row in zip(GRADES, judge["confusion"]["matrix"]):
            lines.append(f"| {g} | " + " | ".join(str(n) for n in row) + " |")
        if judge["answers_without_judge_grade"]:
            lines += ["", f"{judge['answers_without_judge_grade']} rated answer(s) had no judge grade (left out)."]
    else:
        lines.append("No judge grades were given with the answers (rate a judge's output folder to compare).")
    lines += [
        "",
        "Kappa: scikit-learn's `cohen_kappa_score`; alpha: the `krippendorff` package. Words for kappa values after "
        "Landis and Koch (1977).",
        "",
    ]
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------------- the stage


@dataclasses.dataclass
class RateConfig:
    """Settings of ``lamini-lm rate``."""

    answers: list[str] = dataclasses.field(
        default=None,
        metadata={"help": "judge output folder(s), judgements.jsonl or answers JSONL (id, prompt, answer) files"},
    )
    models: list[str] = dataclasses.field(
        default=None,
        metadata={"help": "model names, one per answers file (default: the judge's record, or the file's name)"},
    )
    db: str = dataclasses.field(default="ratings.sqlite", metadata={"help": "SQLite file the ratings are saved in"})
    host: str = dataclasses.field(default="127.0.0.1", metadata={"help": "address to serve on (see --allow_remote)"})
    port: int = dataclasses.field(default=7860, metadata={"help": "port to serve on (0: any free port)"})
    allow_remote: bool = dataclasses.field(
        default=False,
        metadata={"help": "allow an address other than this machine's (needs --token or $LAMINI_RATE_TOKEN)"},
    )
    token: str = dataclasses.field(
        default=None,
        metadata={"help": f"access token every request must carry (default: ${TOKEN_ENV}); 16+ characters"},
    )
    limit: int = dataclasses.field(default=None, metadata={"help": "rate only the first N answers of each file"})
    export: str = dataclasses.field(
        default=None, metadata={"help": "write ratings, plot, agreement and report to this folder, then exit"}
    )
    reference: list[str] = dataclasses.field(
        default_factory=lambda: ["all"], metadata={"help": "paper models shown in the plot ('all', or names)"}
    )
    overwrite: bool = dataclasses.field(default=False, metadata={"help": "replace a folder --export did not write"})

    def __post_init__(self):
        from lamini_lm.config import check_range

        check_range("port", self.port, 0, 65535)
        check_range("limit", self.limit, 1)
        if isinstance(self.answers, str):
            self.answers = [self.answers]
        if isinstance(self.models, str):
            self.models = [self.models]
        if not self.answers and not self.export and not Path(self.db).is_file():
            raise UsageError(
                f"give the answers to rate (a judge folder or answers JSONL), or --export FOLDER ({self.db} does not "
                "exist yet, so there is nothing to resume)"
            )
        if self.models and len(self.models) != len(self.answers or []):
            raise UsageError(f"--models gives {len(self.models)} names for {len(self.answers or [])} answers files")
        self.token = self.token or os.environ.get(TOKEN_ENV) or None
        if self.token is not None and not re.fullmatch(r"[A-Za-z0-9._~-]+", self.token):
            raise UsageError("--token may hold letters, digits and . _ ~ - only (it travels in a URL and a cookie)")
        if self.token is not None and len(self.token) < 16:
            raise UsageError(
                "--token must be at least 16 characters (python -c 'import secrets; print(secrets.token_urlsafe())')"
            )
        if self.host not in _LOOPBACK and not self.export:
            if not self.allow_remote:
                raise UsageError(
                    f"--host {self.host} serves the ratings beyond this machine; pass --allow_remote with --token "
                    f"(or ${TOKEN_ENV}) to do so, or keep the default 127.0.0.1"
                )
            if not self.token:
                raise UsageError(f"--allow_remote needs an access token: --token TOKEN or ${TOKEN_ENV}")


def _load_inputs(cfg: RateConfig) -> list[RateItem]:
    items: list[RateItem] = []
    names: dict[str, str] = {}
    for k, path in enumerate(cfg.answers or []):
        got = load_answers(path, cfg.models[k] if cfg.models else None, cfg.limit)
        for model in {it.model for it in got}:
            if model in names:
                raise UsageError(
                    f"{path} and {names[model]} both hold answers of model {model!r}; name them with --models"
                )
            names[model] = str(path)
        items += got
    return items


def run_rate(cfg: RateConfig, ready=None) -> None:
    """Load the answers into ``cfg.db`` and serve the rating page until Ctrl-C (``ready(url)`` is called once it
    listens)."""
    from lamini_lm.evaluation.rating_app import serve

    store = RatingStore(cfg.db)
    new = store.add_items(_load_inputs(cfg))
    units = store.units()
    if not units:
        raise UsageError(f"{cfg.db} holds no answers yet; give the answers to rate (a judge folder or answers JSONL)")
    logger.info("%d answers to rate (%d new) in %s", len(units), new, cfg.db)
    serve(store, cfg.host, cfg.port, token=cfg.token, ready=ready)


def run_rate_export(cfg: RateConfig) -> dict[str, Any]:
    """Write the ratings in ``cfg.db`` as an artifact in ``cfg.export``: ``ratings/`` (a ``datasets`` table),
    ``rubric.png``, ``agreement.json``, ``report.md`` and ``lamini_lm.json``; return the summary."""
    import datasets

    from lamini_lm.artifacts import Manifest, artifact_output, check_output, describe_input
    from lamini_lm.evaluation.plots import plot_rubric
    from lamini_lm.io import write_json, write_text_atomic

    check_output(cfg.export, "rate", cfg.overwrite, flag="--export")
    store = RatingStore(cfg.db, create=False)
    if cfg.answers:
        store.add_items(_load_inputs(cfg))
    rows = store.rows()
    if not rows:
        raise DataError(f"{cfg.db}: no ratings yet; rate first (lamini-lm rate ANSWERS --db {cfg.db})")
    stats = agreement(rows)
    stats["items"] = len({item for item, _ in store.units()})
    counts = _counts(rows)
    features = datasets.Features(
        {
            k: datasets.Value("string")
            for k in ("rater", "item", "model", "grade", "judge_grade", "judge", "prompt", "answer", "rated_at")
        }
    )
    with artifact_output(cfg.export, "rate", cfg.overwrite, flag="--export") as tmp:
        bars = datasets.is_progress_bar_enabled()
        datasets.disable_progress_bars()  # one small table: no bar
        try:
            datasets.Dataset.from_list(rows, features=features).save_to_disk(str(tmp / "ratings"))
        finally:
            if bars:
                datasets.enable_progress_bars()
        plot_rubric(counts, tmp / "rubric.png", reference=cfg.reference, title="Human ratings (A best, D worst)")
        write_json({"counts": counts, **stats}, tmp / "agreement.json")
        write_text_atomic(tmp / "report.md", render_report(stats, counts))
        inputs = [describe_input(cfg.db, role="ratings")] + [
            describe_input(a, role="answers") for a in cfg.answers or []
        ]
        Manifest(
            stage="rate",
            config={"rate": cfg},
            inputs=inputs,
            rows=len(rows),
            extra={"counts": counts, "raters": stats["raters"], "agreement": stats},
        ).save(tmp)
    return {"folder": str(cfg.export), "rows": len(rows), "counts": counts, "agreement": stats}


def main(argv: list[str] | None = None, prog: str = "lamini-lm rate") -> int:
    """People rate answers A/B/C/D in a local web page (as the paper did); --export writes the results."""
    from lamini_lm.config import StageParser

    parser = StageParser(
        [RateConfig],
        prog=prog,
        description=main.__doc__,
        positionals=("answers",),
        examples="  lamini-lm rate eval/lamini-flan-t5-248m/judge eval/lamini-gpt-124m/judge --db ratings.sqlite\n"
        "  lamini-lm rate answers.jsonl --models my-model --port 8080\n"
        "  LAMINI_RATE_TOKEN=$(python -c 'import secrets; print(secrets.token_urlsafe())') \\\n"
        "    lamini-lm rate eval/a/judge --host 0.0.0.0 --allow_remote\n"
        "  lamini-lm rate --db ratings.sqlite --export eval/human",
    )
    (cfg,) = parser.parse(argv)
    if cfg.export:
        summary = run_rate_export(cfg)
        stats = summary["agreement"]
        print(f"{summary['rows']} ratings by {len(stats['raters'])} rater(s) of {stats['answers']} answers")
        for model, c in summary["counts"].items():
            print(f"{model}: " + " ".join(f"{g}={n}" for g, n in c.items()))
        alpha = stats["alpha"]
        if alpha["nominal"] is not None:
            print(f"Krippendorff's alpha {_f(alpha['nominal'])} (nominal), {_f(alpha['ordinal'])} (ordinal)")
        if stats["judge"]:
            c = stats["judge"]["consensus"]
            print(f"judge vs people: kappa {_f(c['kappa'])} ({landis_koch(c['kappa'])}) on {c['n']} answers")
        print(f"wrote {summary['folder']} (ratings/, rubric.png, agreement.json, report.md, lamini_lm.json)")
        return 0

    def ready(url: str) -> None:
        print(f"rating {len(RatingStore(cfg.db).units())} answers; saved in {cfg.db}", flush=True)
        print(f"open {url}  (Ctrl-C to stop; a restart resumes)", flush=True)

    run_rate(cfg, ready=ready)
    return 0
