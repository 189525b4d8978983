"""Every notebook runs top to bottom, offline, and its committed outputs are the ones it gives.

The notebooks are committed with their outputs so that a reader on GitHub sees results and
plots; ``make notebooks`` (scripts/run_notebooks.py) rewrites them. Here each one is executed
again, the same way, and its text outputs are compared with the committed ones after
normalising what legitimately varies (memory addresses, temporary paths).
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import nbformat
import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "run_notebooks.py"
_spec = importlib.util.spec_from_file_location("run_notebooks", SCRIPT)
assert _spec is not None
assert _spec.loader is not None
run_notebooks = importlib.util.module_from_spec(_spec)
sys.modules["run_notebooks"] = run_notebooks
_spec.loader.exec_module(run_notebooks)

NOTEBOOKS = run_notebooks.notebook_paths()
#: Committed notebooks stay small enough to read on GitHub and to diff.
MAX_BYTES = 300 * 1024


def test_there_are_notebooks():
    assert len(NOTEBOOKS) >= 5


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_every_code_cell_is_committed_with_its_outputs_and_the_notebook_stays_small(path: Path):
    notebook = nbformat.read(path, as_version=4)
    code = [cell for cell in notebook.cells if cell.cell_type == "code"]
    assert all(cell.get("execution_count") for cell in code), f"run `make notebooks` ({path.name})"
    assert any(cell.get("outputs") for cell in code)
    assert path.stat().st_size < MAX_BYTES


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_the_notebook_runs_top_to_bottom_and_gives_its_committed_outputs(path: Path):
    committed = nbformat.read(path, as_version=4)
    fresh = run_notebooks.execute(path)  # raises CellExecutionError if a cell fails
    expected = run_notebooks.text_outputs(committed)
    got = run_notebooks.text_outputs(fresh)
    stale = [
        f"cell {i}:\n  committed: {old!r}\n  now:       {new!r}"
        for i, (old, new) in enumerate(zip(expected, got, strict=True))
        if old != new
    ]
    assert not stale, f"{path.name} is stale, run `make notebooks`:\n" + "\n".join(stale)


def test_no_cell_prints_a_warning_in_red():
    warned = [
        f"{path.name} cell {i}: {text[:200]}"
        for path in NOTEBOOKS
        for i, texts in enumerate(run_notebooks.text_outputs(nbformat.read(path, as_version=4)))
        for text in texts
        if text.startswith("stderr: ") and "Warning" in text
    ]
    assert warned == []


def test_outputs_are_normalised_where_they_legitimately_vary():
    text = "<Memory at 0x7f3a2b1c9d40> stored in /tmp/tmpab12_x/memory.db"
    assert run_notebooks.normalise(text) == "<Memory at 0x...> stored in /tmp/..."


def _stderr_of_cell(tmp_path: Path, source: str) -> str:
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(source)])
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3"}
    path = tmp_path / "cell.ipynb"
    nbformat.write(notebook, path)
    texts = run_notebooks.text_outputs(run_notebooks.execute(path))[0]
    return "".join(text for text in texts if text.startswith("stderr: "))


def test_loading_the_model_in_a_notebook_prints_no_tqdm_warning(tmp_path):
    # What transformers does on import when the model is loaded or exported: without the fix
    # (first cell), a kernel without ipywidgets prints TqdmWarning in red.
    assert "TqdmWarning" in _stderr_of_cell(tmp_path, "import transformers.utils.logging")
    quiet = (
        "from langchain_hybrid_memory._model_cache import quiet_progress_bars\n"
        "with quiet_progress_bars():\n"
        "    import transformers.utils.logging"
    )
    assert _stderr_of_cell(tmp_path, quiet) == ""
