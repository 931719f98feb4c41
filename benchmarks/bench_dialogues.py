"""Endpoint utilisation of ``generate dialogues`` against the fault server of ``bench_generation.py``.

The endpoint (a separate process) answers in 500 ms with 32 slots (ceiling 64 req/s) and injects 5% 429 with
``Retry-After: 1`` and 2% 500 (``--p429 0 --p500 0``: fault-free). A run plays ``--dialogues`` dialogues of
``--turns`` assistant turns (2 x turns - 1 requests each), each dialogue as its own sequence (its next request queued
when its last is answered; turns of different dialogues interleave); reported: requests / wall time over the
ceiling, and the busy share of the endpoint's slots over the whole run (its tail included), next to plain
``chat_completions`` on the same number of single requests.

Run: python benchmarks/bench_dialogues.py [--dialogues 400] [--turns 3] [--concurrency 40]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _machine import print_machine  # noqa: E402
from bench_generation import LIMIT, endpoint_stats, run_lamini, start_endpoint  # noqa: E402


def busy_share(log: list, start: float, end: float) -> float:
    busy = sum(max(0.0, min(r, end) - max(a, start)) for a, r in log)
    return busy / (32 * (end - start))


def run_dialogues(url: str, n: int, turns: int, concurrency: int) -> tuple[float, int, int]:
    # imported before the clock starts, as openai is for the single requests: a one-off second (datasets reads
    # the instructions), not the endpoint's utilisation
    import datasets  # noqa: F401
    import openai  # noqa: F401

    from lamini_lm.generation import TeacherConfig
    from lamini_lm.generation.dialogues import generate_dialogues

    cfg = TeacherConfig(base_url=url, model="fake", concurrency=concurrency, max_retries=10, progress=False,
                        max_tokens=64)  # fmt: skip
    rows = [f"bench {time.time_ns()} dialogue {i}: tell me about the sea." for i in range(n)]
    with tempfile.TemporaryDirectory() as d:
        t0 = time.perf_counter()
        ds = generate_dialogues(rows, config=cfg, store=os.path.join(d, "s.sqlite"), turns=(turns, turns))
        wall = time.perf_counter() - t0
    return wall, n * (2 * turns - 1), sum(ds["complete"])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dialogues", type=int, default=400)
    p.add_argument("--turns", type=int, default=3)
    p.add_argument("--concurrency", type=int, default=40)
    p.add_argument("--p429", type=float, default=0.05)
    p.add_argument("--p500", type=float, default=0.02)
    p.add_argument("--port", type=int, default=8741)
    p.add_argument("--repeats", type=int, default=1, help="runs of each; the medians are printed last")
    a = p.parse_args()
    print_machine()
    proc = start_endpoint(a.port, a.p429, a.p500)
    url = f"http://127.0.0.1:{a.port}/v1"
    try:
        medians: dict[str, list[float]] = {"dialogues": [], "single": []}
        for _ in range(a.repeats):
            requests = a.dialogues * (2 * a.turns - 1)
            for name in ("dialogues", "single"):
                before = endpoint_stats(url)
                t0 = time.monotonic()
                if name == "dialogues":
                    wall, requests, complete = run_dialogues(url, a.dialogues, a.turns, a.concurrency)
                else:
                    wall, _, complete = run_lamini(url, requests, f"single-{time.time_ns()}", a.concurrency)
                t1 = time.monotonic()
                log = endpoint_stats(url)["slot_log"][len(before["slot_log"]) :]
                result = {
                    "requests": requests,
                    "ok": complete,
                    "wall_s": round(wall, 2),
                    "req_per_s": round(requests / wall, 2),
                    "of_limit": round(requests / wall / LIMIT, 3),
                    "slots_busy": round(busy_share(log, t0, t1), 3),
                }
                medians[name].append(result["of_limit"])
                print(name, json.dumps(result), flush=True)
        for name, values in medians.items():
            print(f"# {name}: median of_limit {sorted(values)[len(values) // 2]:.3f} over {len(values)} runs {values}")
    finally:
        proc.kill()


if __name__ == "__main__":
    main()
