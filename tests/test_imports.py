"""Start-up: the commands that need no neural network never import torch (or lightning,
scikit-learn, Ray, LightGBM), because registries import a component's module only when that
component is asked for; and the registries' index of which module registers which built-in
component is complete and right."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import make_shop

HEAVY = ("torch", "lightning", "sklearn", "ray", "lightgbm")
# Runs the CLI in this process, then reports which heavy libraries it imported.
RUN_CLI = """
import json, sys
from salesfusion.cli import main
sys.argv = ["salesfusion", *sys.argv[1:]]
try:
    main()
except SystemExit as stop:
    code = stop.code
else:
    code = 0
print(json.dumps({"code": code, "heavy": [m for m in HEAVY if m in sys.modules]}))
""".replace("HEAVY", repr(HEAVY))


def _cli(args: list[str], cwd: Path) -> dict:
    done = subprocess.run([sys.executable, "-c", RUN_CLI, *args], cwd=cwd, capture_output=True,
                          text=True, timeout=300, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("args", [
    ["--help"],
    ["data", "validate", "{spec}"],
    ["backtest", "--spec", "{spec}", "--models", "naive,moving_average", "--horizon", "2",
     "--windows", "2", "--out", "{out}"],
], ids=["help", "data-validate", "naive-backtest"])
def test_commands_without_a_network_do_not_import_torch(args, tmp_path):
    spec = make_shop(tmp_path)
    given = [a.format(spec=spec, out=tmp_path / "run") for a in args]
    ran = _cli(given, tmp_path)
    assert ran["code"] == 0, ran
    assert ran["heavy"] == []


INDEX_CHECK = """
import importlib, json
from salesfusion import components
found = {}
for registry in (components.MODELS, components.ENCODERS):
    wrong = []
    for name, module in registry._index.items():
        importlib.import_module(module)
        if name not in registry._entries:
            wrong.append(f"{name}: not registered by {module}")
    unindexed = sorted(set(registry.names()) - set(registry._index))
    found[registry.kind] = {"wrong": wrong, "unindexed": unindexed}
print(json.dumps(found))
"""


def test_the_registry_index_names_the_module_of_every_built_in_component():
    done = subprocess.run([sys.executable, "-c", INDEX_CHECK], capture_output=True, text=True,
                          timeout=300, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    assert done.returncode == 0, done.stderr
    found = json.loads(done.stdout.strip().splitlines()[-1])
    for kind, result in found.items():
        assert result == {"wrong": [], "unindexed": []}, kind
