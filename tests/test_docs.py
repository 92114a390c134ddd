"""The documentation: the site builds with no warning (a broken link or anchor fails), the
README's links reach pages and headings that exist, the Python examples of the README and the
getting-started page run as written (on a small shop saved as ``my_shop.yaml``), and the
extending page's backbone, fusion and modality, defined by its examples alone, train a model."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import polars as pl
import pytest

from salesfusion.components import BACKBONES, ENCODERS, FUSIONS, MODALITIES
from salesfusion.models.registry import create_model
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


@pytest.fixture
def extensions():
    """The extending page's examples, run in order; their registrations undone afterwards."""
    for block in PYTHON_BLOCK.findall((ROOT / "docs" / "extending.md").read_text()):
        exec(compile(block, "docs/extending.md", "exec"), {})
    yield
    for registry, name in ((BACKBONES, "mean_future"), (FUSIONS, "scaled_sum"),
                           (MODALITIES, "colour"), (ENCODERS, "hex_rgb")):
        registry.unregister(name)


def test_the_extending_examples_train_a_model(extensions, shop_panel, tmp_path):
    colours = pl.Series(["#ff0000", "#00ff00", "#0000ff"] * shop_panel.items.height)
    panel = replace(shop_panel, items=shop_panel.items.with_columns(
        colours.head(shop_panel.items.height).alias("colour")))
    model = create_model("multimodal", backbone="mean_future",
                         fusion={"name": "scaled_sum", "params": {"scale": 0.5}},
                         modalities=["text", "colour", "static"], epochs=1, lookback=8,
                         hidden=8, fusion_dim=8, horizon=3, accelerator="cpu",
                         cache_dir=str(tmp_path / "cache")).fit(panel)
    assert model.network.content_modalities == ["text", "colour"]
    assert type(model.network.fusion).name == "scaled_sum" and model.network.fusion.scale == 0.5
    assert model.predict(3)["y_pred"].is_finite().all()
