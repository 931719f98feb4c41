"""The quality stages on dialogues (a ``messages`` column), as real processes: dedup on the first user turn,
filters per exchange, decontamination on every turn, statistics with turns per dialogue and words per turn."""

from __future__ import annotations

import json
import subprocess
import sys

import datasets

from lamini_lm.artifacts import read_manifest

BENCH_Q = "Which of the following statements best describes the function of mitochondria inside eukaryotic cells"
TOPICS = ["the sea", "a lost key", "winter mornings", "tax law", "a quiet robot", "mountain goats", "jazz", "bread"]
VERBS = ["Write a poem about", "Explain to a child", "List three facts on", "Summarize the history of",
         "Give advice about", "Describe", "Compose a limerick on", "Argue for"]  # fmt: skip


def chat(*turns):
    return [{"role": "user" if i % 2 == 0 else "assistant", "content": t} for i, t in enumerate(turns)]


def dialogues() -> list[dict]:
    out = [
        {
            "messages": chat(f"{VERBS[i]} {t}, in {i + 2} lines.", f"A poem {i}.", f"Now shorter, {i}?", "Ok."),
            "instruction_source": "sharegpt",
        }
        for i, t in enumerate(TOPICS)
    ]
    out[1]["messages"][0]["content"] = out[0]["messages"][0]["content"].upper()  # same first user turn
    out[2]["messages"][2]["content"] = f"And this: {BENCH_Q}?"  # a later turn is contaminated
    out[3]["messages"][2]["content"] = "Draw a picture of a cat sitting on a mat."  # 2nd exchange: blacklist
    out[4]["messages"][0]["content"] = "Draw a picture of a dog sitting on a mat."  # 1st exchange: blacklist
    return out


def write_jsonl(path, items):
    path.write_text("".join(json.dumps(r) + "\n" for r in items))
    return path


def lamini(*args):
    cmd = [sys.executable, "-m", "lamini_lm.cli", *map(str, args)]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=300)


def test_quality_stages_on_dialogues(tmp_path):
    src = write_jsonl(tmp_path / "in.jsonl", dialogues())
    bench = write_jsonl(tmp_path / "bench.jsonl", [{"question": BENCH_Q}])
    p = lamini("dedup", "--input", src, "--output", tmp_path / "d", "--num_proc", 1)
    assert p.returncode == 0, p.stderr
    assert p.stdout.splitlines()[0] == "dedup: 8 rows in, 7 out (exact 1)"  # first user turns; later ones differ
    p = lamini("filter", "--input", tmp_path / "d", "--output", tmp_path / "f")
    assert p.returncode == 0, p.stderr
    f = datasets.load_from_disk(str(tmp_path / "f"))
    assert len(f) == 6  # the dialogue whose first exchange is rejected is gone
    cut = [r for r in f if "cat sitting" in r["messages"][0]["content"] or len(r["messages"]) == 2]
    assert len(cut) == 1 and cut[0]["messages"][0]["content"].startswith("Summarize the history of tax law")
    assert read_manifest(tmp_path / "f").reports[-1]["details"]["cut"] == {"blacklist": 1}
    p = lamini("decontaminate", "--input", tmp_path / "f", "--output", tmp_path / "c", "--eval_files", f"sciq={bench}")
    assert p.returncode == 0, p.stderr
    c = datasets.load_from_disk(str(tmp_path / "c"))
    assert len(c) == 5 and not any(BENCH_Q in m["content"] for r in c for m in r["messages"])
    details = read_manifest(tmp_path / "c").reports[-1]["details"]
    assert details["flagged_turns_by_role"] == {"user": 1}
    p = lamini("stats", "--input", tmp_path / "c", "--output", tmp_path / "s", "--embed", "none")
    assert p.returncode == 0, p.stderr
    stats = json.loads((tmp_path / "s" / "stats.json").read_text())
    assert stats["dialogues"]["turns"] == {"1": 1, "2": 4} and stats["rows"] == 5
    assert stats["dialogues"]["words_per_turn"]["assistant"]["median"] == 3.0  # 5 x "A poem i.", 4 x "Ok."
    assert (tmp_path / "s" / "dialogue_turns.png").stat().st_size > 1000
