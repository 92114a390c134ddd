"""Batch encoding on a Ray cluster with Ray Data: the same result as ``Encoder.encode``, the
encoding spread over ``workers`` actors.

The driver plans as the local path does (content keys, what the cache already holds); only the
contents left to encode become a Ray dataset. Each actor holds one copy of the (already fitted)
encoder, encodes its batches and stores their vectors in the same content-hash cache, returning
only keys and problems; the driver then reads the new vectors back from the cache. Vectors never
travel through the driver's object store, and an interrupted run keeps every finished batch.
On a multi-node cluster the cache folder (and an image root) must be on storage every node
reads and writes at the same path.
"""

from __future__ import annotations

import contextlib
import logging
import math
import sys
import uuid
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

from salesfusion.distributed import ray_session
from salesfusion.encoders.base import Encoded, Encoder, EncodingPlan
from salesfusion.encoders.cache import EmbeddingCache
from salesfusion.errors import InputError


class _EncodeActor:
    """One Ray Data map worker: the encoder built once, then one call per batch."""

    def __init__(self, encoder: Encoder, folder: str, namespace: str,
                 contents: dict[str, Any]) -> None:
        import torch

        # One CPU per actor: more torch threads would only fight the other actors.
        torch.set_num_threads(1)
        self.encoder = encoder
        self.cache = EmbeddingCache(folder)
        self.namespace = namespace
        self.contents = contents

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        keys = [str(key) for key in batch["key"]]
        items = [self.contents[key] for key in keys]
        good, vectors, failed = self.encoder.encode_contents(keys, items)
        if good:
            self.cache.put(self.namespace, good, vectors)
        return {"key": np.asarray(keys, dtype=object),
                "problem": np.asarray([failed.get(key, "") for key in keys], dtype=object),
                "batch": np.asarray([uuid.uuid4().hex] * len(keys), dtype=object)}


def encode_with_ray(encoder: Encoder, inputs: Sequence[Any], batch_size: int,
                    cache: EmbeddingCache, workers: int, address: str | None = None,
                    progress: bool = True) -> Encoded:
    """``encoder.encode(inputs, batch_size, cache)`` with the new contents encoded by
    ``workers`` Ray actors (a local cluster unless ``address`` or ``RAY_ADDRESS`` names one):
    the same vectors, mask, problems, cache hits and unique count. Nothing starts when the
    cache already holds every content."""
    if workers < 1:
        raise InputError(f"--workers {workers}: give 1 or more")
    if batch_size < 1:
        raise InputError(f"--batch-size {batch_size}: give 1 or more")
    plan = encoder.plan(inputs, cache)
    fresh: dict[str, np.ndarray] = {}
    failed: dict[str, str] = {}
    if plan.todo:
        with ray_session(address, workers):
            done = _run(encoder, plan, batch_size, cache, workers, progress)
        failed = {key: problem for key, problem in done.items() if problem}
        written = [key for key, problem in done.items() if not problem]
        # A separate reader: the caller's cache statistics count hits as the local path does.
        fresh = EmbeddingCache(cache.folder).get(plan.namespace, written,
                                                 int(np.prod(encoder.output_shape())))
        cache.stats.stored += len(written)
        if len(fresh) < len(written):
            raise InputError(f"{cache.folder}: {len(written) - len(fresh):,} vectors the Ray "
                             "workers wrote are not in this cache; on a cluster the cache must "
                             "be on storage every node shares")
    return encoder.assemble(plan, fresh, failed)


def _run(encoder: Encoder, plan: EncodingPlan, batch_size: int, cache: EmbeddingCache,
         workers: int, progress: bool) -> dict[str, str]:
    """Encode ``plan.todo`` on the Ray session; returns each content key's problem ("" when
    its vector is in the cache)."""
    import ray.data

    # Rows carry content keys only; each actor gets the contents themselves once, as Ray
    # serialises its constructor's arguments (Arrow would turn attribute dicts into structs).
    rows = [{"key": key} for key in plan.todo]
    contents = {key: plan.inputs[index] for key, index in plan.todo.items()}
    done: dict[str, str] = {}
    batches: set[str] = set()
    with _quiet_ray_data():  # before the dataset exists: it copies the settings it starts with
        # About one block per batch, so that every actor gets batches (a few items would make
        # one block, hence one actor's work).
        blocks = math.ceil(len(rows) / batch_size)
        dataset = ray.data.from_items(rows, override_num_blocks=blocks).map_batches(
            _EncodeActor, batch_size=batch_size, batch_format="numpy",
            compute=ray.data.ActorPoolStrategy(size=workers), num_cpus=1,
            # Each actor unpickles its own copy of the fitted encoder, once.
            fn_constructor_kwargs={"encoder": encoder, "folder": str(cache.folder),
                                   "namespace": plan.namespace, "contents": contents})
        for block in dataset.iter_batches(batch_size=None, batch_format="numpy"):
            done.update(zip(block["key"].tolist(), block["problem"].tolist(), strict=True))
            before = len(batches)
            batches.update(block["batch"].tolist())
            if progress and len(batches) > before:
                print(f"{encoder.name} on Ray: {len(batches):,} batches done, "
                      f"{len(done):,}/{len(rows):,} contents encoded", file=sys.stderr,
                      flush=True)
    return done


@contextlib.contextmanager
def _quiet_ray_data() -> Iterator[None]:
    """Our plain progress lines instead of Ray Data's bars and console log lines (its log
    file in the Ray session folder keeps them all); the previous settings come back after."""
    import ray.data

    context = ray.data.DataContext.get_current()
    bars = context.enable_progress_bars
    consoles = [handler for handler in logging.getLogger("ray.data").handlers
                if isinstance(handler, logging.StreamHandler)
                and not isinstance(handler, logging.FileHandler)]
    levels = [handler.level for handler in consoles]
    context.enable_progress_bars = False
    for handler in consoles:
        handler.setLevel(logging.ERROR)
    try:
        yield
    finally:
        context.enable_progress_bars = bars
        for handler, level in zip(consoles, levels, strict=True):
            handler.setLevel(level)
