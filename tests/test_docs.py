"""The documentation: the site builds with no warning (a broken link or anchor fails), the
README's links reach pages and headings that exist, and the Python examples of the README and
the getting-started page run as written (on a small shop saved as ``my_shop.yaml``)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import make_shop

ROOT = Path(__file__).resolve().parents[1]
LINK = re.compile(r"\]\(([^)\s]+)\)")
PYTHON_BLOCK = re.compile(r"```python\n(.*?)```", re.S)


def test_the_site_builds_with_no_warning(tmp_path):
    done = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir",
                           str(tmp_path / "site")], cwd=ROOT, capture_output=True, text=True,
                          timeout=300, env={**os.environ, "NO_MKDOCS_2_WARNING": "1"})
    assert done.returncode == 0, done.stderr
    assert "WARNING" not in done.stderr, done.stderr
    assert (tmp_path / "site" / "reference" / "index.html").is_file()


def _anchors(page: Path) -> set[str]:
    """The heading ids MkDocs gives ``page`` (lower case, punctuation dropped, spaces '-')."""
    headings = re.findall(r"^#{1,6} (.+)$", re.sub(r"```.*?```", "", page.read_text(),
                                                    flags=re.S), re.M)
    return {re.sub(r"\s+", "-", re.sub(r"[^\w\- ]", "", h.strip().lower())) for h in headings}


def test_readme_links_reach_existing_pages_and_headings():
    links = [link for link in LINK.findall((ROOT / "README.md").read_text())
             if not link.startswith(("http://", "https://", "mailto:"))]
    assert any(link.startswith("docs/") for link in links)
    for link in links:
        target, _, anchor = link.partition("#")
        page = ROOT / target
        assert page.is_file(), link
        if anchor:
            assert anchor in _anchors(page), link


@pytest.mark.parametrize("page", ["README.md", "docs/getting-started.md"])
def test_python_examples_run_as_written(page, tmp_path, monkeypatch):
    shop = tmp_path / "shop"
    shop.mkdir()
    shutil.copy(make_shop(shop), shop / "my_shop.yaml")  # the tables sit beside it
    monkeypatch.chdir(shop)
    blocks = PYTHON_BLOCK.findall((ROOT / page).read_text())
    assert blocks
    for index, block in enumerate(blocks):
        exec(compile(block, f"{page} python example {index + 1}", "exec"), {})
    assert any(Path("models").iterdir())  # the examples saved what they say they save
