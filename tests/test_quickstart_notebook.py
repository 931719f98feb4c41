"""docs/quickstart.ipynb runs top to bottom (offline, tiny models), so it never rots."""

from __future__ import annotations

from pathlib import Path

import pytest

NOTEBOOK = Path(__file__).resolve().parents[1] / "docs" / "quickstart.ipynb"


@pytest.mark.integration  # ~50 s: a kernel, a served teacher, training and lm-eval; kept in CI so it never rots
def test_quickstart_notebook_executes(tmp_path, monkeypatch):
    import nbformat
    from nbclient import NotebookClient

    monkeypatch.setenv("LAMINI_OFFLINE", "1")
    nb = nbformat.read(NOTEBOOK, as_version=4)
    NotebookClient(nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}).execute()
    out = tmp_path / "quickstart-notebook"
    assert (out / "dataset" / "README.md").is_file()
    assert (out / "student" / "model.safetensors").is_file()
    assert (out / "student" / "README.md").read_text().startswith("---\n")
    assert (out / "eval" / "results.json").is_file()
    printed = "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []))
    assert "| Average |" in printed  # the evaluation table was shown
