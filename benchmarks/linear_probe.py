"""Linear probe of every encoder on the synthetic shop: out-of-fold R² of a ridge regression from
the encoder's vectors to the ground-truth factor of its modality (visual for images, textual for
text, attribute for static), and to the other modalities' factors as controls (should be ~0).

Run: .venv/bin/python benchmarks/linear_probe.py [--items 600]
"""

from __future__ import annotations

import argparse
import tempfile
import time

import numpy as np
from _provenance import summary_line
from rich.console import Console
from rich.table import Table

from salesfusion.datasets.synthetic import synthetic
from salesfusion.encoders.registry import create_encoder
from salesfusion.evaluation.probe import probe_r2

TEXT = ["tfidf", "doc2vec", "minilm", "e5", "word_sequence"]
IMAGE = ["color_texture", "efficientnet_lite0", "resnet18", "resnet101"]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--items", type=int, default=600)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    print(summary_line(load_torch=True))
    with tempfile.TemporaryDirectory() as folder:
        data = synthetic(folder, n_items=args.items, seed=args.seed, n_weeks=8)
        items = data.tables.items.join(data.truth.item_effects, on="item_id")
        targets = {f: items[f].to_numpy() for f in ("visual", "textual", "attribute")}
        texts = (items["title"] + " " + items["description"]).to_list()
        table = Table(title=f"Linear probe R² (out-of-fold, {args.items} synthetic items)")
        for column in ("encoder", "modality", "own factor", "R² own", "R² visual",
                       "R² textual", "R² attribute", "seconds"):
            table.add_column(column)
        runs = [(n, "text", texts, "textual") for n in TEXT]
        runs += [(n, "image", items["image"].to_list(), "visual") for n in IMAGE]
        runs.append(("static", "static", items.select("category", "material", "price")
                     .to_dicts(), "attribute"))
        for name, modality, inputs, own in runs:
            params = {"image_root": data.folder} if modality == "image" else {}
            if name == "static":
                params = {"categorical": ["category", "material"], "numeric": ["price"]}
            started = time.perf_counter()
            encoder = create_encoder(name, **params)
            if encoder.needs_fit:
                encoder.fit(inputs)
            vectors = encoder.encode(inputs, batch_size=64).vectors
            if vectors.ndim == 3:  # word sequences: mean over real tokens for a linear probe
                mask = np.any(vectors != 0, axis=-1, keepdims=True)
                vectors = (vectors * mask).sum(1) / np.maximum(mask.sum(1), 1)
            scores = {f: probe_r2(vectors, t, seed=args.seed) for f, t in targets.items()}
            table.add_row(name, modality, own, f"{scores[own]:.3f}", f"{scores['visual']:.3f}",
                          f"{scores['textual']:.3f}", f"{scores['attribute']:.3f}",
                          f"{time.perf_counter() - started:.1f}")
        Console(width=150).print(table)


if __name__ == "__main__":
    main()
