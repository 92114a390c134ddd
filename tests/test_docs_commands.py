"""Every ``salesfusion`` command of the docs' shell examples (README.md and docs/*.md, as
``tests.test_docs.documented_commands`` extracts them) runs end to end through the CLI, exits 0
and writes what it says it writes.

- A command added to a page is picked up: the test is parametrised over the extracted
  commands, in the pages' order. Optional parts written in brackets run as given.
- They run in one working folder per test worker, holding the files the docs assume the user
  has (``USER_FILES``: the shop ``my_shop.yaml`` / ``shop.yaml``, ``my_model.yaml``,
  ``plan.csv``, ``keys.txt``, experiment files, all small).
- A command reading a folder another command writes (``models/lgbm``, ``runs/demo``...) has it
  made first: by the first documented command whose ``--out`` it is, else by the command
  ``PREREQUISITES`` gives. A command runs once per folder; a later test reuses its result.
- Each command runs in this process through ``CliRunner``; ``serve`` runs as a process on a
  free port, is asked for its health and models, and is stopped with SIGTERM.
- What runs differently from the docs, and why, is in ``SUBSTITUTIONS`` and nowhere else. A
  command that cannot run here as written (a bundled dataset without a stand-in, a subcommand
  without a check in ``CHECKS``, a database URL) fails its test until it has an entry there.
- Commands with ``--backend ray`` run on one local Ray session of 2 CPUs that this module
  starts and stops (the ``ray`` xdist group: one local cluster at a time), which the command
  uses as the running session (``--ray-address auto`` joins the running cluster)."""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
import traceback
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import NamedTuple

import polars as pl
import pytest
import yaml
from typer.testing import CliRunner

from salesfusion.cli import DEMO_MODELS, app
from tests.test_docs import PAGES, ROOT, documented_commands

API_KEY = "docs-commands-key-0123456789"
SYNTHETIC_STAND_IN = {"n_items": 24, "n_weeks": 40, "image_size": 16, "seed": 1}
FAST_PRESETS = ("msrl_bigru", "lstm", "gru", "multimodal")  # written as presets/NAME.yaml


class Swap(NamedTuple):
    """How a documented command is run here: each key of ``changes``, a fragment of the command
    as documented, is replaced by its value (``{port}``: a free port); and why."""

    changes: dict[str, str]
    why: str


DATA = ("the bundled datasets take minutes per model on 2 cores: the stand-in keeps the "
        "dataset's name, spec and protocol on a few series")
FAST = ("the bundled preset trains for minutes: presets/NAME.yaml is the same preset, file "
        "format and model with 1 epoch, at most 256 windows and epochs 1-2 in its search space")
RAY = ("runs as written on the module's local Ray session (2 CPUs), which the command uses as "
       "the running cluster")

