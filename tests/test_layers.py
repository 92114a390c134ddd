"""The layers point one way: data -> scoring -> features -> encoders -> models -> evaluation -> CLI.

Every module of ``src/salesfusion`` is parsed with ``ast`` (nothing is imported) and each of
its imports of another ``salesfusion`` package is checked against the allowed directions:

- ``data`` imports only ``data``, ``errors`` and ``registry`` (and third-party packages);
- ``scoring`` (metrics, their scales, selection by a metric) imports only those and ``data``;
- ``features`` imports none of encoders, models, training, evaluation, datasets, cli;
- ``encoders`` imports none of models, training, evaluation, datasets, cli;
- ``datasets`` imports neither evaluation nor cli;
- ``models`` imports none of evaluation, tuning, experiments, explain, serving, cli (the
  rolling backtest on the base interface is ``models.backtest``; its metrics are ``scoring``'s),
  and no module of ``models`` imports a constant (an UPPER_CASE
  name) from ``training``;
- nothing but ``cli`` imports ``cli``.

Every import counts, wherever it stands: at module level, inside a function, or under
``if TYPE_CHECKING``. A lazy import defers a dependency, it does not remove it, so it may not
point the wrong way either.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"
PACKAGE = "salesfusion"

# layer -> layers it must not import (None: it may import only the listed ones)
FORBIDDEN = {
    "features": {"encoders", "models", "training", "evaluation", "datasets", "cli"},
    "encoders": {"models", "training", "evaluation", "datasets", "cli"},
    "datasets": {"evaluation", "cli"},
    "models": {"evaluation", "tuning", "experiments", "explain", "serving", "cli"},
}
DATA_MAY_IMPORT = {"data", "errors", "registry"}
SCORING_MAY_IMPORT = {*DATA_MAY_IMPORT, "scoring"}


def _module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imports(tree: ast.Module, module: str, is_package: bool) -> list[tuple[str, list[str], int]]:
    """(imported module, names taken from it, line) for every import in the tree."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.extend((alias.name, [], node.lineno) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: resolve against the importing module's package
                package = module.split(".")
                package = package if is_package else package[:-1]
                package = package[:len(package) - node.level + 1]
                base = ".".join([*package, base] if base else package)
            names = [alias.name for alias in node.names]
            if base == PACKAGE:  # ``from salesfusion import cli``: the names are the layers
                found.extend((f"{base}.{name}", [], node.lineno) for name in names)
            else:
                found.append((base, names, node.lineno))
    return found


def _layer(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if parts[0] == PACKAGE and len(parts) > 1 else None


def violations(root: Path) -> list[str]:
    """Every import under ``root`` (a folder holding the ``salesfusion`` package) that points
    the wrong way, as ``module:line imports target``."""
    found = []
    for path in sorted((root / PACKAGE).rglob("*.py")):
        module = _module_name(path, root)
        source = _layer(module)
        tree = ast.parse(path.read_text(), filename=str(path))
        for target, names, line in _imports(tree, module, path.name == "__init__.py"):
            layer = _layer(target)
            if layer is None or layer == source:
                continue
            where = f"{module}:{line} imports {target}"
            if layer == "cli":
                found.append(f"{where} (only cli imports cli)")
            elif source == "data" and layer not in DATA_MAY_IMPORT:
                found.append(f"{where} (data imports only {sorted(DATA_MAY_IMPORT)})")
            elif source == "scoring" and layer not in SCORING_MAY_IMPORT:
                found.append(f"{where} (scoring imports only {sorted(SCORING_MAY_IMPORT)})")
            elif layer in FORBIDDEN.get(source or "", set()):
                found.append(f"{where} ({source} must not import {layer})")
            if source == "models" and layer == "training":
                constants = [n for n in names if n.isupper()]
                if constants:
                    found.append(f"{where} constant(s) {constants} (models must not take "
                                 "constants from training)")
    return found


def test_every_import_points_down_the_layers():
    assert violations(SRC) == []


def _defined_private(tree: ast.Module) -> set[str]:
    """The private names a module defines: its functions and methods, and the attributes it
    assigns (``self._x = ...``, ``model._x = ...``)."""
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names.add(node.name)
        elif isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store):
            names.add(node.attr)
    return {n for n in names if n.startswith("_") and not n.startswith("__")}


