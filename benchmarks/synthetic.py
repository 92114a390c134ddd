"""How fast the synthetic shop is generated: ``synthetic(folder, n_items=N, n_weeks=W, seed=s)``
into a fresh folder (tables, one rendered PNG per item, spec, ground truth, then loading it back
through its spec), repeated with different seeds.

The reference, measured in the same run, is the floor of the image part: saving N plain PNG
images of the generator's size with Pillow. The ratio says how much the whole generation costs
beyond writing its image files.

Run: .venv/bin/python benchmarks/synthetic.py [--items 2000] [--weeks 20] [--repeats 3]
     [--json PATH]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

from _provenance import provenance, summary_line
from PIL import Image

from salesfusion.datasets.synthetic import synthetic

IMAGE_SIZE = 64  # the generator's default image_size


def _generate(folder: Path, items: int, weeks: int, seed: int) -> float:
    started = time.perf_counter()
    synthetic(folder, n_items=items, n_weeks=weeks, seed=seed)
    return time.perf_counter() - started


def _plain_images(folder: Path, items: int) -> float:
    folder.mkdir(parents=True)
    started = time.perf_counter()
    for i in range(items):
        Image.new("RGB", (IMAGE_SIZE, IMAGE_SIZE), (245, 245, 240)).save(folder / f"{i}.png")
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--items", type=int, default=2000)
    parser.add_argument("--weeks", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    print(summary_line())
    with tempfile.TemporaryDirectory() as scratch:
        root = Path(scratch)
        runs, floors = [], []
        for repeat in range(args.repeats):
            runs.append(_generate(root / f"shop{repeat}", args.items, args.weeks, seed=repeat))
            floors.append(_plain_images(root / f"plain{repeat}", args.items))
    generate, floor = statistics.median(runs), statistics.median(floors)
    print(f"synthetic shop, {args.items:,} items x {args.weeks} weeks: median {generate:.2f} s "
          f"of {args.repeats} ({', '.join(f'{s:.2f}' for s in runs)}), "
          f"{args.items / generate:,.0f} items/s")
    print(f"reference, {args.items:,} plain {IMAGE_SIZE}x{IMAGE_SIZE} PNGs: median {floor:.2f} s")
    print(f"ratio generation / plain PNGs: x{generate / floor:.2f}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({
            "benchmark": "synthetic", "provenance": provenance(),
            "settings": {"items": args.items, "weeks": args.weeks, "repeats": args.repeats,
                         "image_size": IMAGE_SIZE},
            "results": {"generate_s": runs, "plain_png_s": floors,
                        "generate_median_s": generate, "plain_png_median_s": floor,
                        "ratio": generate / floor}}, indent=2))
        print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