# Everything that runs differently from the docs. A key is a documented command as
# ``normalise`` writes it (comment dropped, brackets dropped, spaces collapsed), or
# "--dataset NAME" for every command naming that bundled dataset. A key that no longer matches
# any documented command fails the suite (test_every_substitution_still_matches_the_docs).
SUBSTITUTIONS: dict[str, Swap] = {
    # Bundled datasets, in every command (the stand-ins are replaced in salesfusion.datasets'
    # DATASETS, so the commands, the demo included, run as written on them):
    "--dataset online_retail": Swap({}, DATA + ": the bundled Online Retail transactions of 45 "
                                    "products (15 sold from the start, 30 launched in 2011) in "
                                    "the UK, Germany and France, with the bundled items, "
                                    "markets and FX tables and the OR-weekly protocol"),
    "--dataset synthetic": Swap({}, DATA + f": synthetic(**{SYNTHETIC_STAND_IN})"),
    "salesfusion demo --out runs/demo": Swap({}, "runs as written: its data is the "
                                             "online_retail stand-in above"),
    # Cost options cut:
    "salesfusion train --preset msrl_bigru --dataset synthetic --out models/msrl": Swap(
        {"--preset msrl_bigru": "--preset presets/msrl_bigru.yaml"}, FAST),
    "salesfusion tune --preset msrl_bigru --dataset online_retail --searcher msrl --budget 20 "
    "--out runs/tune-msrl": Swap(
        {"--preset msrl_bigru": "--preset presets/msrl_bigru.yaml", "--budget 20": "--budget 2"},
        FAST + "; 2 trainings, not 20"),
    "salesfusion tune --preset lstm --spec my_shop.yaml --searcher optuna --budget 50 "
    "--time-budget 3600 --out runs/tune-lstm": Swap(
        {"--preset lstm": "--preset presets/lstm.yaml", "--budget 50": "--budget 2"},
        FAST + "; 2 trainings, not 50"),
    "salesfusion tune --preset gru --dataset online_retail --searcher random --backend ray "
    "--jobs 4 --ray-address auto --out runs/tune-ray": Swap(
        {"--preset gru": "--preset presets/gru.yaml", "--out": "--budget 2 --out"},
        FAST + "; 2 trainings, not the default 20; " + RAY),
    "salesfusion tune --preset gru --spec shop.yaml --backend ray --jobs 4 "
    "--out runs/tune-shop-ray": Swap(
        {"--preset gru": "--preset presets/gru.yaml", "--out": "--budget 2 --out"},
        FAST + "; 2 trainings, not the default 20; " + RAY),
    "salesfusion train --preset multimodal --spec shop.yaml --backend ray --workers 2 "
    "--out runs/mm-ddp": Swap({"--preset multimodal": "--preset presets/multimodal.yaml"},
                              FAST + "; " + RAY),
    # Ray, otherwise as written:
    "salesfusion backtest --spec shop.yaml --models naive,imapa,lightgbm --backend ray "
    "--workers 2 --out runs/shop-ray": Swap({}, RAY),
    "salesfusion encode --spec shop.yaml --modality image --encoder efficientnet_lite0 "
    "--backend ray --workers 4 --ray-address auto": Swap({}, RAY),
    "salesfusion experiment my_experiment.yaml --out runs/my_experiment --backend ray "
    "--mlflow": Swap({}, RAY),
    # The port: 8000 may be taken on a test machine.
    "salesfusion serve --model models/lgbm --api-keys keys.txt": Swap(
        {"--api-keys keys.txt": "--api-keys keys.txt --port {port}"}, "a free port, not 8000"),
    "salesfusion serve --model runs/models/multimodal --model runs/models/lightgbm "
    "--backtest runs/demo --explain runs/explain/or_mm_explain --port 8000": Swap(
        {"--port 8000": "--port {port}"}, "a free port, not 8000; the key is the block's "
        "SALESFUSION_API_KEYS (exported above the command)"),
}

# Folders documented commands read that no documented command writes (with --out), and the
# command that makes each (any bundled dataset in it is the stand-in).
PREREQUISITES = {
    "models/ets": "salesfusion train --preset ets --spec my_shop.yaml --out models/ets",
    "models/launch": "salesfusion train --preset lightgbm_launch --spec my_shop.yaml "
                     "--horizon 8 --out models/launch",
    # docs/serving.md: "the LightGBM and multimodal models trained by `salesfusion train
    # --preset lightgbm|multimodal --dataset online_retail`".
    "runs/models/multimodal": "salesfusion train --preset multimodal --dataset online_retail "
                              "--out runs/models/multimodal",
    "runs/models/lightgbm": "salesfusion train --preset lightgbm --dataset online_retail "
                            "--out runs/models/lightgbm",
    "runs/explain/or_mm_explain": "salesfusion explain --model runs/models/multimodal "
                                  "--dataset online_retail --out runs/explain/or_mm_explain",
}

TINY_NET = {"epochs": 1, "max_train_windows": 256, "accelerator": "cpu"}


def normalise(command: str) -> str:
    """``command`` without its comment, optional-part brackets and repeated spaces."""
    return shlex.join(shlex.split(command.replace("[", "").replace("]", ""), comments=True))


