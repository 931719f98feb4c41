"""``generate responses --top_logprobs K``: the teacher's top-k log-probs kept from the paid pass, as the sparse
columns token-level distillation trains on without loading the teacher.

The server is tests/logprob_server.py: a real tiny GPT-2 answering in vLLM's format (vLLM cannot run here)."""

from __future__ import annotations

import json
import shutil
import sqlite3
import subprocess
import sys

import pytest
import torch

from lamini_lm.generation import TeacherConfig
from lamini_lm.generation.client import response_from_body
from lamini_lm.records import Response
from logprob_server import LogprobServer

K = 8


def cli(*args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "lamini_lm.cli", *map(str, args)], capture_output=True, text=True)


def test_the_request_asks_for_token_ids_and_the_key_changes_only_when_asked():
    plain, asked = (
        TeacherConfig(base_url="http://x/v1", model="m"),
        TeacherConfig(base_url="http://x/v1", model="m", top_logprobs=5),
    )
    body = asked.request_body([{"role": "user", "content": "hi"}])
    assert body["logprobs"] is True and body["top_logprobs"] == 5 and body["return_tokens_as_token_ids"] is True
    assert "logprobs" not in plain.request_body([{"role": "user", "content": "hi"}])
    assert "top_logprobs" not in plain.sampling() and asked.sampling()["top_logprobs"] == 5
    # a server answering with token text (not ids) cannot give token-level columns: stop, saying how to fix it
    text_tokens = {
        "choices": [
            {
                "message": {"content": "hi"},
                "finish_reason": "stop",
                "logprobs": {
                    "content": [{"token": "hi", "logprob": -0.1, "top_logprobs": [{"token": "hi", "logprob": -0.1}]}]
                },
            }
        ]
    }
    attempt = response_from_body(text_tokens, "m", top_logprobs=5)
    assert attempt.fatal and "return-tokens-as-token-ids" in attempt.error
    assert response_from_body(text_tokens, "m").response.token_logprobs is None  # not asked: not kept
    # the store's JSON keeps them
    r = Response("hi", token_logprobs={"token_ids": [3], "top_ids": [[3, 4]], "top_logprobs": [[-0.1, -2.5]]})
    assert Response.from_dict(json.loads(r.to_json())) == r


@pytest.fixture(scope="module")
def served(tiny_gpt2):
    with LogprobServer(tiny_gpt2) as server:
        yield server


def _generate(served, inp, out, store, *extra):
    return cli(
        "generate", "responses", "--input", inp, "--output", out, "--base_url", served.base_url,
        "--model", served.name, "--no_progress", "--max_tokens", "12", "--temperature", "0",
        "--top_logprobs", K, "--store", store, *extra,
    )  # fmt: skip


