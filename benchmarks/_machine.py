"""Machine facts every benchmark prints first, so a figure is never quoted without the machine it came from."""

from __future__ import annotations

import importlib.metadata
import os
import platform
import statistics
import time
from collections.abc import Callable, Sequence

__all__ = ["machine_facts", "median_of", "print_machine"]


def machine_facts(packages: Sequence[str] = ("torch", "transformers", "datasets")) -> dict[str, str]:
    facts = {
        "cpu": _cpu_model(),
        "cores": str(os.cpu_count()),
        "memory_gib": f"{os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') / 2**30:.1f}",
        "python": platform.python_version(),
        "platform": platform.platform(),
    }
    for p in packages:
        try:
            facts[p] = importlib.metadata.version(p)
        except importlib.metadata.PackageNotFoundError:
            facts[p] = "not installed"
    return facts


def print_machine(packages: Sequence[str] = ("torch", "transformers", "datasets")) -> None:
    print("# machine: " + ", ".join(f"{k}={v}" for k, v in machine_facts(packages).items()))
    print(f"# date: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}")
    load = os.getloadavg()
    print(
        f"# load average at start: {load[0]:.2f} (1 min), {load[1]:.2f} (5 min) on {os.cpu_count()} cores; "
        "other jobs on the machine skew absolute seconds, so compare the ratios measured side by side"
    )


def median_of(fn: Callable[[], float], repeats: int) -> tuple[float, list[float]]:
    """Run ``fn`` (which returns a measurement) ``repeats`` times; return the median and all values."""
    values = [fn() for _ in range(repeats)]
    return statistics.median(values), values


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"
