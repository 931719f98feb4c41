"""Peak memory of preparing the `instructions` builder from a generation run of N rows, against the same rows
gathered in a list and turned into a table with `Dataset.from_list` (the obvious hand-written way).

The builder streams rows through its Arrow writer, so its peak RSS should stay flat as N grows; the baseline's
grows with N. Each measurement runs in a fresh child process (peak RSS = `VmHWM` of that child), so the
figures do not leak into each other; the "floor" is a child that only imports datasets and opens the input.

Usage:
    python benchmarks/bench_builders_memory.py                  # 100K and 1M rows, 3 repeats
    python benchmarks/bench_builders_memory.py --rows 200000 --repeats 1
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(__file__))
from _machine import median_of, print_machine  # noqa: E402

CHILD = {
    "floor": """
import datasets
ds = datasets.load_from_disk(RUN)
n = len(ds)
""",
    "builder": """
from lamini_lm.builders import Instructions
b = Instructions(config_name="all", generated=[RUN], cache_dir=CACHE)
b.download_and_prepare()
n = b.info.splits["train"].num_examples
""",
    "from_list": """
import datasets
from lamini_lm.records import lamini_features
ds = datasets.load_from_disk(RUN)
rows = []
for batch in ds.select_columns(["instruction", "response", "instruction_source", "error"]).iter(batch_size=1000):
    columns = (batch["instruction"], batch["response"], batch["instruction_source"], batch["error"])
    for ins, resp, src, err in zip(*columns):
        if err is None and resp is not None:
            rows.append({"instruction": ins, "response": resp, "instruction_source": src})
table = datasets.Dataset.from_list(rows, features=lamini_features())
n = len(table)
""",
}
# Two readings of the child's own memory (not ru_maxrss: after fork+exec Linux carries the parent's into the child):
# VmHWM, the peak resident set including file pages of the memory-mapped input (reclaimable page cache), and the
# peak of RssAnon (the heap: what a list of rows costs), sampled every 20 ms by a thread.
PROLOGUE = """
import threading, time
def _status(key):
    return next(int(ln.split()[1]) for ln in open("/proc/self/status") if ln.startswith(key + ":"))
_peak_anon = [0]
def _poll():
    while True:
        _peak_anon[0] = max(_peak_anon[0], _status("RssAnon"))
        time.sleep(0.02)
threading.Thread(target=_poll, daemon=True).start()
"""
EPILOGUE = """
import json
_peak_anon[0] = max(_peak_anon[0], _status("RssAnon"))
out = {"rows": n, "peak_rss_mib": _status("VmHWM") / 1024, "peak_anon_mib": _peak_anon[0] / 1024}
print("RESULT " + json.dumps(out))
"""


def make_run(path: str, rows: int) -> None:
    """A generation run of `rows` rows, written the way generation writes it (save_to_disk), with flat memory."""
    import datasets

    from lamini_lm.records import GENERATION_COLUMNS, InstructionSource, generation_features

    datasets.disable_progress_bars()
    sources = [s.value for s in InstructionSource]

    def gen(n):
        for i in range(n):
            row = dict.fromkeys(GENERATION_COLUMNS)
            row.update(
                instruction=f"Instruction number {i}: explain why the sky looks blue at noon and red at dusk.",
                response=f"Response {i}. " + "Rayleigh scattering favours short wavelengths over long ones. " * 3,
                instruction_source=sources[i % len(sources)],
                seed_ids=[f"seed_task_{i % 175}"],
                topics=[],
                prompt_tokens=40,
                completion_tokens=60,
                cost_usd=0.0001,
                teacher_model="gpt-3.5-turbo",
                error="rate limited" if i % 1000 == 999 else None,
            )
            if row["error"]:
                row["response"] = None
            yield row

    ds = datasets.Dataset.from_generator(
        gen, gen_kwargs={"n": rows}, features=generation_features(), cache_dir=path + ".gen_cache"
    )
    ds.save_to_disk(path)


def measure(kind: str, run: str, workdir: str) -> dict:
    cache = tempfile.mkdtemp(dir=workdir)  # a fresh cache: the builder really prepares every time
    code = f"RUN = {run!r}\nCACHE = {cache!r}\n" + PROLOGUE + CHILD[kind] + EPILOGUE
    env = dict(os.environ, HF_DATASETS_CACHE=cache, HF_HUB_OFFLINE="1", HF_DATASETS_DISABLE_PROGRESS_BARS="1")
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - start
    if proc.returncode != 0:
        raise RuntimeError(f"{kind} child failed:\n{proc.stderr[-3000:]}")
    line = next(ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT "))
    return {**json.loads(line.removeprefix("RESULT ")), "seconds": seconds}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    print_machine(("datasets", "pyarrow"))
    with tempfile.TemporaryDirectory() as workdir:
        for rows in args.rows:
            run = os.path.join(workdir, f"run_{rows}")
            make_run(run, rows)
            results = {}
            for kind in ("floor", "builder", "from_list"):
                samples: list[dict] = []

                def once(kind=kind, samples=samples, run=run):
                    samples.append(measure(kind, run, workdir))
                    return samples[-1]["peak_anon_mib"]

                anon, anons = median_of(once, args.repeats)
                hwm = sorted(s["peak_rss_mib"] for s in samples)[len(samples) // 2]
                secs = sorted(s["seconds"] for s in samples)[len(samples) // 2]
                results[kind] = anon
                print(
                    f"rows={rows:>9,}  {kind:<9}  peak anon RSS median {anon:7.1f} MiB "
                    f"(repeats {', '.join(f'{p:.1f}' for p in anons)})  peak RSS incl. mapped input {hwm:7.1f} MiB  "
                    f"wall {secs:6.1f} s  rows out {samples[-1]['rows']:,}"
                )
            above = {k: results[k] - results["floor"] for k in ("builder", "from_list")}
            print(
                f"rows={rows:>9,}  anon above the floor: builder {above['builder']:.1f} MiB, "
                f"from_list {above['from_list']:.1f} MiB; from_list / builder = "
                f"{above['from_list'] / max(above['builder'], 1e-9):.1f}x"
            )


if __name__ == "__main__":
    main()