COMMANDS = [(page.relative_to(ROOT).as_posix(), normalise(command))
            for page in PAGES for command in documented_commands(page.read_text())]


def _subcommand(args: list[str]) -> str:
    return " ".join(args[:2]) if args[0] == "data" else args[0]


def _values(args: list[str], option: str) -> list[str]:
    return [args[i + 1] for i, a in enumerate(args[:-1]) if a == option]


def _value(args: list[str], option: str) -> str | None:
    found = _values(args, option)
    return found[-1] if found else None


# ---- the files the docs assume the user has ----------------------------------------------

def _my_shop(folder: Path) -> None:
    """``my_shop.yaml`` and ``shop.yaml`` (one spec): a synthetic shop with images, planned
    prices and promotions, events, launch dates and market maturity, selling in GB, DE, BR and
    TH, whose items table also holds the never-sold products A and B (launch.md)."""
    from salesfusion.datasets.synthetic import generate

    generate(folder, n_items=24, n_weeks=40, image_size=16, seed=0, covariates=True)
    gb = pl.col("market").replace("UK", "GB")
    for name in ("sales.parquet", "events.parquet"):
        pl.read_parquet(folder / name).with_columns(gb).write_parquet(folder / name)
    pl.read_csv(folder / "markets.csv").with_columns(gb).write_csv(folder / "markets.csv")
    items = pl.read_parquet(folder / "items.parquet")
    new = items.head(2).with_columns(
        pl.Series("item_id", ["A", "B"]), pl.Series("title", ["Premium wool scarf",
                                                              "Basic cotton mug"]),
        pl.col("launch_date").max() + pl.duration(weeks=45))
    pl.concat([items, new]).write_parquet(folder / "items.parquet")
    for name in ("my_shop.yaml", "shop.yaml"):
        shutil.copy(folder / "spec.yaml", folder / name)
    (folder / "spec.yaml").unlink()


def _plan(folder: Path) -> str:
    """A what-if plan (planners.md): item S00000 at half price on promotion in GB for the first
    two weeks after the data."""
    sales = pl.read_parquet(folder / "sales.parquet").filter(
        (pl.col("item_id") == "S00000") & (pl.col("market") == "GB"))
    last, price = sales["week"].max(), sales["price"][-1]
    return pl.DataFrame({"timestamp": [last + timedelta(weeks=k) for k in (1, 2)],
                         "item_id": "S00000",
                         "market": "GB", "price": price / 2, "promo": 1.0}).write_csv()


