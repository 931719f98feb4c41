"""Instruction and response generation end to end against the fake teacher, the topic filter, prompt plans."""

from __future__ import annotations

import json

import datasets
import pytest

from generation_fakes import FakeOpenAI
from lamini_lm.generation import (
    TeacherConfig,
    filter_topics,
    generate_instructions,
    generate_responses,
    parse_report,
    plan_prompts,
)
from lamini_lm.generation.instructions import load_seeds
from lamini_lm.prompts import PROMPT_HASHES, SYSTEM_MESSAGE
from lamini_lm.records import generation_features

SELF_INSTRUCT = [
    "What are some things you can do to de-stress?",
    "How can individuals and organizations reduce unconscious bias?",
    "Write a program to compute the sum of integers from k to n.",
    "Give three tips for staying healthy.",
]


def cfg(url: str, **kw) -> TeacherConfig:
    return TeacherConfig(base_url=url, model="fake", progress=False, backoff_base=0.01, **kw)


def test_topic_filter_on_a_small_category_table(tmp_path):
    table = [
        {"category": "Conidae", "n_subcategories": 12, "n_pages": 900},  # kept
        {"category": "Design_bureaus", "n_subcategories": 11, "n_pages": 51},  # kept, underscores read as spaces
        {"category": "Infantry", "n_subcategories": 10, "n_pages": 500},  # not more than 10 subcategories
        {"category": "Jazz", "n_subcategories": 40, "n_pages": 50},  # not more than 50 pages
        {"category": "People from Ohio", "n_subcategories": 40, "n_pages": 300},  # three words
    ]
    assert filter_topics(table) == ["Conidae", "Design bureaus"]
    # a Wikipedia `category` table dump's column names, as CSV
    csv = tmp_path / "cats.csv"
    csv.write_text("cat_title,cat_subcats,cat_pages\nConidae,12,900\nInfantry,10,500\n")
    assert filter_topics(csv) == ["Conidae"]
    with pytest.raises(ValueError, match="n_pages"):
        filter_topics([{"category": "x", "n_subcategories": 1}])


def test_prompt_plans_follow_the_paper_and_are_reproducible():
    seeds = load_seeds(
        [{"instruction": s} for s in SELF_INSTRUCT]
        + [
            {"instruction": f"p3 {sub} {i}", "instruction_source": "original_p3", "subset": sub}
            for sub in ("a", "b")
            for i in range(4)
        ]
    )
    plans = plan_prompts(seeds, num_prompts=30, seed=1)
    assert plans == plan_prompts(seeds, num_prompts=30, seed=1)
    assert plans != plan_prompts(seeds, num_prompts=30, seed=2)
    for p in plans:
        assert len(p.seeds) == 3
        if p.family == "p3":
            assert p.n == 10 and len({s.subset for s in p.seeds}) == 1 and p.source.value == "generated_p3"
            assert "Generate 10 diverse examples" in p.prompt
        else:
            assert p.n == 20 and p.source.value == "self_instruct_without_topic"
    assert {p.family for p in plans} == {"p3", "self_instruct"}
    topic = plan_prompts(seeds, strategy="topic", topics=["Conidae", "Infantry", "Jazz", "Opera"], num_prompts=5)
    assert all(p.family == "self_instruct" and len(p.topics) == 3 for p in topic)
    assert 'with the topics "' in topic[0].prompt and topic[0].source.value == "self_instruct_with_topic"


@pytest.mark.integration
def test_generate_instructions_example_and_topic(tmp_path):
    fake = FakeOpenAI(script=["ok", "ok", "500"])
    with fake as url:
        ds = generate_instructions(
            SELF_INSTRUCT, config=cfg(url, max_retries=0), store=tmp_path / "s.sqlite", num_prompts=3, seed=0
        )
        topics = generate_instructions(
            SELF_INSTRUCT,
            strategy="topic",
            topics=["Conidae", "Infantry", "Jazz"],
            config=cfg(url),
            store=tmp_path / "s.sqlite",
            num_prompts=2,
        )
    assert ds.features == generation_features()
    ok = ds.filter(lambda r: r["error"] is None)
    failed = ds.filter(lambda r: r["error"] is not None)
    assert len(ok) == 40 and len(failed) == 1  # 2 answers x 20 instructions, 1 failed request
    assert failed[0]["instruction"] is None and failed[0]["error"].startswith("HTTP 500")
    assert set(ok["instruction_source"]) == {"self_instruct_without_topic"}
    assert all(len(r["seed_ids"]) == 3 and r["instruction_model"] == "fake" for r in ok)
    assert set(ok["instruction_prompt_version"]) == {PROMPT_HASHES["example_guided"]}
    assert sum(ds["prompt_tokens"]) > 0 and ok[0]["prompt_tokens"] > 0 and ok[1]["prompt_tokens"] == 0
    assert parse_report(ds)["kept"] == 40 and parse_report(ds)["chatter_lines"] == 4
    assert len(topics) == 40 and set(topics["instruction_source"]) == {"self_instruct_with_topic"}
    assert all(len(t) == 3 for t in topics["topics"])


