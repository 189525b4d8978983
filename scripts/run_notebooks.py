"""Execute the notebooks in place, so they are committed with their outputs (``make notebooks``).

Each notebook under ``notebooks/`` (or each path given) runs top to bottom in a fresh
``python3`` kernel, offline: ``OPENAI_API_KEY`` is removed (fake models answer),
``HF_HUB_OFFLINE=1``, and ``PYTHONHASHSEED=0`` so set and hash orders do not change outputs.
Stream outputs are merged per cell and no execution timings are recorded, so a second run
writes the same text. A notebook that raises is not written and the command exits 1.

``tests/test_notebooks.py`` uses the same functions to re-execute each notebook and compare
its text outputs (:func:`text_outputs`, after :func:`normalise`) with the committed ones.

Usage::

    python scripts/run_notebooks.py [notebooks/04_tuning_recall.ipynb ...]
"""

from __future__ import annotations

import os
import re
import sys
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
#: What legitimately differs between two runs, and what it is replaced by.
_VARYING = (
    (re.compile(r"0x[0-9a-fA-F]{6,}"), "0x..."),  # memory addresses in reprs
    (re.compile(r"/tmp/[\w./-]+"), "/tmp/..."),  # temporary files
)


def notebook_paths() -> list[Path]:
    """Every notebook of the project, in order."""
    return sorted(NOTEBOOKS.glob("*.ipynb"))


def kernel_environment() -> dict[str, str]:
    """The environment a notebook runs in: this one, offline, with fixed hashing.

    ``PYTHONPATH`` entries are made absolute: the kernel runs in the notebook's folder.
    """
    environment = {k: v for k, v in os.environ.items() if k != "OPENAI_API_KEY"}
    environment.update(HF_HUB_OFFLINE="1", PYTHONHASHSEED="0")
    if environment.get("PYTHONPATH"):
        entries = environment["PYTHONPATH"].split(os.pathsep)
        environment["PYTHONPATH"] = os.pathsep.join(str(Path(e).resolve()) for e in entries if e)
    return environment


def execute(path: Path) -> nbformat.NotebookNode:
    """Run the notebook at ``path`` top to bottom and return it with its outputs.

    Raises:
        CellExecutionError: A cell raised (the message shows the cell and the traceback).
    """
    notebook = nbformat.read(path, as_version=4)
    client = NotebookClient(
        notebook,
        timeout=600,
        kernel_name="python3",
        record_timing=False,
        coalesce_streams=True,
        resources={"metadata": {"path": str(path.parent)}},
    )
    client.execute(env=kernel_environment())
    return notebook


def normalise(text: str) -> str:
    """``text`` with memory addresses and temporary paths replaced by placeholders."""
    for pattern, replacement in _VARYING:
        text = pattern.sub(replacement, text)
    return text


def text_outputs(notebook: nbformat.NotebookNode) -> list[list[str]]:
    """Each code cell's outputs as normalised text: streams, plain-text results, errors.

    An image counts as its MIME type (``"<image/png>"``): its bytes may differ between
    matplotlib versions while the figure is the same.
    """
    cells = []
    for cell in notebook.cells:
        if cell.cell_type != "code":
            continue
        texts = []
        for output in cell.get("outputs", []):
            kind = output.get("output_type")
            if kind == "stream":
                texts.append(f"{output['name']}: {output['text']}")
            elif kind == "error":
                texts.append(f"error: {output['ename']}: {output['evalue']}")
            else:
                data = output.get("data", {})
                texts.extend(f"<{mime}>" for mime in sorted(data) if mime.startswith("image/"))
                if "text/plain" in data:
                    texts.append(f"{kind}: {data['text/plain']}")
        cells.append([normalise(text) for text in texts])
    return cells


def main(argv: list[str] | None = None) -> int:
    """Execute the notebooks given (default: all) and write them with their outputs."""
    paths = [Path(arg) for arg in argv] if argv else notebook_paths()
    failed = False
    total = time.perf_counter()
    for path in paths:
        started = time.perf_counter()
        try:
            notebook = execute(path)
        except CellExecutionError as exc:
            failed = True
            print(f"{path.name}: not written, a cell raised:\n{exc}", file=sys.stderr)
            continue
        nbformat.write(notebook, path)
        print(
            f"{path.name}: {time.perf_counter() - started:.0f} s, "
            f"{path.stat().st_size / 1024:.0f} KB"
        )
    print(f"all: {time.perf_counter() - total:.0f} s")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