def test_top_logprobs_from_the_paid_pass_train_a_kd_student_without_the_teacher(served, tiny_gpt2, tmp_path):
    from datasets import load_from_disk
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from lamini_lm.train import load_recipe
    from lamini_lm.train.distill import distillation_loss

    inp = tmp_path / "in.jsonl"
    inp.write_text("".join(json.dumps({"instruction": f"Task {i}: say something."}) + "\n" for i in range(4)))
    store = tmp_path / "store.sqlite"
    proc = _generate(served, inp, tmp_path / "res", store)
    assert proc.returncode == 0, proc.stderr[-2000:]
    asked = served.requests
    assert asked == 4
    rows = load_from_disk(str(tmp_path / "res"))
    manifest = json.loads((tmp_path / "res" / "lamini_lm.json").read_text())
    assert manifest["extra"]["top_logprobs"] == K
    tok = AutoTokenizer.from_pretrained(str(tiny_gpt2))
    teacher = AutoModelForCausalLM.from_pretrained(str(tiny_gpt2)).eval()
    for row in rows:
        sampled, ids, lps = row["teacher_response_ids"], row["teacher_token_ids"], row["teacher_logprobs"]
        assert len(sampled) == len(ids) == len(lps) >= 1 and all(len(r) == K for r in ids)
        assert tok.decode(sampled, skip_special_tokens=True) == row["response"]  # the tokens of the response
    # the stored values are the teacher's own: its forward pass on the chat prompt it was asked + the sampled tokens
    from lamini_lm.generation.responses import response_messages

    row = rows[0]
    enc = tok.apply_chat_template(
        response_messages(row["instruction"]), add_generation_prompt=True, return_tensors="pt"
    )
    prompt_ids = (enc if torch.is_tensor(enc) else enc["input_ids"])[0].tolist()
    full = torch.tensor([prompt_ids + row["teacher_response_ids"]])
    with torch.no_grad():
        logp = torch.log_softmax(teacher(full).logits[0, len(prompt_ids) - 1 : -1].float(), -1)
    values, top = logp.topk(K)
    assert top.tolist() == row["teacher_token_ids"]
    assert torch.allclose(values, torch.tensor(row["teacher_logprobs"]), atol=2e-2)

    # a re-run pays nothing and still has them
    again = _generate(served, inp, tmp_path / "res2", store)
    assert again.returncode == 0, again.stderr[-2000:]
    assert served.requests == asked
    rows2 = load_from_disk(str(tmp_path / "res2"))
    assert rows2["teacher_logprobs"] == rows["teacher_logprobs"]
    with sqlite3.connect(store) as db:
        assert db.execute("SELECT COUNT(*) FROM responses").fetchone()[0] == 4

    # a KD student trains from the columns, no teacher model loaded: the loss is the one of the stored log-probs
    student = shutil.copytree(tiny_gpt2, tmp_path / "student")
    recipe = load_recipe(
        family="causal", model_name_or_path=str(student), teacher_logits=str(tmp_path / "res"), alpha=0.0,
        output_dir=str(tmp_path / "out"), use_cpu=True, eval_split_size=0, max_steps=2,
        per_device_train_batch_size=2, save_strategy="no", report_to="none", disable_tqdm=True,
    )  # fmt: skip
    trainer = recipe.build()
    assert trainer.teacher is None
    batch = trainer.data_collator([trainer.train_dataset[i] for i in range(2)])
    n = int((batch["labels"] != -100).sum())
    assert batch["teacher_token_ids"].shape == (n, K)
    model = trainer.model.eval()
    with torch.no_grad():
        loss = trainer.compute_loss(model, dict(batch))
        logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    by_hand = distillation_loss(
        logits, batch["labels"], teacher_token_ids=batch["teacher_token_ids"],
        teacher_logprobs=batch["teacher_logprobs"], alpha=0.0, shift=True,
    )  # fmt: skip
    assert float(by_hand.loss) > 0 and abs(float(loss) - float(by_hand.loss)) < 1e-5
    recipe.train()
    facts = json.loads((tmp_path / "out" / "lamini_lm.json").read_text())["extra"]["distillation"]
    assert facts["type"] == "token-level (served top-k, generation pass)" and facts["top_k"] == K
    assert facts["teacher"] == served.name


def test_a_student_with_another_tokenizer_is_refused_in_one_line(served, tiny_gpt2, tmp_path):
    from lamini_lm.testing import build_tiny_gpt2, build_tiny_tokenizer

    inp = tmp_path / "in.jsonl"
    inp.write_text(json.dumps({"instruction": "Task: say something."}) + "\n")
    assert _generate(served, inp, tmp_path / "res", tmp_path / "store.sqlite").returncode == 0
    other = build_tiny_tokenizer(tmp_path / "tok", corpus=["zz qq xx"] * 50, vocab_size=300)
    student = build_tiny_gpt2(tmp_path / "student", tokenizer=other)
    proc = cli(
        "train", "--family", "causal", "--model_name_or_path", student, "--teacher_logits", tmp_path / "res",
        "--output_dir", tmp_path / "out", "--use_cpu", "true", "--max_steps", "1", "--eval_split_size", "0",
        "--report_to", "none",
    )  # fmt: skip
    err = proc.stderr.strip().splitlines()
    assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr[-2000:]
    assert "sampled token ids are not its response text" in err[-1] and "tokenizer" in err[-1]


