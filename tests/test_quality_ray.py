"""--engine ray: the dedup and decontamination stages on a local Ray with 2 CPUs keep exactly the local engine's rows
(same rows, same order) and report the same counts. Skipped when Ray is not installed (the ``ray`` extra)."""

from __future__ import annotations

import json
import random

import pytest

ray = pytest.importorskip("ray")

from lamini_lm.artifacts import read_manifest  # noqa: E402
from lamini_lm.io import load_table  # noqa: E402
from lamini_lm.quality import DecontaminateConfig, DedupConfig, StageIO, run_decontaminate, run_dedup  # noqa: E402
from test_quality_dedup import planted  # noqa: E402

BENCH_Q = "Which of the following statements best describes the function of mitochondria inside eukaryotic cells"


@pytest.fixture(scope="module")
def local_ray():
    ray.init(num_cpus=2, include_dashboard=False, logging_level="ERROR")
    yield
    ray.shutdown()


def corpus(tmp_path, n_base: int):
    texts, _, _ = planted(n_base, seed=11)
    rng = random.Random(3)
    rows = [{"instruction": t, "response": f"answer {i}", "instruction_source": rng.choice(["alpaca", "p3"])}
            for i, t in enumerate(texts)]  # fmt: skip
    for k in range(0, len(rows), 997):
        rows[k]["instruction"] = f"Answer this: {BENCH_Q}?"  # contaminated (and exact duplicates of each other)
    path = tmp_path / "in.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    bench = tmp_path / "bench.jsonl"
    bench.write_text(json.dumps({"question": BENCH_Q}) + "\n")
    return path, bench, len(rows)


def both_engines(tmp_path, n_base: int, batch_rows: int):
    src, bench, n = corpus(tmp_path, n_base)
    out = {}
    for engine in ("local", "ray"):
        d, c = tmp_path / f"dedup-{engine}", tmp_path / f"clean-{engine}"
        cfg = DedupConfig(engine=engine, batch_rows=batch_rows, num_proc=2)
        dedup_report = run_dedup(StageIO(input=str(src), output=str(d)), cfg)
        decon = DecontaminateConfig(engine=engine, eval_files=[f"sciq={bench}"], batch_rows=batch_rows)
        decon_report = run_decontaminate(StageIO(input=str(d), output=str(c)), decon)
        out[engine] = (dedup_report, decon_report, load_table(d), load_table(c))
    return n, out


def check_identical(n, out):
    (dl, cl, dedup_l, clean_l), (dr, cr, dedup_r, clean_r) = out["local"], out["ray"]
    assert dl.removed["exact"] > 0 and dl.removed["rouge"] > 0 and cl.removed["contaminated"] > 0
    assert dedup_r["instruction"][:] == dedup_l["instruction"][:]  # the same rows, in the same order
    assert clean_r.to_list() == clean_l.to_list()
    assert (dr.rows_in, dr.rows_out, dr.removed, dr.removed_by_source) == (
        dl.rows_in, dl.rows_out, dl.removed, dl.removed_by_source)  # fmt: skip
    assert dr.details["duplicates"] == dl.details["duplicates"] and dr.rows_in == n
    assert (cr.rows_out, cr.removed, cr.removed_by_source) == (cl.rows_out, cl.removed, cl.removed_by_source)
    assert cr.details["tasks"] == cl.details["tasks"]


@pytest.mark.slow
def test_ray_engine_keeps_the_local_engines_rows(tmp_path, local_ray):
    n, out = both_engines(tmp_path, 4000, batch_rows=1000)  # ~5K rows, several batches and blocks
    check_identical(n, out)
    manifest = read_manifest(tmp_path / "dedup-ray")
    assert manifest.config["engine"] == "ray" and manifest.rows == out["ray"][0].rows_out
    assert sorted(p.name for p in (tmp_path / "dedup-ray" / "data").iterdir())[0].startswith("train-00000-of-")


@pytest.mark.slow
def test_ray_engine_at_50k_rows(tmp_path, local_ray):
    n, out = both_engines(tmp_path, 41_000, batch_rows=10_000)
    check_identical(n, out)
    assert n > 50_000
