"""``salesfusion encode``: one modality of the items table through the embedding cache."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer

from salesfusion.cli.common import (
    Backend,
    RayAddress,
    Workers,
    app,
    check_backend,
    console,
    guarded,
)
from salesfusion.cli.output import staged_file
from salesfusion.data.crosscheck import crosscheck
from salesfusion.data.panel import build_panel
from salesfusion.data.spec import load_spec
from salesfusion.data.validate import load_tables
from salesfusion.datasets import load_dataset
from salesfusion.encoders.cache import DEFAULT_CACHE
from salesfusion.errors import InputError


@app.command()
@guarded
def encode(
    modality: Annotated[str, typer.Option(help="text, image or static.")],
    encoder: Annotated[str, typer.Option(help="A registered encoder of that modality.")],
    dataset: Annotated[str | None, typer.Option(help="A bundled dataset.")] = None,
    spec: Annotated[Path | None, typer.Option(help="A YAML dataset spec.")] = None,
    cache: Annotated[Path, typer.Option(help="Embedding cache folder.")] = DEFAULT_CACHE,
    batch_size: Annotated[int, typer.Option(min=1)] = 64,
    out: Annotated[Path | None, typer.Option(help="Write item_id, mask, problem, vector "
                                             "to this Parquet file.")] = None,
    backend: Backend = "local",
    workers: Workers = None,
    ray_address: RayAddress = None,
) -> None:
    """Encode one modality of the items table (cached), printing throughput and cache hits."""
    from salesfusion.encoders.cache import EmbeddingCache
    from salesfusion.encoders.inputs import Catalogue, build_encoder
    from salesfusion.encoders.registry import encoder_class

    # Options first: a bad one fails before any data is read or encoder loaded.
    check_backend(backend, workers, ray_address)
    workers = workers or 2
    if backend == "ray":
        from salesfusion.distributed import require_ray

        require_ray("ray.data")
    if encoder_class(encoder).modality != modality:
        raise InputError(f"encoder '{encoder}' encodes {encoder_class(encoder).modality}, "
                         f"not {modality}")
    if (dataset is None) == (spec is None):
        raise InputError("give exactly one of --dataset NAME or --spec SPEC")
    source = load_dataset(dataset) if dataset else None
    tables = source.tables if source else load_tables(load_spec(spec))
    if source is None:  # the cross-table summary every command that loads a spec prints
        checked = crosscheck(tables, build_panel(tables))
        for line in checked.summary():
            console.print(line, markup=False, highlight=False)
        checked.raise_for_errors()
    catalogue = Catalogue.from_tables(tables)
    ids = catalogue.ids
    inputs, _ = catalogue.inputs(modality)
    model = build_encoder(catalogue, modality, encoder)
    if model.needs_fit:  # the same corpus (and image-text pairing) a model fits on
        with console.status(f"Fitting {encoder} on {len(inputs):,} items"):
            model.fit(catalogue.fit_corpus(model, inputs))
    started = time.perf_counter()
    if backend == "ray":
        from salesfusion.encoders.ray_encode import encode_with_ray

        console.print(f"Encoding on Ray with {workers} workers")
        result = encode_with_ray(model, inputs, batch_size, EmbeddingCache(cache), workers,
                                 address=ray_address, progress=True)
    else:
        result = model.encode(inputs, batch_size=batch_size, cache=EmbeddingCache(cache),
                              progress=True)
    seconds = time.perf_counter() - started
    console.print(f"{encoder}: {len(inputs):,} inputs ({result.unique:,} unique contents), "
                  f"{result.cache_hits:,} cache hits, {result.masked:,} masked, "
                  f"{seconds:,.2f} s, {len(inputs) / max(seconds, 1e-9):,.1f} inputs/s")
    for index, problem in list(result.problems.items())[:5]:
        console.print(f"  masked {ids[index]}: {problem}")
    if out is not None:
        import polars as pl

        frame = pl.DataFrame({"item_id": ids, "mask": result.mask,
                              "problem": [result.problems.get(i) for i in range(len(ids))],
                              "vector": list(result.vectors.reshape(len(ids), -1))})
        with staged_file(out) as target:
            frame.write_parquet(target)
        console.print(f"Wrote {out}")