def test_rows_train_on_the_teachers_own_ids_with_a_final_eos(tiny_tokenizer):
    from datasets import Dataset

    from lamini_lm.errors import DataError
    from lamini_lm.train.distill import align_response_columns

    tok, eos = tiny_tokenizer, tiny_tokenizer.eos_token_id
    a, b = tok.convert_tokens_to_ids(["a", "b"])  # "ab" in two tokens: not how the tokenizer would cut "ab"
    raw = Dataset.from_dict(
        {
            "response": ["ab"],
            "teacher_response_ids": [[a, b]],
            "teacher_token_ids": [[[a, 7], [b, 8]]],
            "teacher_logprobs": [[[-0.1, -3.0], [-0.2, -2.0]]],
        }
    )
    causal = Dataset.from_dict(
        {"input_ids": [[40, 41, 99, eos]], "attention_mask": [[1] * 4], "labels": [[-100, -100, 99, eos]]}
    )
    out = align_response_columns(raw, causal, tok, decoder_only=True)[0]
    assert out["input_ids"] == [40, 41, a, b, eos] and out["labels"] == [-100, -100, a, b, eos]
    assert out["teacher_token_ids"][:2] == [[a, 7], [b, 8]] and out["teacher_token_ids"][2][0] == eos
    assert out["teacher_logprobs"][2][0] == 0.0
    seq2seq = Dataset.from_dict({"input_ids": [[40, 41]], "attention_mask": [[1, 1]], "labels": [[99, eos]]})
    out = align_response_columns(raw, seq2seq, tok, decoder_only=False)[0]
    assert out["input_ids"] == [40, 41] and out["labels"] == [a, b, eos]
    with pytest.raises(DataError, match="row 0: the teacher's sampled token ids are not its response text"):
        align_response_columns(raw.map(lambda r: {"response": "zz"}), causal, tok, decoder_only=True)


def test_the_python_api_and_the_stage_give_the_same_rows_teacher_columns_and_counts(served, tmp_path):
    from datasets import load_from_disk

    from lamini_lm.artifacts import read_manifest
    from lamini_lm.generation import generate_responses

    # chunks of 2: [Task 0, Task 1], [no instruction, Task 0], [Task 3]: Task 0 is asked in two chunks
    texts = ["Task 0: say something.", "Task 1: say more.", "", "Task 0: say something.", "Task 3: say less."]
    inp = tmp_path / "in.jsonl"
    inp.write_text("".join(json.dumps({"instruction": t}) + "\n" for t in texts))
    before = served.requests  # the server is the module's: count from here
    proc = _generate(served, inp, tmp_path / "res", tmp_path / "a.sqlite", "--chunk_rows", "2")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert served.requests - before == 3
    cfg = TeacherConfig(
        base_url=served.base_url, model=served.name, max_tokens=12, temperature=0.0, top_logprobs=K, progress=False
    )
    api, report = generate_responses(str(inp), config=cfg, store=tmp_path / "b.sqlite", return_report=True)
    assert served.requests - before == 6  # its own store: the same three requests again
    stage = load_from_disk(str(tmp_path / "res"))
    assert stage.features == api.features and stage.to_list() == api.to_list()
    assert all(len(r["teacher_token_ids"]) >= 1 for i, r in enumerate(api) if i != 2) and api[2]["error"]
    assert api[3]["teacher_logprobs"] == api[0]["teacher_logprobs"]
    m = read_manifest(tmp_path / "res")
    got = m.reports[0]
    for k in ("step", "rows_in", "rows_out", "removed", "examples", "details"):
        assert got[k] == getattr(report, k), k
    assert report.details["requests"] == report.details["to_send"] == 3 and report.details["from_cache"] == 0
    assert m.extra == {"to_send": 3, "from_cache": 0, "not_sent": 0, "top_logprobs": K}
