"""Statistics plots, the dataset card (renders, round-trips through DatasetCard.load), the release folder, the CLI
stages end to end, and push-dataset against the fake Hub."""

from __future__ import annotations

import json
import random

import datasets
import pytest
from huggingface_hub import DatasetCard

from lamini_lm import cli
from lamini_lm.prompts import PROMPT_HASHES, PROMPT_VERSION, SYSTEM_MESSAGE
from lamini_lm.quality import build_release, compute_stats, dataset_card, decontaminate, dedup, filter_rows

SOURCES = ["alpaca", "generated_flan", "self_instruct_with_topic"]
BENCH_Q = "Which of the following statements best describes the function of mitochondria inside eukaryotic cells"


def make_ds(n: int = 60) -> datasets.Dataset:
    rng = random.Random(0)
    verbs = ["Write", "Explain", "Describe", "Summarize", "List"]
    nouns = ["poem", "story", "recipe", "essay", "summary", "letter"]
    words = [f"word{k}" for k in range(500)]

    def instruction(i: int) -> str:
        return " ".join([verbs[i % 5], "a", nouns[i % 6], "about", *rng.sample(words, rng.randint(3, 12))]) + "."

    rows = {
        "instruction": [instruction(i) for i in range(n)],
        "response": [f"Here is answer {i}, short and concise." for i in range(n)],
        "instruction_source": [SOURCES[i % 3] for i in range(n)],
        "teacher_model": ["gpt-3.5-turbo"] * n,
        "prompt_tokens": [30] * n,
        "completion_tokens": [12] * n,
        "cost_usd": [0.0005] * n,
    }
    rows["instruction"][5] = rows["instruction"][4].upper()  # an exact duplicate
    rows["instruction"][7] = f"Answer this: {BENCH_Q}?"  # contaminated
    return datasets.Dataset.from_dict(rows)


def test_stats_and_plots(tmp_path):
    stats = compute_stats(make_ds(), tmp_path, embed="tfidf")
    assert stats["counts"] == {"alpaca": 20, "generated_flan": 20, "self_instruct_with_topic": 20}
    assert stats["prompt_tokens"] == 1800 and stats["cost_usd"] == pytest.approx(0.03)
    assert stats["teacher_models"] == ["gpt-3.5-turbo"]
    # 30 pairs, 2 rows each; row 5 repeats row 4 ("List a summary ...")
    assert len(stats["verb_noun"]) == 20 and stats["verb_noun"][0] == ["list", "summary", 3]
    assert all(v in ("write", "explain", "describe", "summarize", "list") for v, _, _ in stats["verb_noun"])
    assert stats["diversity_map"] == {"points": 60, "embedding": "tfidf", "projection": "pca"}
    for name in ("counts_per_source", "lengths", "verb_noun", "diversity_map"):
        png = tmp_path / stats["plots"][name]
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 5000


@pytest.mark.slow
def test_diversity_map_with_minilm(tmp_path):
    stats = compute_stats(make_ds(30), tmp_path, embed="minilm")
    assert stats["diversity_map"]["embedding"] == "minilm"


def reports_for(ds, tmp_path):
    bench = tmp_path / "bench.jsonl"
    bench.write_text(json.dumps({"question": BENCH_Q}) + "\n")
    ds, rep_dedup = dedup(ds, num_proc=1)
    ds, rep_filters = filter_rows(ds)
    ds, rep_decon = decontaminate(ds, {"arc_challenge": str(bench)})
    return ds, {"dedup": rep_dedup, "filters": rep_filters, "decontamination": rep_decon}


def test_card_renders_and_round_trips(tmp_path):
    ds, reports = reports_for(make_ds(), tmp_path)
    assert len(ds) == 58
    card = dataset_card(ds, pretty_name="Tiny LaMini", reports=reports, created="2026-01-02")
    path = tmp_path / "README.md"
    card.save(path)
    loaded = DatasetCard.load(path)
    assert loaded.data.license == "cc-by-nc-4.0"
    assert loaded.data.pretty_name == "Tiny LaMini"
    assert loaded.data.task_categories == ["text2text-generation"]
    assert loaded.data.configs[0]["data_files"][0]["path"] == "data/train-*"
    assert loaded.text == card.text
    text = card.text
    for needle in (
        "**58 rows**",
        "| `alpaca` | 20 |",
        "gpt-3.5-turbo",
        PROMPT_VERSION,
        PROMPT_HASHES["system_message"],
        SYSTEM_MESSAGE,
        "Tokens: 1,740 prompt + 696 completion",
        "Cost: $0.03",
        "exact pass",
        "| arc_challenge | 1 |",
        "2026-01-02",
        "CC BY-NC 4.0",
        "eprint     = {2304.14402}",
    ):
        assert needle.lower() in text.lower(), needle
    assert "Exact pass (NFKC, lower-cased, white space collapsed, punctuation\n`edges`): 1 removed" in text