def _online_retail(folder: Path) -> Path:
    """The online_retail stand-in's spec: the bundled spec and its items, markets and FX
    tables, its transactions cut to 45 products in three countries (SUBSTITUTIONS)."""
    from salesfusion.datasets.online_retail import DATA_DIR

    spec = yaml.safe_load((DATA_DIR / "online_retail.yaml").read_text())
    sales = pl.read_parquet(DATA_DIR / "online_retail.parquet").filter(
        pl.col("Country").is_in(["United Kingdom", "Germany", "France"]))
    first = sales.group_by("StockCode").agg(pl.col("InvoiceDate").min(), pl.len()).sort(
        "len", "StockCode", descending=True)

    def launched(start: tuple, end: tuple, n: int) -> list[str]:
        return first.filter(pl.col("InvoiceDate").is_between(
            pl.datetime(*start), pl.datetime(*end), closed="left"))["StockCode"].head(n).to_list()

    # Sold from the start; launched for training, validation (8 weeks before the benchmarks
    # page's cutoff, 2011-08-01) and test.
    keep = (launched((2010, 1, 1), (2011, 1, 1), 15) + launched((2011, 1, 15), (2011, 6, 1), 12)
            + launched((2011, 6, 1), (2011, 8, 1), 8) + launched((2011, 8, 1), (2011, 10, 1), 10))
    sales.filter(pl.col("StockCode").is_in(keep)).write_parquet(
        folder / "sales.parquet")
    spec["sales"]["path"] = "sales.parquet"
    for role in ("items", "markets", "fx"):
        spec[role]["path"] = str(DATA_DIR / spec[role]["path"])
    (folder / "online_retail.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    return folder / "online_retail.yaml"


def _fast_preset(name: str) -> str:
    """The bundled preset ``name`` with 1 epoch, at most 256 windows, epochs 1-2 searched."""
    from salesfusion.models.presets import PRESET_DIR

    path = PRESET_DIR / f"{name}.yaml"
    preset = yaml.safe_load(path.read_text()) if path.is_file() else {
        "name": name, "seed_paper": "none", "description": f"the registered {name} model",
        "deviations": "none", "params": {}}  # a registered model, not a bundled preset
    preset["params"].update(TINY_NET)
    if "epochs" in preset.get("search_space", {}):
        preset["search_space"]["epochs"] = {"type": "int", "low": 1, "high": 2,
                                            "actions": [1, 2]}
    return yaml.safe_dump(preset, sort_keys=False)


def _experiment(name: str, description: str, dataset: dict, models: list[dict],
                **more: object) -> str:
    return yaml.safe_dump({"name": name, "description": description, "datasets": [dataset],
                           "evaluation": {"kind": "backtest", "horizon": 4, "windows": 2},
                           "trials": 1, "models": models, **more}, sort_keys=False)


SYNTHETIC = {"spec": "../synthetic/spec.yaml", "label": "synthetic"}  # cells run in processes

# The files the docs assume the user has: path -> the text written there (a function of the
# working folder where it is made from the data).
USER_FILES: dict[str, str | Callable[[Path], str]] = {
    "keys.txt": API_KEY + "\n",
    "my_model.yaml": "model: lightgbm\nparams: {max_rounds: 100}\n",
    "plan.csv": _plan,
    "my_experiment.yaml": lambda _: _experiment(
        "my_experiment", "naive against LightGBM on my shop",
        {"spec": "my_shop.yaml", "label": "my_shop"},
        [{"name": "naive", "baseline": True}, {"name": "lightgbm",
                                                "params": {"max_rounds": 50}}]),
    # The ready-made experiments, cut to a few cells (the shipped files run with --smoke in
    # tests/test_experiment.py::test_the_ready_made_experiments_run_end_to_end):
    "experiments/seed004_ablation.yaml": lambda _: _experiment(
        "seed004_ablation", "seed 004's ablation grid, one axis, on a small synthetic shop",
        SYNTHETIC, [{"name": "seasonal_naive", "baseline": True},
                    {"name": "resnet_biattn_bilstm", "params": {
                        **TINY_NET, "hidden": 16, "image_encoder_fallback": None}}],
        ablation={"model": "resnet_biattn_bilstm", "axes": {"attention": {
            "on": {"fusion": "bidirectional"}, "off": {"fusion": "concat"}}}}),
    "experiments/seed000_comparison.yaml": lambda _: _experiment(
        "seed000_comparison", "msrl_bigru tuned by msrl against a baseline", SYNTHETIC,
        [{"name": "seasonal_naive", "baseline": True},
         {"name": "msrl_bigru", "params": TINY_NET,
          "tune": {"searcher": "msrl", "budget": 2}}]),
}


# ---- running a command -------------------------------------------------------------------

@dataclass
class Ran:
    args: list[str]
    exit_code: int
    output: str
    answers: dict[str, tuple[int, object]] = field(default_factory=dict)  # serve's replies


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _get(url: str, key: str | None = None) -> tuple[int, object]:
    request = urllib.request.Request(url, headers={"X-API-Key": key} if key else {})
    with urllib.request.urlopen(request, timeout=10) as response:
        body = response.read()
        kind = response.headers.get("content-type", "")
        return response.status, json.loads(body) if "json" in kind else body.decode()


def _serve(args: list[str], folder: Path) -> Ran:
    """``salesfusion serve`` as a process: its answers to health, models and the dashboard,
    then its exit code after SIGTERM. Without ``--api-keys``, the key is in
    ``SALESFUSION_API_KEYS``, as the docs export it."""
    env = {k: v for k, v in os.environ.items() if k != "SALESFUSION_API_KEYS"}
    if "--api-keys" not in args:
        env["SALESFUSION_API_KEYS"] = API_KEY
    process = subprocess.Popen([sys.executable, "-m", "salesfusion.cli", *args], cwd=folder,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               env=env)
    base = f"http://127.0.0.1:{_value(args, '--port')}"
    answers: dict[str, tuple[int, object]] = {}
    try:
        deadline = time.monotonic() + 120
        while not answers and process.poll() is None and time.monotonic() < deadline:
            with contextlib.suppress(OSError):
                answers["/v1/health"] = _get(base + "/v1/health")
            time.sleep(0.2)
        if answers:
            for path in ("/v1/models", "/dashboard"):
                answers[path] = _get(base + path, API_KEY)
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
        try:
            stdout, stderr = process.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            stdout, stderr = process.communicate()
    # uvicorn re-raises the SIGTERM it handled once it has shut down.
    code = 0 if answers and process.returncode in (0, -signal.SIGTERM) else (
        process.returncode or 1)
    return Ran(args, code, stdout + stderr, answers)


def _invoke(args: list[str], folder: Path) -> Ran:
    with contextlib.chdir(folder):
        result = CliRunner().invoke(app, args)
    output = result.output
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        output += "".join(traceback.format_exception(result.exception))
    return Ran(args, result.exit_code, output)


class Workspace:
    """The working folder, and each command run in it (once)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.ran: dict[str, Ran] = {}
        self.writers = dict(PREREQUISITES)
        for _, command in reversed(COMMANDS):  # the first documented writer wins
            out = _value(shlex.split(command), "--out")
            if out is not None:
                self.writers[out] = command

    def args(self, command: str) -> list[str]:
        swap = SUBSTITUTIONS.get(command, Swap({}, ""))
        for fragment, replacement in swap.changes.items():
            assert command.count(fragment) == 1, f"substitution {fragment!r} of: {command}"
            command = command.replace(fragment, replacement)
        args = shlex.split(command.replace("{port}", str(_free_port())))[1:]
        for dataset in _values(args, "--dataset"):
            assert f"--dataset {dataset}" in SUBSTITUTIONS, (
                f"{command}: the bundled dataset {dataset!r} has no stand-in in SUBSTITUTIONS")
        # A named cluster cannot be joined here: the module's local session would stand in.
        assert _value(args, "--ray-address") in (None, "auto") or swap.why, (
            f"{command}: the Ray cluster it names has no entry in SUBSTITUTIONS")
        return args

    def run(self, command: str) -> Ran:
        if command not in self.ran:
            args = self.args(command)
            outs = set(_values(args, "--out"))
            for token in args:
                if (token in self.writers and token not in outs
                        and not (self.folder / token).exists()):
                    made = self.run(self.writers[token])
                    assert made.exit_code == 0, (
                        f"{token}, which {command!r} reads, was not made by "
                        f"{self.writers[token]!r}:\n{made.output[-4000:]}")
            serve = args[0] == "serve"
            self.ran[command] = (_serve if serve else _invoke)(args, self.folder)
        return self.ran[command]


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory):
    from salesfusion.data.spec import load_spec
    from salesfusion.data.validate import load_tables
    from salesfusion.datasets import DATASETS, Dataset
    from salesfusion.datasets.online_retail import OR_WEEKLY
    from salesfusion.datasets.synthetic import synthetic

    folder = tmp_path_factory.mktemp("docs_commands")
    _my_shop(folder)
    (folder / "or").mkdir()
    or_spec = _online_retail(folder / "or")
    synthetic(folder / "synthetic", **SYNTHETIC_STAND_IN)
    (folder / "presets").mkdir()
    for name, text in USER_FILES.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text(text if isinstance(text, str) else text(folder))
    for name in FAST_PRESETS:
        (folder / "presets" / f"{name}.yaml").write_text(_fast_preset(name))

    def online_retail() -> Dataset:
        spec = load_spec(or_spec)
        return Dataset(name="online_retail", spec=spec, tables=load_tables(spec),
                       benchmark=OR_WEEKLY)

    with pytest.MonkeyPatch.context() as patch:
        patch.setitem(DATASETS, "online_retail", online_retail)
        patch.setitem(DATASETS, "synthetic",
                      lambda: synthetic(folder / "synthetic", **SYNTHETIC_STAND_IN))
        yield Workspace(folder)


@pytest.fixture(scope="module")
def ray_cluster():
    import ray

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


# ---- what each subcommand says it writes -------------------------------------------------

def _frame(path: Path) -> pl.DataFrame:
    """A Parquet or CSV file's rows; a workbook's market sheets' rows."""
    if path.suffix == ".xlsx":
        sheets = pl.read_excel(path, sheet_id=0, engine="openpyxl")
        return pl.concat([f for name, f in sheets.items() if name != "totals"], how="diagonal")
    if path.suffix == ".csv":
        return pl.read_csv(path, infer_schema_length=None)
    return pl.read_parquet(path)


def _rows(path: Path) -> int:
    return _frame(path).height


def _check_validate(ws: Path, ran: Ran) -> None:
    assert "OK" in ran.output


def _check_build(ws: Path, ran: Ran) -> None:
    out = ws / _value(ran.args, "--out")
    if out.suffix == ".duckdb":
        assert out.stat().st_size > 0
    else:
        assert _rows(out) > 0


def _check_backtest(ws: Path, ran: Ran) -> None:
    out = ws / _value(ran.args, "--out")
    assert _rows(out / "metrics.csv") > 0
    assert (out / "report.html").stat().st_size > 0
    if _value(ran.args, "--out-format") == "partitioned":
        assert (out / "_partitions.json").is_file()
        assert sum(pl.read_parquet(p).height for p in out.rglob("part-0.parquet")) > 0
    else:
        forecasts = pl.read_parquet(out / "forecasts.parquet")
        assert set(forecasts["model"]) == set(_value(ran.args, "--models").split(","))
    if _value(ran.args, "--protocol") == "launch":
        assert _rows(out / "metrics_since_launch.csv") > 0


def _check_model(ws: Path, ran: Ran) -> None:
    assert (ws / _value(ran.args, "--out") / "manifest.json").is_file()


def _check_predict(ws: Path, ran: Ran) -> None:
    out = ws / _value(ran.args, "--out")
    assert _rows(out) > 0
    if "--service-level" in ran.args:
        assert _frame(out)["order_quantity"].is_finite().all()
    if "--plan" in ran.args:
        assert _rows(out.with_name(f"{out.stem}_plan_vs_base{out.suffix}")) > 0
    if "--launch" in ran.args and "--items" in ran.args:
        assert set(_frame(out)["item_id"]) == set(_value(ran.args, "--items").split(","))


def _check_encode(ws: Path, ran: Ran) -> None:
    assert "cache hits" in ran.output
    if (out := _value(ran.args, "--out")) is not None:
        assert _rows(ws / out) > 0


def _check_experiment(ws: Path, ran: Ran) -> None:
    for folder in (_value(ran.args, "--out"), _value(ran.args, "--publish")):
        if folder is not None:
            assert (ws / folder / "results.md").is_file()
            assert _rows(ws / folder / "headline.csv") > 0
    if "--mlflow" in ran.args:
        assert (ws / _value(ran.args, "--out") / "mlflow.db").is_file()


def _check_explain(ws: Path, ran: Ran) -> None:
    out = ws / _value(ran.args, "--out")
    assert (out / "report.html").is_file() and (out / "summary.json").is_file()
    assert pl.read_parquet(out / "errors_by_segment.parquet").height > 0


def _check_demo(ws: Path, ran: Ran) -> None:
    out = ws / (_value(ran.args, "--out") or "runs/demo")
    assert set(pl.read_parquet(out / "forecasts.parquet")["model"]) == set(DEMO_MODELS)
    assert (out / "metrics.csv").is_file() and (out / "report.html").is_file()


def _check_tune(ws: Path, ran: Ran) -> None:
    out = ws / (_value(ran.args, "--out") or _value(ran.args, "--resume"))
    assert (out / "best.yaml").is_file() and (out / "model" / "manifest.json").is_file()
    assert pl.read_parquet(out / "trials.parquet").height > 0


def _check_serve(ws: Path, ran: Ran) -> None:
    assert ran.answers["/v1/health"][0] == 200
    status, models = ran.answers["/v1/models"]
    assert status == 200
    assert sorted(m["name"] for m in models) == sorted(
        Path(m).name for m in _values(ran.args, "--model"))
    assert ran.answers["/dashboard"][0] == 200


CHECKS: dict[str, Callable[[Path, Ran], None]] = {
    "data validate": _check_validate, "data build": _check_build, "backtest": _check_backtest,
    "train": _check_model, "predict": _check_predict, "encode": _check_encode,
    "experiment": _check_experiment, "explain": _check_explain, "demo": _check_demo,
    "tune": _check_tune, "serve": _check_serve,
}


def _check_for(args: list[str]) -> Callable[[Path, Ran], None]:
    check = CHECKS.get(_subcommand(args))
    assert check is not None, f"no check for '{_subcommand(args)}': add one to CHECKS"
    return check


def _param(page: str, index: int, command: str):
    args = shlex.split(command)[1:]
    on_ray = _value(args, "--backend") == "ray"
    return pytest.param(command, id=f"{page}:{index}:{_subcommand(args)}",
                        marks=pytest.mark.xdist_group("ray" if on_ray else "docs_commands"))


def _numbered() -> list:
    counts: dict[str, int] = {}
    params = []
    for page, command in COMMANDS:
        counts[page] = counts.get(page, 0) + 1
        params.append(_param(page, counts[page], command))
    return params


@pytest.mark.parametrize("command", _numbered())
def test_documented_command_runs(command: str, workspace: Workspace,
                                 request: pytest.FixtureRequest) -> None:
    args = workspace.args(command)
    check = _check_for(args)
    if _value(args, "--backend") == "ray":
        request.getfixturevalue("ray_cluster")
    ran = workspace.run(command)
    assert ran.exit_code == 0, f"{shlex.join(ran.args)}\n{ran.output[-6000:]}"
    check(workspace.folder, ran)


def test_every_substitution_still_matches_the_docs() -> None:
    documented = {command for _, command in COMMANDS}
    datasets = {f"--dataset {d}" for c in documented for d in _values(shlex.split(c), "--dataset")}
    assert set(SUBSTITUTIONS) - documented - datasets == set()
    for command, swap in SUBSTITUTIONS.items():
        assert all(command.count(fragment) == 1 for fragment in swap.changes), command
    assert set(PREREQUISITES).isdisjoint(
        {_value(shlex.split(c), "--out") for c in documented})  # documented writers come first


def test_no_two_documented_commands_write_one_folder() -> None:
    """The docs' commands, followed in one folder, do not refuse each other's outputs (a new
    search or experiment needs a new --out)."""
    writers: dict[str, set[str]] = {}
    for _, command in COMMANDS:
        if (out := _value(shlex.split(command), "--out")) is not None:
            writers.setdefault(out, set()).add(command)
    assert {out: c for out, c in writers.items() if len(c) > 1} == {}


def test_a_command_with_no_way_to_run_here_fails_without_an_entry(tmp_path: Path) -> None:
    workspace = Workspace(tmp_path)
    with pytest.raises(AssertionError, match="'m5' has no stand-in"):
        workspace.args("salesfusion backtest --dataset m5 --models naive --out runs/m5")
    with pytest.raises(AssertionError, match="the Ray cluster it names"):
        workspace.args("salesfusion backtest --spec shop.yaml --models naive --backend ray "
                       "--ray-address ray://head:10001 --out runs/r")
    with pytest.raises(AssertionError, match="no check for 'report'"):
        _check_for(["report", "--out", "report.html"])
    assert workspace.args("salesfusion demo --out runs/demo") == ["demo", "--out", "runs/demo"]
