"""The module map of docs/architecture.md, held by tests: who may import whom, and what stays light.

Data flows one way (sources -> generation -> quality -> builders -> train -> evaluation -> publishing), and so do
imports: a stage may import the shared foundation and the stages before it, never one after it. Imports inside
functions count too (they are how heavy packages are deferred, not a way around the map).
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src" / "lamini_lm"

# The shared foundation: every stage may import these; they import no stage.
FOUNDATION = {
    "lamini_lm",
    "lamini_lm.errors",
    "lamini_lm.io",
    "lamini_lm.artifacts",
    "lamini_lm.config",
    "lamini_lm.records",
    "lamini_lm.prompts",
    "lamini_lm.paper",
    "lamini_lm.families",
    "lamini_lm.inference",
    "lamini_lm.sources",
}
# Stages in pipeline order; a module belongs to the first prefix that matches.
STAGES = [
    "lamini_lm.generation",
    "lamini_lm.quality",
    "lamini_lm.builders",
    "lamini_lm.train",
    "lamini_lm.evaluation",
    "lamini_lm.publishing",
    "lamini_lm.quickstart",
]
# Modules outside the order: the CLI lists every stage, the test kit builds models for any of them.
OUTSIDE = {"lamini_lm.cli", "lamini_lm.testing", "lamini_lm.recipes", "lamini_lm.templates"}


def _modules() -> dict[str, Path]:
    out = {}
    for path in SRC.rglob("*.py"):
        rel = path.relative_to(SRC.parent).with_suffix("")
        out[".".join(p for p in rel.parts if p != "__init__")] = path
    for path in (ROOT / "builders").glob("*.py"):
        out["lamini_lm.builders" + ("" if path.stem == "__init__" else f".{path.stem}")] = path
    return out


def _imports(name: str, path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found = set()
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: resolve against the package
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            found.add(mod)
            found |= {f"{mod}.{a.name}" for a in node.names}
    return found


def _stage(module: str) -> int | None:
    for i, prefix in enumerate(STAGES):
        if module == prefix or module.startswith(prefix + "."):
            return i
    return None


MODULES = _modules()


@pytest.mark.parametrize("name", sorted(MODULES))
def test_imports_follow_the_pipeline_order(name):
    mine = _stage(name)
    for imported in _imports(name, MODULES[name]):
        if not imported.startswith("lamini_lm") or imported not in MODULES:
            continue
        theirs = _stage(imported)
        if name in FOUNDATION:
            assert theirs is None or imported in FOUNDATION, f"foundation module {name} imports stage {imported}"
        elif mine is not None and theirs is not None:
            assert theirs <= mine, f"{name} imports {imported}, a later stage"


def test_only_the_teacher_client_imports_openai():
    users = sorted(n for n, p in MODULES.items() if any(i.split(".")[0] == "openai" for i in _imports(n, p)))
    assert users == ["lamini_lm.generation.client"]


def test_every_module_is_on_the_map():
    for name in MODULES:
        assert name in FOUNDATION or name in OUTSIDE or _stage(name) is not None, f"{name} is not on the map"


def test_cli_help_imports_no_heavy_package():
    code = (
        "import sys, contextlib, io\n"
        "from lamini_lm.cli import main\n"
        "with contextlib.redirect_stdout(io.StringIO()):\n"
        "    main([])\n"
        "print(sorted(m for m in ('torch', 'transformers', 'datasets', 'openai', 'lm_eval') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
