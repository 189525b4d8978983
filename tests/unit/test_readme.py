"""The README's Python snippets run as written, each alone in a fresh interpreter."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[2] / "README.md"
SNIPPETS = re.findall(r"```python\n(.*?)```", README.read_text(encoding="utf-8"), flags=re.S)


def test_the_readme_has_snippets():
    assert len(SNIPPETS) >= 8


@pytest.mark.parametrize("snippet", SNIPPETS, ids=[f"snippet-{i}" for i in range(len(SNIPPETS))])
def test_each_python_snippet_runs_alone(snippet, tmp_path):
    """A reader copies one block: it must not need a name from an earlier block."""
    ran = subprocess.run(
        [sys.executable, "-c", snippet],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert ran.returncode == 0, ran.stderr[-2000:]


def test_the_import_snippet_prints_dates():
    marathon = next(snippet for snippet in SNIPPETS if "marathon" in snippet)
    ran = subprocess.run(
        [sys.executable, "-c", marathon], capture_output=True, text=True, timeout=300, check=True
    )
    assert "Mon 8 May 2023" in ran.stdout
