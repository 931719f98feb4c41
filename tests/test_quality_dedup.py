"""Dedup: planted duplicates are found, near-misses are kept, and the LSH result equals the O(N^2) ROUGE-L rule."""

from __future__ import annotations

import random

import datasets
import numpy as np
import pytest
from rouge_score import rouge_scorer, tokenize

from lamini_lm.errors import DataError, UsageError
from lamini_lm.io import load_table
from lamini_lm.quality import DedupConfig, StageIO, dedup, dedup_batches, dedup_texts, run_dedup
from lamini_lm.quality.text import normalize, normalize_many, rouge_l, rouge_tokens, tokenize_texts
from rouge_oracle import brute_force_rouge_keep

WORDS = [f"w{i}" for i in range(3000)] + "the a of to and in is for that on with as it by".split() * 40


def planted(n_base: int, seed: int = 0):
    """Random base rows plus planted case/space variants, 1-2 word edits of 12+-word rows and near misses."""
    rng = random.Random(seed)
    base = [[rng.choice(WORDS) for _ in range(rng.randint(4, 30))] for _ in range(n_base)]
    texts = [" ".join(["Explain", *b]) + "." for b in base]
    kinds, origin = [""] * len(texts), [-1] * len(texts)
    for i in range(0, n_base, 10):
        texts.append("  " + texts[i].upper().replace(" ", "   ", 2) + "\n")
        kinds.append("case_ws")
        origin.append(i)
        if len(base[i]) >= 12:
            edited = list(base[i])
            edited[3] = "changed"
            if i % 20 == 0:
                del edited[7]
            texts.append(" ".join(["Explain", *edited]) + ".")
            kinds.append("edit")
            origin.append(i)
            keep = len(base[i]) // 3
            texts.append(" ".join(["Explain", *base[i][:keep], *(rng.choice(WORDS) for _ in base[i][keep:])]))
            kinds.append("near_miss")
            origin.append(i)
    return texts, kinds, origin


def test_tokens_and_rouge_match_rouge_score():
    rng = random.Random(1)
    scorer = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=False)
    samples = ["What's 2+2?", "Café au lait, s'il vous plaît!", "  ", "C++ vs. C#: which is faster?", "A-B_c d"]
    samples += [" ".join(rng.choice(WORDS[:40]) for _ in range(rng.randint(0, 15))) for _ in range(200)]
    for text in samples:
        assert rouge_tokens(text) == tokenize.tokenize(text, None)
    tok = tokenize_texts([*samples, None, "İstanbul K\u212a 50％"])  # vectorised ASCII path + Python for the rest
    words = list(tok.vocab)
    for i, text in enumerate([*samples, "", "İstanbul K\u212a 50％"]):
        assert [words[t] for t in tok.row(i).tolist()] == tokenize.tokenize(text, None), text
    for a, b in zip(samples, samples[1:]):
        expected = scorer.score(a, b)["rougeL"].fmeasure
        assert rouge_l(rouge_tokens(a), rouge_tokens(b)) == pytest.approx(expected, abs=1e-12)


def test_normalize_many_matches_normalize():
    texts = ["  Name\tTHREE  colours. ", "x\x0b\x1cy", "«Quoted»", "Straße", "\u00a0nbsp\u2003em ", "C++?", "", "...!"]
    for punctuation in ("edges", "keep", "strip"):
        assert normalize_many(texts, punctuation) == [normalize(t, punctuation) for t in texts]


def test_normalize_keys():
    assert normalize("  Name\tTHREE  colours. ") == normalize("name three colours") == "name three colours"
    assert normalize("ｆｕｌｌ width") == "full width"  # NFKC
    assert normalize("Write C++ code") != normalize("Write C code")  # inner punctuation kept by default
    assert normalize("Write C++ code", punctuation="strip") == "write c code"


def test_planted_duplicates_found_and_near_misses_kept():
    texts, kinds, origin = planted(400)
    ds = datasets.Dataset.from_dict({"instruction": texts, "instruction_source": ["alpaca"] * len(texts)})
    kept, report = dedup(ds, num_proc=1)
    kept_set = set(kept["instruction"][:])
    for text, kind in zip(texts, kinds):
        if kind in ("case_ws", "edit"):
            assert text not in kept_set, (kind, text)
        elif kind == "near_miss":
            assert text in kept_set, text
    n_case = kinds.count("case_ws")
    assert report.step == "dedup" and report.rows_in == len(texts)
    assert report.removed == {"exact": n_case, "rouge": kinds.count("edit")}
    assert report.rows_out == len(kept) == len(texts) - n_case - kinds.count("edit")
    assert report.removed_by_source == {"alpaca": n_case + kinds.count("edit")}
    assert report.details["removed_by_reason_and_source"]["exact"] == {"alpaca": n_case}
    ex = report.details["duplicates"]["rouge"][0]
    assert ex["rouge_l"] > 0.7 and ex["duplicate_of_row"] < ex["row"]
    assert report.examples["rouge"][0] == ex["text"] == texts[ex["row"]]
    edits = kinds.count("edit")
    assert report.summary() == f"dedup: {len(texts)} rows in, {len(kept)} out (exact {n_case}, rouge {edits})"
    # the earlier row of each group is the one kept, in the original order
    assert kept["instruction"][:] == [t for t in texts if t in kept_set]


