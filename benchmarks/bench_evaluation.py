"""lamini-lm evaluate vs plain lm_eval.simple_evaluate: same scores to the last digit, at most 5% more CPU time.

Both sides score the same tiny GPT-2 on the same local tasks (shaped like the paper's, from
``lamini_lm.evaluation.demo_tasks``) with the Alpaca wrapper:

* baseline: ``lm_eval.simple_evaluate`` with lm-eval's own ``HFLM`` on task YAMLs whose ``doc_to_text`` carries the
  Alpaca template (the wrapper done the plain lm-eval way);
* lamini-lm: :func:`lamini_lm.evaluation.evaluate_model` on the plain tasks (the wrapper applied by
  ``WrappedHFLM``), including family detection and the results summary.

Each repeat times model loading plus evaluation for both, alternating which goes first. Prints every repeat, the
median process CPU time per request (the figure the target is on: a shared machine's load moves wall time, not
the work done), the wall-time medians, their ratios, and checks every metric and per-request log-likelihood is
identical.

    python benchmarks/bench_evaluation.py --repeats 5 --rows 200
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _machine import print_machine  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=5, help="timed runs of each side (median quoted)")
    parser.add_argument("--rows", type=int, default=200, help="examples per task")
    parser.add_argument("--batch_size", type=int, default=16)
    parser.add_argument(
        "--tasks", nargs="+", default=["demo_choice", "demo_entailment", "demo_cloze", "demo_completion"]
    )
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1: steadier on a shared machine)")
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
    logging.disable(logging.WARNING)  # lm-eval's per-task notices would drown the figures

    import datasets
    import lm_eval
    import torch
    from lm_eval.models.huggingface import HFLM
    from lm_eval.tasks import TaskManager

    from lamini_lm.evaluation import evaluate_model
    from lamini_lm.evaluation.demo_tasks import write_demo_tasks
    from lamini_lm.prompts import ALPACA_WRAPPER
    from lamini_lm.testing import build_tiny_gpt2, build_tiny_tokenizer

    datasets.disable_progress_bars()
    torch.set_num_threads(args.threads)
    print_machine(("torch", "transformers", "datasets", "lm_eval"))
    tmp = Path(tempfile.mkdtemp(prefix="bench_evaluation_"))
    model = build_tiny_gpt2(tmp / "gpt2", tokenizer=build_tiny_tokenizer(tmp / "tok"))
    plain = write_demo_tasks(tmp / "plain", n=args.rows)
    wrapped = write_demo_tasks(tmp / "wrapped", n=args.rows, template=ALPACA_WRAPPER)
    seeds = {"random_seed": 0, "numpy_random_seed": 0, "torch_random_seed": 0, "fewshot_random_seed": 0}
    print(f"# model: tiny GPT-2 from config; tasks: {args.tasks}, {args.rows} rows each, batch {args.batch_size}")

    def baseline():
        start, cpu = time.perf_counter(), time.process_time()
        lm = HFLM(pretrained=str(model), backend="causal", device="cpu", batch_size=args.batch_size)
        raw = lm_eval.simple_evaluate(
            model=lm,
            tasks=args.tasks,
            task_manager=TaskManager(include_path=str(wrapped), include_defaults=False),
            bootstrap_iters=0,
            log_samples=True,
            **seeds,
        )
        return time.perf_counter() - start, time.process_time() - cpu, raw["results"], raw["samples"]

    def ours():
        start, cpu = time.perf_counter(), time.process_time()
        res = evaluate_model(
            model,
            args.tasks,
            include_path=plain,
            include_defaults=False,
            device="cpu",
            batch_size=args.batch_size,
            bootstrap_iters=0,
            log_samples=True,
        )
        return time.perf_counter() - start, time.process_time() - cpu, res["lm_eval"]["results"], res["samples"]

    ours()  # warm-up: imports, dataset caches
    baseline()
    t_base, t_ours, c_base, c_ours, identical = [], [], [], [], True
    for r in range(args.repeats):
        order = (baseline, ours) if r % 2 == 0 else (ours, baseline)
        out = {f.__name__: f() for f in order}
        t_base.append(out["baseline"][0])
        t_ours.append(out["ours"][0])
        c_base.append(out["baseline"][1])
        c_ours.append(out["ours"][1])
        for task in args.tasks:
            a, b = out["baseline"][2][task], out["ours"][2][task]
            for k in [k for k in a if k.endswith(",none") and "_stderr" not in k]:
                if a[k] != b[k]:
                    identical = False
                    print(f"MISMATCH {task} {k}: baseline {a[k]!r} vs lamini-lm {b[k]!r}")
            resps_a = [row["filtered_resps"] for row in out["baseline"][3][task]]
            resps_b = [row["filtered_resps"] for row in out["ours"][3][task]]
            if resps_a != resps_b:
                identical = False
                print(f"MISMATCH {task}: per-request log-likelihoods differ")
        print(
            f"repeat {r}: wall baseline {t_base[-1]:.3f}s lamini-lm {t_ours[-1]:.3f}s | "
            f"cpu baseline {c_base[-1]:.3f}s lamini-lm {c_ours[-1]:.3f}s"
        )
    last = out["ours"][2]
    for task in args.tasks:
        scores = [
            f"{k.split(',')[0]}={float(v)!r}"
            for k, v in last[task].items()
            if k.endswith(",none") and "_stderr" not in k
        ]
        print(f"  {task}: " + ", ".join(scores))
    import statistics

    mb, mo = statistics.median(t_base), statistics.median(t_ours)
    cb, co = statistics.median(c_base), statistics.median(c_ours)
    requests = sum(len(row["arguments"]) for task in args.tasks for row in out["ours"][3][task])
    per_b, per_o = cb / requests * 1e3, co / requests * 1e3
    print(
        f"median CPU time per request ({requests} requests): baseline {per_b:.3f} ms, lamini-lm {per_o:.3f} ms, "
        f"ratio {co / cb:.3f} (target <= 1.05)"
    )
    print(f"median wall time: baseline {mb:.3f}s, lamini-lm {mo:.3f}s, ratio {mo / mb:.3f}")
    # Each repeat runs both sides back to back, so a per-repeat ratio cancels slow drifts of the machine's load.
    paired_cpu = statistics.median(o / b for o, b in zip(c_ours, c_base))
    paired = statistics.median(o / b for o, b in zip(t_ours, t_base))
    print(f"median of per-repeat ratios: CPU {paired_cpu:.3f}, wall {paired:.3f}")
    print(f"scores and per-request log-likelihoods identical to the last digit: {identical}")
    return 0 if identical else 1


if __name__ == "__main__":
    sys.exit(main())