def test_build_release_folder(tmp_path):
    ds, reports = reports_for(make_ds(), tmp_path)
    out = build_release(ds, tmp_path / "release", reports=reports, embed="tfidf", max_shard_rows=40)
    names = sorted(p.relative_to(out).as_posix() for p in (tmp_path / "release").rglob("*") if p.is_file())
    assert names == [
        "README.md",
        "data/train-00000-of-00002.parquet",
        "data/train-00001-of-00002.parquet",
        "plots/counts_per_source.png",
        "plots/diversity_map.png",
        "plots/lengths.png",
        "plots/verb_noun.png",
    ]
    back = datasets.load_dataset("parquet", data_files=str(tmp_path / "release/data/*.parquet"), split="train")
    assert back["instruction"][:] == ds["instruction"][:]
    assert "](plots/lengths.png)" in DatasetCard.load(tmp_path / "release/README.md").text


def test_cli_stages_end_to_end(tmp_path, capsys):
    make_ds().to_json(tmp_path / "in.jsonl")
    (tmp_path / "bench.jsonl").write_text(json.dumps({"question": BENCH_Q}) + "\n")
    run = lambda *argv: cli.main([str(a) for a in argv])  # noqa: E731
    assert run("dedup", "--input", tmp_path / "in.jsonl", "--output", tmp_path / "d", "--num_proc", 1) == 0
    assert run("filter", "--input", tmp_path / "d", "--output", tmp_path / "f", "--no_refusal") == 0
    assert run("decontaminate", "--input", tmp_path / "f", "--output", tmp_path / "c",
               "--eval_files", f"sciq={tmp_path / 'bench.jsonl'}", "--action", "tag") == 0  # fmt: skip
    assert run("stats", "--input", tmp_path / "c", "--output", tmp_path / "s", "--embed", "tfidf") == 0
    assert json.loads((tmp_path / "d.report.json").read_text())["exact"]["removed"] == 1
    assert json.loads((tmp_path / "f.report.json").read_text())["config"]["refusal"] is False
    decon = json.loads((tmp_path / "c.report.json").read_text())
    assert decon["tasks"]["sciq"]["flagged"] == 1
    tagged = datasets.load_from_disk(str(tmp_path / "c"))
    assert sum(bool(t) for t in tagged["contaminated"][:]) == 1 and len(tagged) == 59
    assert (tmp_path / "s/stats.json").exists() and (tmp_path / "s/diversity_map.png").exists()
    reports = ",".join(str(tmp_path / f"{s}.report.json") for s in "dfc")
    assert run("push-dataset", "--input", tmp_path / "c", "--release_dir", tmp_path / "r",
               "--reports", reports, "--embed", "none") == 0  # fmt: skip
    card = DatasetCard.load(tmp_path / "r/README.md")
    assert "| sciq | 1 |" in card.text and "tagged in a `contaminated` column" in card.text
    assert run("dedup", "--input", tmp_path / "missing.jsonl", "--output", tmp_path / "x") == 1
    assert "missing.jsonl: no dataset there" in capsys.readouterr().err


@pytest.mark.integration
def test_push_dataset_to_fake_hub(fake_hub, tmp_path):
    from huggingface_hub import HfApi

    ds, reports = reports_for(make_ds(), tmp_path)
    ds.save_to_disk(str(tmp_path / "clean"))
    for name, report in reports.items():
        (tmp_path / f"{name}.json").write_text(json.dumps({**report, "stage": name}))
    argv = ["push-dataset", "--input", str(tmp_path / "clean"), "--release_dir", str(tmp_path / "release"),
            "--repo_id", "fake-user/lamini-clean", "--embed", "tfidf",
            "--reports", ",".join(str(tmp_path / f"{n}.json") for n in reports)]  # fmt: skip
    assert cli.main(argv) == 0
    files = set(fake_hub.hub.files("fake-user/lamini-clean", repo_type="dataset"))
    assert {"README.md", "data/train-00000-of-00001.parquet", "plots/lengths.png"} <= files
    assert HfApi().repo_info("fake-user/lamini-clean", repo_type="dataset").id == "fake-user/lamini-clean"
    card = DatasetCard.load("fake-user/lamini-clean", repo_type="dataset")
    assert card.data.license == "cc-by-nc-4.0" and "| arc_challenge | 1 |" in card.text
    assert fake_hub.token not in card.content
    back = datasets.load_dataset("fake-user/lamini-clean", split="train")
    assert back["instruction"][:] == ds["instruction"][:]
