"""Cold start-up of the commands: wall time of a fresh process for ``salesfusion --help``,
``data validate`` and a ``naive`` backtest on a small synthetic shop, against a bare
``python -c pass`` and ``python -c "import torch"`` measured in the same run, with which heavy
libraries each command imported.

Registries import a component's module only when the component is asked for, so the commands
that need no network never import torch, lightning, scikit-learn, Ray or LightGBM
(``tests/test_imports.py`` asserts it); this prints what that buys on this machine.

Run: OMP_NUM_THREADS=2 .venv/bin/python benchmarks/startup.py [--repeats 5] [--json PATH]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import _provenance  # noqa: F401  (first: sets OMP_WAIT_POLICY before any OpenMP runtime)
from _provenance import provenance, summary_line

HEAVY = ("torch", "lightning", "sklearn", "ray", "lightgbm")
RUN_CLI = (
    "import json, sys\n"
    "from salesfusion.cli import main\n"
    "sys.argv = ['salesfusion', *sys.argv[1:]]\n"
    "try:\n    main()\nexcept SystemExit:\n    pass\n"
    f"print(json.dumps([m for m in {HEAVY!r} if m in sys.modules]), file=sys.stderr)\n")


def _time(command: list[str], cwd: Path, repeats: int) -> tuple[float, float, float, list[str]]:
    """Median, min and max wall seconds of ``command`` run ``repeats`` times, and the heavy
    libraries its last run reported."""
    seconds, heavy = [], []
    for _ in range(repeats):
        started = time.perf_counter()
        done = subprocess.run(command, cwd=cwd, capture_output=True, text=True, check=True)
        seconds.append(time.perf_counter() - started)
        last = done.stderr.strip().splitlines()[-1:] if "main()" in " ".join(command) else []
        heavy = json.loads(last[0]) if last and last[0].startswith("[") else []
    return statistics.median(seconds), min(seconds), max(seconds), heavy


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--json", type=Path, help="write the results here as JSON")
    args = parser.parse_args()
    print(summary_line())
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from tests.conftest import make_shop

    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        spec = make_shop(root)
        python = [sys.executable, "-c"]
        commands = {
            "python -c pass (reference)": [*python, "pass"],
            "python -c 'import torch' (reference)": [*python, "import torch"],
            "salesfusion --help": [*python, RUN_CLI, "--help"],
            "salesfusion data validate": [*python, RUN_CLI, "data", "validate", str(spec)],
            "salesfusion backtest --models naive": [
                *python, RUN_CLI, "backtest", "--spec", str(spec), "--models", "naive",
                "--horizon", "2", "--windows", "2", "--out", str(root / "run")],
        }
        rows = []
        for label, command in commands.items():
            if "backtest" in label:  # each run writes a fresh folder
                command = [*command[:-1], str(root / f"run{len(rows)}")]
            median, low, high, heavy = _time(command, root, args.repeats)
            rows.append({"command": label, "median_s": round(median, 3), "min_s": round(low, 3),
                         "max_s": round(high, 3), "heavy_imports": heavy})
            print(f"{label:40s} {median:6.2f} s (min {low:.2f}, max {high:.2f})  "
                  f"heavy imports: {', '.join(heavy) or 'none'}", flush=True)
    if args.json:
        args.json.write_text(json.dumps({"command": " ".join(sys.argv),
                                         "provenance": provenance(), "rows": rows}, indent=2))
        print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
