"""The documentation: the site builds with no warning (a broken link or anchor fails), the
README's links reach pages and headings that exist, every ``salesfusion`` command of their
shell examples parses (its subcommands and options exist as written), the Python examples
of the README and the getting-started page run as written (on a small shop saved as
``my_shop.yaml``), and the extending page's backbone, fusion and modality, defined by its
examples alone, train a model."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import polars as pl
import pytest
from typer.testing import CliRunner

from salesfusion.cli import app
from salesfusion.components import BACKBONES, ENCODERS, FUSIONS, MODALITIES
from salesfusion.models.registry import create_model
from tests.conftest import make_shop

ROOT = Path(__file__).resolve().parents[1]
LINK = re.compile(r"\]\(([^)\s]+)\)")
PYTHON_BLOCK = re.compile(r"```python\n(.*?)```", re.S)
SHELL_BLOCK = re.compile(r"```(?:bash|sh|shell)\n(.*?)```", re.S)
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def documented_commands(text: str) -> list[str]:
    """The ``salesfusion`` command lines of ``text``'s shell examples, continuations joined."""
    return [line.strip() for block in SHELL_BLOCK.findall(text)
            for line in block.replace("\\\n", " ").splitlines()
            if line.strip().startswith("salesfusion ")]


def parse_error(command: str) -> str | None:
    """Why the CLI would refuse ``command`` as written (an unknown subcommand or option), or
    None: the command is run with ``--help`` added, which parses every argument and stops
    before any work. Optional parts written in brackets count as given."""
    args = shlex.split(command.replace("[", "").replace("]", ""), comments=True)[1:]
    result = CliRunner().invoke(app, [*args, "--help"])
    return None if result.exit_code == 0 else (result.stderr or result.output).strip()


def test_the_site_builds_with_no_warning(tmp_path):
    done = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir",
                           str(tmp_path / "site")], cwd=ROOT, capture_output=True, text=True,
                          timeout=300, env={**os.environ, "NO_MKDOCS_2_WARNING": "1"})
    assert done.returncode == 0, done.stderr
    assert "WARNING" not in done.stderr, done.stderr
    assert (tmp_path / "site" / "reference" / "index.html").is_file()


def test_every_documented_command_parses():
    commands = [(page.name, c) for page in PAGES for c in documented_commands(page.read_text())]
    assert len(commands) > 30
    refused = {f"{page}: {c}": error for page, c in commands if (error := parse_error(c))}
    assert refused == {}


def test_the_command_check_finds_what_the_cli_would_refuse():
    text = "```bash\nsalesfusion backtest --modelz naive --out r \\\n  --horizon 2\n```\n"
    [command] = documented_commands(text)
    assert "--horizon 2" in command and "No such option: --modelz" in parse_error(command)
    assert "No such command" in parse_error("salesfusion backtests --models naive")
    assert "No such option" in parse_error("salesfusion data validate my_shop.yaml --fre W")
    assert parse_error("salesfusion data validate my_shop.yaml  # check it") is None


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