@pytest.mark.integration
def test_generate_responses_keeps_provenance_and_failures(tmp_path):
    rows = [
        {"instruction": "Name a colour.", "instruction_source": "alpaca", "subset": None},
        {"instruction": "Sum 2 and 3.", "instruction_source": "original_p3", "subset": "math"},
        {"instruction": None, "instruction_source": "generated_p3", "error": "HTTP 500: upstream"},
    ]
    path = tmp_path / "in.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    fake = FakeOpenAI()
    fake.record_bodies = True
    with fake as url:
        ds = generate_responses(path, config=cfg(url), store=tmp_path / "s.sqlite")
    assert ds.features == generation_features()
    assert ds["response"][:2] == ["Answer: Name a colour.", "Answer: Sum 2 and 3."]
    assert ds["instruction_source"] == ["alpaca", "original_p3", "generated_p3"]
    assert ds["subset"] == [None, "math", None]
    assert ds[2]["response"] is None and ds[2]["error"] == "HTTP 500: upstream"
    assert len(fake.bodies) == 2
    assert fake.bodies[0]["messages"] == [
        {"role": "system", "content": SYSTEM_MESSAGE},
        {"role": "user", "content": "Name a colour."},
    ]
    assert set(ds["response_prompt_version"][:2]) == {PROMPT_HASHES["system_message"]}
    assert all(len(k) == 64 for k in ds["request_key"][:2])


def test_inputs_with_bad_rows_name_the_file_and_line(tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"instruction": "ok"}\n{not json\n')
    with pytest.raises(ValueError, match=r"bad.jsonl, line 2"):
        generate_responses(bad, config=cfg("http://127.0.0.1:9/v1"), store=tmp_path / "s.sqlite")
    nocol = tmp_path / "nocol.jsonl"
    nocol.write_text('{"text": "x"}\n')
    with pytest.raises(ValueError, match="instruction"):
        generate_responses(nocol, config=cfg("http://127.0.0.1:9/v1"), store=tmp_path / "s.sqlite")


def test_parquet_and_dataset_folder_inputs(tmp_path):
    ds = datasets.Dataset.from_list([{"instruction": s} for s in SELF_INSTRUCT])
    ds.to_parquet(str(tmp_path / "seeds.parquet"))
    ds.save_to_disk(str(tmp_path / "seeds"))
    assert [s.text for s in load_seeds(tmp_path / "seeds.parquet")] == SELF_INSTRUCT
    assert [s.text for s in load_seeds(tmp_path / "seeds")] == SELF_INSTRUCT


@pytest.mark.integration
def test_tasks_against_the_real_tiny_teacher(teacher_server, tmp_path):
    config = TeacherConfig(base_url=teacher_server.base_url, model=teacher_server.model, max_tokens=8, progress=False)
    store = tmp_path / "s.sqlite"
    ds = generate_responses(["Name a colour.", "Add 2 and 3."], config=config, store=store)
    assert ds["error"] == [None, None] and all(isinstance(r, str) for r in ds["response"])
    assert all(n > 0 for n in ds["completion_tokens"]) and set(ds["finish_reason"]) <= {"stop", "length"}
    # a random tiny model writes no <example> tags: the rows say so instead of vanishing
    ins = generate_instructions(SELF_INSTRUCT, config=config, store=store, num_prompts=1)
    assert len(ins) >= 1 and (ins[0]["error"] == "no instruction could be parsed" or ins[0]["instruction"])
