"""Teacher-client throughput and CPU per request against a faulty local endpoint, with same-run baselines.

The endpoint (``tests/generation_fakes.py``, run as a separate process so its CPU is not counted) answers in
500 ms, admits 32 requests in flight (more wait in its queue), and injects 5% 429 with ``Retry-After: 1`` and 2%
500. Its ceiling is 32 / 0.5 s = 64 req/s. Measured over ``--requests`` requests (default 2,000):

* lamini-lm ``chat_completions`` (a fresh SQLite store each repeat, progress bar off);
* baseline A: ``asyncio.Semaphore(N)`` around ``openai.AsyncOpenAI`` with its own retries (max_retries=10):
  a request sleeping on a retry keeps its slot;
* baseline B: the serial loop (``openai.OpenAI``, one request after another), timed on ``--serial-sample``
  requests and extrapolated to ``--requests``.

Both run at each ``--concurrency`` N (default 32, the endpoint's slots, and 40: eight more wait in the endpoint's
queue, so a freed slot is refilled without a round trip). CPU per request is this process's CPU time (user +
system, all threads) over the requests of a run; baseline A is the bare ``openai`` async client the target compares
against (<= 1.5x).

``--endpoints K`` runs lamini-lm alone against K such endpoints at once (one comma-separated ``base_url``, each
endpoint its own process), ``--concurrency`` in flight each (64: 32 wait in each endpoint's queue), over
``--requests`` x K requests, against K x 64 req/s.

``--scale N [N ...]`` runs ``lamini-lm generate responses`` (the CLI, as its own process, ``--chunk_rows`` 10,000)
on N synthetic instructions against a faster endpoint (``--scale-latency`` 20 ms, ``--scale-slots`` 256 slots,
same fault rates; 256 in flight) and prints the run's wall time and its RSS (sampled every second by psutil: at
10%, 50% and the end of the run, and the peak). ``--prefill`` puts that share of the answers in the store first,
so that a size whose every request cannot be sent in the time at hand still runs the stage's streaming read,
claims, store look-ups and writes on all its rows (the answers come from the store instead of the endpoint).

Run: python benchmarks/bench_generation.py [--requests 2000] [--repeats 3] [--concurrency 32 40]
     python benchmarks/bench_generation.py --endpoints 4 --concurrency 64
     python benchmarks/bench_generation.py --scale 100000 --prefill 0; ... --scale 1000000 --prefill 1
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _machine import median_of, print_machine  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
LIMIT = 32 / 0.5


def start_endpoint(
    port: int, p429: float = 0.05, p500: float = 0.02, latency: float = 0.5, slots: int = 32
) -> subprocess.Popen:
    cmd = [
        sys.executable,
        str(ROOT / "tests" / "generation_fakes.py"),
        "--port",
        str(port),
        "--latency",
        str(latency),
        "--max-in-flight",
        str(slots),
        "--p429",
        str(p429),
        "--p500",
        str(p500),
        "--retry-after",
        "1",
        "--duration",
        "1800",
    ]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
    line = proc.stdout.readline()
    if not line.startswith("ready"):
        proc.kill()
        raise RuntimeError(f"endpoint did not start: {line!r}")
    return proc


def endpoint_stats(url: str) -> dict:
    import json
    import urllib.request

    with urllib.request.urlopen(url.removesuffix("/v1") + "/stats?log=1", timeout=30) as r:
        return json.load(r)


def steady_busy(log: list, start: float, end: float) -> float:
    """Share of the endpoint's 32 slots busy in the middle 80% of a run (no start-up wave, no retry tail)."""
    lo, hi = start + 0.1 * (end - start), end - 0.1 * (end - start)
    busy = sum(max(0.0, min(r, hi) - max(a, lo)) for a, r in log)
    return busy / (32 * (hi - lo))


def messages(n: int, tag: str) -> list[list[dict]]:
    return [[{"role": "user", "content": f"{tag} request {i}: write one sentence about the sea."}] for i in range(n)]