def test_matches_literal_self_instruct_loop():
    """The LSH result equals Self-Instruct's loop (rouge_score against every earlier kept row) on ~230 rows."""
    texts, _, _ = planted(200, seed=3)
    scorer = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=False)
    pool, literal = [], []
    for t in texts:
        ok = all(scorer.score(p, t)["rougeL"].fmeasure <= 0.7 for p in pool)
        literal.append(ok)
        if ok:
            pool.append(t)
    literal = np.array(literal)
    assert (~literal).sum() > 20
    assert np.array_equal(brute_force_rouge_keep(texts), literal)
    assert np.array_equal(dedup_texts(texts, num_proc=1).keep, literal)


def test_equals_brute_force_at_2000_rows():
    texts, _, _ = planted(1800, seed=7)
    res = dedup_texts(texts, DedupConfig(num_proc=2))
    assert np.array_equal(res.keep, brute_force_rouge_keep(texts))
    assert res.stats["candidates"] < len(texts) * 2  # the point: a tiny fraction of the N^2/2 pairs


def test_batches_and_spilling_change_no_decision(tmp_path):
    """Signatures depend on a row's own text: any batch size, in memory or spilled to disk, gives the same rows."""
    texts, _, _ = planted(1800, seed=7)
    whole = dedup_texts(texts, num_proc=1)
    assert not whole.stats["spilled"]
    small = dedup_batches(
        (texts[i : i + 137] for i in range(0, len(texts), 137)),
        DedupConfig(max_memory="1MB", num_proc=2),
        spill_dir=tmp_path,
    )
    assert small.stats["spilled"] and not list(tmp_path.iterdir())  # spilled, and the spill folder removed
    assert np.array_equal(small.dup_of, whole.dup_of) and np.array_equal(small.code, whole.code)
    assert np.array_equal(whole.keep, brute_force_rouge_keep(texts))


def test_stage_writes_parquet_shards_in_input_order(tmp_path):
    texts, kinds, _ = planted(300, seed=2)
    src = tmp_path / "in"
    datasets.Dataset.from_dict({"instruction": texts, "n": list(range(len(texts)))}).save_to_disk(str(src))
    report = run_dedup(StageIO(input=str(src), output=str(tmp_path / "d")), DedupConfig(batch_rows=50))
    shards = sorted((tmp_path / "d" / "data").glob("*.parquet"))
    assert [p.name for p in shards] == ["train-00000-of-00001.parquet"]
    kept = load_table(tmp_path / "d")
    expected = dedup_texts(texts).keep
    assert kept["n"][:] == np.flatnonzero(expected).tolist() and report.rows_out == len(kept)
    assert report.removed == {"exact": kinds.count("case_ws"), "rouge": kinds.count("edit")}
    with pytest.raises(UsageError, match="--max_memory"):
        DedupConfig(max_memory="lots")


def test_passes_can_be_switched_off_and_threshold_moves():
    texts = ["Write a poem about the sea and the wind at night.", "write a poem about the sea and the wind at night"]
    texts += ["Write a poem about the sea and the wind at dawn."]
    assert dedup_texts(texts, exact=False, near=False).keep.all()
    assert dedup_texts(texts, near=False).keep.tolist() == [True, False, True]
    assert dedup_texts(texts, threshold=0.95).keep.tolist() == [True, False, True]
    assert dedup_texts(texts).reason.tolist() == ["", "exact", "rouge"]


def test_empty_rows_and_missing_column():
    res = dedup_texts(["", "", "?", "日本語の文", "日本語の文です", "Name a colour."])
    # "?" normalises to the empty text; texts without a ROUGE token (no a-z0-9) are never near duplicates
    assert res.reason.tolist() == ["", "exact", "exact", "", "", ""]
    with pytest.raises(DataError, match="no 'instruction' column"):
        dedup(datasets.Dataset.from_dict({"text": ["a"]}))


@pytest.mark.parametrize(
    "setting, message",
    [({"threshold": 7}, "--threshold: must be in (0, 1]"), ({"threshold": 0}, "--threshold: must be in (0, 1]"),
     ({"ngram": 0}, "--ngram: must be >= 1"), ({"bands": 0}, "--bands"), ({"rows": 0}, "--rows"),
     ({"punctuation": "all"}, "--punctuation: must be one of")],
)  # fmt: skip
def test_settings_that_make_no_sense_are_refused(setting, message):
    with pytest.raises(UsageError) as e:
        DedupConfig(**setting)
    assert str(e.value).startswith(message)


def test_short_rows_with_one_edit():
    """One edit changes most bigrams of a short row; the first/last-word shingles keep recall high there."""
    rng = random.Random(5)
    texts = []
    for i in range(300):
        row = [rng.choice(WORDS) for _ in range(rng.randint(3, 8))]
        edited = list(row)
        edited.insert(rng.randrange(1, len(row)), f"extra{i}")
        texts += [" ".join(row), " ".join(edited)]
    rule = ~brute_force_rouge_keep(texts)
    assert rule.sum() > 200
    with_edges = ~dedup_texts(texts, num_proc=1).keep
    without = ~dedup_texts(texts, num_proc=1, edges=False).keep
    assert not (with_edges & ~rule).any()  # never removes what the rule keeps
    assert (with_edges & rule).sum() / rule.sum() > 0.9 > (without & rule).sum() / rule.sum()