def encapsulation_breaches(root: Path) -> list[str]:
    """Reads of another module's private attribute (``obj._x`` where this module defines no
    ``_x``; ``self``, ``cls`` and ``super()`` are the class's own), and ``isinstance`` /
    ``issubclass`` tests against a model class (a name ending in ``Forecaster``) outside
    ``models``, as ``module:line what``."""
    found = []
    for path in sorted((root / PACKAGE).rglob("*.py")):
        module = _module_name(path, root)
        tree = ast.parse(path.read_text(), filename=str(path))
        own = _defined_private(tree)
        for node in ast.walk(tree):
            if (isinstance(node, ast.Attribute) and node.attr.startswith("_")
                    and not node.attr.startswith("__") and node.attr not in own
                    and not (isinstance(node.value, ast.Name) and node.value.id in ("self", "cls"))
                    and not (isinstance(node.value, ast.Call) and isinstance(node.value.func,
                                                                               ast.Name)
                             and node.value.func.id == "super")):
                found.append(f"{module}:{node.lineno} reads {ast.unparse(node)}")
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
                    and node.func.id in ("isinstance", "issubclass") and len(node.args) == 2
                    and _layer(module) != "models"
                    and any(isinstance(n, ast.Name | ast.Attribute)
                            and ast.unparse(n).endswith("Forecaster")
                            for n in ast.walk(node.args[1]))):
                found.append(f"{module}:{node.lineno} tests the class: {ast.unparse(node)} (ask "
                             "a capability of the model instead)")
    return found


def test_no_private_attribute_read_across_modules_and_no_model_class_tests():
    assert encapsulation_breaches(SRC) == []


@pytest.mark.parametrize(("path", "source", "expected"), [
    ("explain/x.py", "def f(model):\n    return model._booster\n", "reads model._booster"),
    ("cli/x.py", "def f(model):\n    return isinstance(model, MultimodalForecaster)\n",
     "tests the class"),
])
def test_the_encapsulation_check_finds_each_breach(tmp_path, path, source, expected):
    target = tmp_path / PACKAGE / path
    target.parent.mkdir(parents=True)
    target.write_text(source)
    found = encapsulation_breaches(tmp_path)
    assert len(found) == 1 and expected in found[0], found


def test_the_encapsulation_check_allows_a_module_its_own_privates(tmp_path):
    target = tmp_path / PACKAGE / "models" / "base.py"
    target.parent.mkdir(parents=True)
    target.write_text("class Forecaster:\n    def _load(self):\n        self._fitted = True\n"
                      "    @classmethod\n    def load(cls):\n        model = cls()\n"
                      "        model._load()\n        return model._fitted\n")
    assert encapsulation_breaches(tmp_path) == []


@pytest.mark.parametrize(("path", "source", "expected"), [
    ("data/panel.py", "from salesfusion.features.calendar import offset\n",
     "data imports only"),
    ("data/panel.py", "def f():\n    from ..features import fx\n", "data imports only"),
    ("features/fx.py", "import salesfusion.models.base\n", "features must not import models"),
    ("encoders/base.py", "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n"
     "    from salesfusion.training import windows\n", "encoders must not import training"),
    ("datasets/x.py", "from salesfusion.evaluation.backtest import metrics_table\n",
     "datasets must not import evaluation"),
    ("models/base.py", "def backtest():\n    from salesfusion.evaluation.backtest import x\n",
     "models must not import evaluation"),
    ("scoring/metrics.py", "from salesfusion.models.base import Forecaster\n",
     "scoring imports only"),
    ("models/net.py", "from salesfusion.training.windows import CALENDAR_WIDTH\n",
     "constants from training"),
    ("evaluation/run.py", "from salesfusion.cli.common import console\n", "only cli imports cli"),
])
def test_the_check_finds_each_kind_of_reversed_import(tmp_path, path, source, expected):
    target = tmp_path / PACKAGE / path
    target.parent.mkdir(parents=True)
    target.write_text(source)
    found = violations(tmp_path)
    assert len(found) == 1 and expected in found[0], found


def test_the_check_allows_the_designed_directions(tmp_path):
    package = tmp_path / PACKAGE
    (package / "models").mkdir(parents=True)
    (package / "models" / "base.py").write_text(
        "from salesfusion.data.panel import Panel\n"
        "from salesfusion.training.windows import build_windows\n"
        "from salesfusion.scoring.metrics import evaluate\n"
        "def backtest():\n    from salesfusion.models.backtest import run_backtest\n")
    (package / "cli").mkdir()
    (package / "cli" / "main.py").write_text("from salesfusion.cli.common import app\n")
    assert violations(tmp_path) == []
