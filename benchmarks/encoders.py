"""Encoder throughput on this machine, and how close it runs to the hardware limit.

Measures, in the same run: the machine's dense fp32 matmul rate (torch, all threads), images/s
for efficientnet_lite0 and resnet101 on the synthetic shop's images, texts/s for minilm, doc2vec
and tfidf on the Online Retail descriptions (no cache, so every input is encoded). For the torch
models the FLOPs per input are counted with ``torch.utils.flop_counter`` and the achieved FLOP
rate is given as a fraction of the matmul rate. Doc2Vec and TF-IDF are not matmul-bound (sparse
and scalar work), so they get a throughput only.

Run: .venv/bin/python benchmarks/encoders.py [--images 256] [--texts 2000]
"""

from __future__ import annotations

import argparse
import tempfile
import time

import _provenance  # before torch: it sets OMP_WAIT_POLICY
import numpy as np
import torch
from rich.console import Console
from rich.table import Table
from torch.utils.flop_counter import FlopCounterMode

from salesfusion.datasets import online_retail
from salesfusion.datasets.synthetic import synthetic
from salesfusion.encoders.registry import create_encoder
from salesfusion.encoders.text.minilm import load_minilm


def matmul_flops_per_second(size: int = 2048, repeats: int = 10) -> float:
    a, b = torch.randn(size, size), torch.randn(size, size)
    torch.mm(a, b)  # warm-up
    started = time.perf_counter()
    for _ in range(repeats):
        torch.mm(a, b)
    return 2 * size**3 * repeats / (time.perf_counter() - started)


def count_flops(run: callable) -> float:
    counter = FlopCounterMode(display=False)
    with counter, torch.inference_mode():
        run()
    return float(counter.get_total_flops())


def timed(encoder, inputs: list, batch_size: int) -> float:
    started = time.perf_counter()
    encoder.encode(inputs, batch_size=batch_size)
    return len(inputs) / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--images", type=int, default=256)
    parser.add_argument("--texts", type=int, default=2000)
    args = parser.parse_args()
    console = Console(width=140)
    console.print(_provenance.summary_line())
    peak = matmul_flops_per_second()
    console.print(f"dense fp32 matmul: {peak / 1e9:,.1f} GFLOP/s on {torch.get_num_threads()} "
                  f"threads")
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        shop = synthetic(folder, n_items=args.images, n_weeks=4, seed=0)
        images = shop.tables.items["image"].to_list()
        for name in ("efficientnet_lite0", "resnet101"):
            encoder = create_encoder(name, image_root=shop.folder)
            encoder.encode(images[:8], batch_size=8)  # load weights, warm up
            rate = timed(encoder, images, batch_size=32)
            sample = torch.from_numpy(np.stack([encoder.load_input(images[0])]))
            flops = count_flops(lambda e=encoder, s=sample: e.network().features(s))
            rows.append((name, "images/s", rate, flops, rate * flops / peak))
    texts = online_retail().tables.items["description"].drop_nulls().to_list()[: args.texts]
    minilm = create_encoder("minilm")
    minilm.encode(texts[:32])
    rate = timed(minilm, texts, batch_size=64)
    model = load_minilm()
    features = model.preprocess(texts[:64])
    per_batch = count_flops(lambda: model(features))
    flops = per_batch / 64
    rows.append(("minilm", "texts/s", rate, flops, rate * flops / peak))
    for name in ("doc2vec", "tfidf"):
        encoder = create_encoder(name).fit(texts)
        rows.append((name, "texts/s", timed(encoder, texts, batch_size=256), None, None))

    table = Table(title="Encoder throughput (no cache)")
    for column in ("encoder", "unit", "throughput", "GFLOP per input", "share of matmul rate"):
        table.add_column(column, justify="right")
    for name, unit, rate, flops, share in rows:
        table.add_row(name, unit, f"{rate:,.1f}",
                      "n/a" if flops is None else f"{flops / 1e9:.3f}",
                      "n/a" if share is None else f"{100 * share:.1f}%")
    console.print(table)


if __name__ == "__main__":
    main()