def run_lamini(url: str, n: int, tag: str, concurrency: int = 32) -> tuple[float, float, int]:
    import openai  # noqa: F401  (imported before the clock starts, as baseline A does)

    from lamini_lm.generation import TeacherConfig, chat_completions

    cfg = TeacherConfig(
        base_url=url, model="fake", concurrency=concurrency, max_retries=10, progress=False, max_tokens=64
    )
    with tempfile.TemporaryDirectory() as d:
        c0, t0 = time.process_time(), time.perf_counter()
        out = chat_completions(messages(n, tag), cfg, os.path.join(d, "store.sqlite"))
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    return wall, cpu, sum(r.ok for r in out)


def run_endpoints(urls: list[str], n: int, concurrency: int, repeats: int) -> None:
    """lamini-lm alone against several endpoints at once: requests / wall over len(urls) x the ceiling."""
    rates = []
    for r in range(repeats):
        before = [endpoint_stats(u)["slot_seconds"] for u in urls]
        wall, cpu, ok = run_lamini(",".join(urls), n, f"endpoints-{r}-{time.time_ns()}", concurrency)
        busy = [endpoint_stats(u)["slot_seconds"] - b for u, b in zip(urls, before)]
        rate = n / wall
        rates.append(rate)
        print(
            f"lamini-lm, {len(urls)} endpoints x {concurrency} in flight: {rate:6.2f} req/s "
            f"({rate / (len(urls) * LIMIT):5.1%} of {len(urls)} x {LIMIT:.0f} req/s), {ok}/{n} ok, "
            f"{1000 * cpu / n:.2f} ms CPU/request, wall {wall:.1f} s; slots busy per endpoint "
            + ", ".join(f"{b / (32 * wall):.1%}" for b in busy),
            flush=True,
        )
    med = sorted(rates)[len(rates) // 2]
    print(f"# median of {repeats}: {med:.2f} req/s = {med / (len(urls) * LIMIT):.1%} of {len(urls) * LIMIT:.0f} req/s")


def run_scale(sizes: list[int], a) -> None:
    """``generate responses`` on N instructions (a separate process): wall time and RSS over the run."""
    import json

    import psutil

    from lamini_lm.generation import TeacherConfig, request_keys
    from lamini_lm.generation.responses import response_messages
    from lamini_lm.generation.store import Store
    from lamini_lm.prompts import SYSTEM_MESSAGE, prompt_hash
    from lamini_lm.records import Response, Usage
    from lamini_lm.testing import free_port

    port = free_port()
    proc = start_endpoint(port, a.p429, a.p500, latency=a.scale_latency, slots=a.scale_slots)
    url = f"http://127.0.0.1:{port}/v1"
    print(
        f"# scale endpoint: {1000 * a.scale_latency:.0f} ms latency, {a.scale_slots} slots, {a.p429:.0%} 429, "
        f"{a.p500:.0%} 500; {a.scale_slots} in flight; prefill {a.prefill:.0%} of the answers"
    )
    try:
        for n in sizes:
            with tempfile.TemporaryDirectory(dir=a.scale_dir) as d:
                inp, store = os.path.join(d, "in.jsonl"), os.path.join(d, "teacher.sqlite")
                texts = (f"scale {n} instruction {i}: write one sentence about the sea." for i in range(n))
                with open(inp, "w") as f:
                    for t in texts:
                        f.write(json.dumps({"instruction": t}) + "\n")
                if a.prefill:
                    cfg = TeacherConfig(base_url=url, model="fake", max_tokens=64)
                    version = prompt_hash(SYSTEM_MESSAGE)
                    with Store(store) as st:
                        step = 50_000
                        for lo in range(0, int(n * a.prefill), step):
                            hi = min(int(n * a.prefill), lo + step)
                            msgs = [response_messages(f"scale {n} instruction {i}: write one sentence about the sea.")
                                    for i in range(lo, hi)]  # fmt: skip
                            for k in request_keys(msgs, cfg, prompt_version=version):
                                st.put(k, Response("Answer: prefilled", finish_reason="stop", usage=Usage(20, 5)))
                cmd = [sys.executable, "-m", "lamini_lm.cli", "generate", "responses", "--input", inp, "--output",
                       os.path.join(d, "out"), "--store", store, "--base_url", url, "--model", "fake",
                       "--max_tokens", "64", "--concurrency", str(a.scale_slots), "--max_retries", "10",
                       "--no_progress"]  # fmt: skip
                t0 = time.perf_counter()
                child = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                ps, samples = psutil.Process(child.pid), []
                while child.poll() is None:
                    try:
                        samples.append((time.perf_counter() - t0, ps.memory_info().rss))
                    except psutil.Error:
                        break
                    time.sleep(1.0)
                out, err = child.communicate()
                wall = time.perf_counter() - t0
                if child.returncode != 0:
                    print(f"N={n:,}: exit {child.returncode}: {err.strip()[-500:]}")
                    continue

                def at(share: float, wall=wall, samples=samples) -> float:
                    t = share * wall
                    return next((r for s, r in samples if s >= t), samples[-1][1]) / 2**20

                peak = max(r for _, r in samples) / 2**20
                print(
                    f"N={n:,}: wall {wall:.0f} s ({n / wall:.0f} rows/s), RSS {at(0.1):.0f} MiB at 10%, "
                    f"{at(0.5):.0f} MiB at 50%, {at(0.98):.0f} MiB at the end, peak {peak:.0f} MiB; "
                    f"{out.strip().splitlines()[-1][:160]}",
                    flush=True,
                )
    finally:
        proc.terminate()
        proc.wait(10)


def run_semaphore(url: str, n: int, tag: str, concurrency: int = 32) -> tuple[float, float, int]:
    import openai

    async def go() -> int:
        client = openai.AsyncOpenAI(base_url=url, api_key="none", max_retries=10)
        sem = asyncio.Semaphore(concurrency)

        async def one(m):
            async with sem:
                r = await client.chat.completions.create(model="fake", messages=m, max_tokens=64)
                return r.choices[0].message.content

        try:
            results = await asyncio.gather(*(one(m) for m in messages(n, tag)), return_exceptions=True)
        finally:
            await client.close()
        return sum(isinstance(r, str) for r in results)

    c0, t0 = time.process_time(), time.perf_counter()
    ok = asyncio.run(go())
    return time.perf_counter() - t0, time.process_time() - c0, ok


def run_serial(url: str, n: int, tag: str) -> tuple[float, float, int]:
    import openai

    client = openai.OpenAI(base_url=url, api_key="none", max_retries=10)
    c0, t0 = time.process_time(), time.perf_counter()
    ok = 0
    for m in messages(n, tag):
        ok += bool(client.chat.completions.create(model="fake", messages=m, max_tokens=64).choices[0].message.content)
    return time.perf_counter() - t0, time.process_time() - c0, ok


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--requests", type=int, default=2000)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--serial-sample", type=int, default=40)
    p.add_argument(
        "--concurrency",
        type=int,
        nargs="+",
        default=[32, 40],
        help="requests in flight, for lamini-lm and the semaphore baseline alike (the endpoint admits 32)",
    )
    p.add_argument("--p429", type=float, default=0.05, help="share answered 429 (0: fault-free ceiling)")
    p.add_argument("--p500", type=float, default=0.02, help="share of requests answered 500")
    p.add_argument("--no-baseline", action="store_true", help="skip the semaphore+openai arm (long runs)")
    p.add_argument("--endpoints", type=int, default=1, help="endpoints (fault servers) one run spreads over")
    p.add_argument("--scale", type=int, nargs="+", help="instructions for `generate responses` runs (RSS, time)")
    p.add_argument("--scale-latency", type=float, default=0.02)
    p.add_argument("--scale-slots", type=int, default=256)
    p.add_argument("--scale-dir", default=None, help="where the scale runs write (default: the temp folder)")
    p.add_argument("--prefill", type=float, default=0.0, help="share of a scale run's answers stored beforehand")
    a = p.parse_args()
    print_machine(("openai", "datasets", "aiohttp"))
    from lamini_lm.testing import free_port

    if a.scale:
        run_scale(a.scale, a)
        return
    if a.endpoints > 1:
        ports = [free_port() for _ in range(a.endpoints)]
        procs = [start_endpoint(port, a.p429, a.p500) for port in ports]
        print(
            f"# {a.endpoints} endpoints: 500 ms latency, 32 slots each, {a.p429:.0%} 429 (Retry-After 1 s), "
            f"{a.p500:.0%} 500; ceiling {a.endpoints} x {LIMIT:.0f} req/s"
        )
        try:
            for c in a.concurrency:
                run_endpoints([f"http://127.0.0.1:{p}/v1" for p in ports], a.requests * a.endpoints, c, a.repeats)
        finally:
            for proc in procs:
                proc.terminate()
                proc.wait(10)
        return

    port = free_port()
    endpoint = start_endpoint(port, a.p429, a.p500)
    url = f"http://127.0.0.1:{port}/v1"
    print(
        f"# endpoint: 500 ms latency, 32 in flight, {a.p429:.0%} 429 (Retry-After 1 s), {a.p500:.0%} 500; "
        f"ceiling {LIMIT:.0f} req/s"
    )
    try:
        figures = {}
        for c in a.concurrency:
            print(f"# concurrency {c}")
            arms = (("lamini-lm", run_lamini), ("semaphore+openai retries", run_semaphore))
            for name, fn in arms[:1] if a.no_baseline else arms:
                runs = []

                def once(fn=fn, name=name, runs=runs, c=c) -> float:
                    before = endpoint_stats(url)
                    t0 = time.monotonic()  # CLOCK_MONOTONIC is shared with the endpoint process
                    wall, cpu, ok = fn(url, a.requests, f"{name}-{c}-{len(runs)}", concurrency=c)
                    t1 = time.monotonic()
                    after = endpoint_stats(url)
                    steady = steady_busy(after["slot_log"][len(before["slot_log"]) :], t0, t1)
                    busy = after["slot_seconds"] - before["slot_seconds"]
                    held = busy / max(1, after["slot_answers"] - before["slot_answers"])
                    runs.append((wall, cpu, ok))
                    rate = a.requests / wall
                    print(
                        f"{name:>26}: {rate:6.2f} req/s ({rate / LIMIT:5.1%} of limit), {ok}/{a.requests} ok, "
                        f"{1000 * cpu / a.requests:.2f} ms CPU/request, wall {wall:.1f} s; endpoint slots busy "
                        f"{busy / (32 * wall):.1%} of the run ({steady:.1%} in its middle 80%), "
                        f"an answer held its slot {1000 * held:.0f} ms",
                        flush=True,
                    )
                    return rate

                rate, _ = median_of(once, a.repeats)
                cpu = sorted(1000 * c / a.requests for _, c, _ in runs)[len(runs) // 2]
                figures[name, c] = (rate, cpu)
        wall, cpu, ok = run_serial(url, a.serial_sample, "serial")
        serial_rate = a.serial_sample / wall
        print(
            f"{'serial loop':>26}: {serial_rate:6.2f} req/s over a {a.serial_sample}-request sample "
            f"(extrapolated to {a.requests}: {a.requests / serial_rate:.0f} s), "
            f"{1000 * cpu / a.serial_sample:.2f} ms CPU/request"
        )
        print(f"# medians of {a.repeats}")
        for c in a.concurrency:
            ours = figures["lamini-lm", c]
            if a.no_baseline:
                print(f"concurrency {c}: lamini-lm {ours[0]:.2f} req/s = {ours[0] / LIMIT:.1%} of the 64 req/s limit")
                continue
            sem = figures["semaphore+openai retries", c]
            print(
                f"concurrency {c}: lamini-lm {ours[0]:.2f} req/s = {ours[0] / LIMIT:.1%} of the 64 req/s limit "
                f"(target >= 97%); semaphore baseline {sem[0]:.2f} req/s = {sem[0] / LIMIT:.1%} "
                f"({ours[0] / sem[0]:.2f}x); serial loop {serial_rate:.2f} req/s ({ours[0] / serial_rate:.1f}x)"
            )
            print(
                f"  client CPU per request: lamini-lm {ours[1]:.2f} ms, bare openai async client {sem[1]:.2f} ms "
                f"= {ours[1] / sem[1]:.2f}x (target <= 1.5x)"
            )
    finally:
        endpoint.terminate()
        endpoint.wait(10)


if __name__ == "__main__":
    main()
