"""The states of the random streams a training draws from, as checkpoint values.

A training keeps the streams it was seeded with (python, numpy and torch seeded once, the
training loader shuffled by its own generator): a checkpoint records where each stream stands
at an epoch boundary and a resume puts them back there, so the resumed epochs draw what the
uninterrupted ones did. The values are tensors, numbers, strings, lists and dicts only, as a
checkpoint is read with ``torch.load(..., weights_only=True)``.
"""

from __future__ import annotations

import random
from typing import Any

import numpy as np
import torch

KEYS = {"torch", "cuda", "loader", "numpy", "python"}


def capture_random(generator: torch.Generator | None) -> dict[str, Any]:
    """Where every stream stands now; ``generator``: the training loader's shuffle generator."""
    kind, keys, position, has_gauss, cached_gaussian = np.random.get_state(legacy=True)
    version, internal, gauss_next = random.getstate()
    return {
        "torch": torch.get_rng_state(),
        # Dropout on a GPU draws from the device's generator; CUDA untouched means a CPU run.
        "cuda": list(torch.cuda.get_rng_state_all()) if torch.cuda.is_initialized() else [],
        "loader": [generator.get_state()] if generator is not None else [],
        "numpy": {"kind": kind, "keys": torch.from_numpy(keys.astype(np.int64)),
                  "position": int(position), "has_gauss": int(has_gauss),
                  "cached_gaussian": float(cached_gaussian)},
        "python": {"version": int(version), "internal": torch.tensor(internal, dtype=torch.int64),
                   "gauss_next": [] if gauss_next is None else [float(gauss_next)]},
    }


def restore_random(state: dict[str, Any], generator: torch.Generator | None) -> None:
    """Put every stream back where ``state`` (of ``capture_random``) found it; ValueError,
    TypeError or RuntimeError where ``state`` does not describe this training's streams."""
    if not isinstance(state, dict) or set(state) != KEYS:
        raise ValueError("not a record of the random streams")
    if len(state["loader"]) != (generator is not None):
        raise ValueError("the training loader's shuffle generator does not match")
    try:
        saved = state["numpy"]
        keys = saved["keys"].numpy()
        numpy_state = (saved["kind"], keys.astype(np.uint32), int(saved["position"]),
                       int(saved["has_gauss"]), float(saved["cached_gaussian"]))
        python = state["python"]
        gauss_next = python["gauss_next"]
        python_state = (int(python["version"]),
                        tuple(int(v) for v in python["internal"].tolist()),
                        float(gauss_next[0]) if gauss_next else None)
    except (AttributeError, IndexError, KeyError, TypeError, ValueError):
        raise ValueError("random stream states malformed") from None
    if (keys.dtype != np.int64 or keys.shape != (624,) or keys.min() < 0
            or keys.max() >= 2 ** 32):
        raise ValueError("numpy generator keys malformed")
    if len(python_state[1]) != 625 or len(gauss_next) > 1:
        raise ValueError("python generator state malformed")
    # The setters check the rest (sizes, kinds, versions).
    torch.set_rng_state(state["torch"])
    if generator is not None:
        generator.set_state(state["loader"][0])
    np.random.set_state(numpy_state)
    random.setstate(python_state)
    if state["cuda"] and torch.cuda.is_available():
        if len(state["cuda"]) != torch.cuda.device_count():
            raise ValueError("saved on a machine with another number of GPUs")
        torch.cuda.set_rng_state_all(state["cuda"])
