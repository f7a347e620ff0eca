"""The README's two snippets for pointing a user's own app at the emulator run as written, with
only the emulator's address changed to this run's."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[2] / "README.md"
SECTION = "## Your own app against the emulator"


def snippets() -> list[str]:
    text = README.read_text()
    section = text[text.index(SECTION) :].split("\n## ", 1)[0]
    return re.findall(r"```python\n(.*?)```", section, re.DOTALL)


def test_the_readme_has_one_snippet_per_client() -> None:
    found = snippets()
    assert len(found) == 2
    assert "office365" in found[0] and "msgraph" in found[1]


@pytest.mark.parametrize("index", [0, 1], ids=["office365-rest-python-client", "msgraph-sdk"])
def test_a_readme_snippet_runs_against_the_emulator(index: int, emulator_url: str, tmp_path: Path) -> None:
    """Each snippet as a user's script: a fresh interpreter, nothing of this project imported."""
    script = tmp_path / "app.py"
    script.write_text(snippets()[index].replace('"http://127.0.0.1:7072"', repr(emulator_url)))
    ran = subprocess.run(
        [sys.executable, str(script)], cwd=tmp_path, capture_output=True, text=True, timeout=120, check=False
    )
    assert ran.returncode == 0, ran.stderr
    expected = ["Written by office365-rest-python-client", "hello.txt"][index]
    assert expected in ran.stdout
