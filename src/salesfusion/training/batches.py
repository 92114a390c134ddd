"""Windows as named tensors and data loaders of batch mappings."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from salesfusion.training.window_source import SampleIndex, Windows


def window_tensors(windows: Windows, item_rows: np.ndarray,
                   market_index: np.ndarray) -> dict[str, torch.Tensor]:
    """The network inputs and targets of ``windows``; ``item_rows`` / ``market_index`` give
    each wide-panel series' content row (-1: no content) and market index (0: unseen)."""
    return {
        "history": torch.from_numpy(windows.history),
        "history_mask": torch.from_numpy(windows.history_mask),
        "items": torch.from_numpy(item_rows[windows.series]).long(),
        "markets": torch.from_numpy(market_index[windows.series]).long(),
        "log_level": torch.from_numpy(np.log(windows.level)).float(),
        "target": torch.from_numpy(windows.target),
        "target_mask": torch.from_numpy(windows.target_mask),
        "future": torch.from_numpy(windows.future),
        "abroad": torch.from_numpy(windows.abroad).float(),
    }


def batch_loader(tensors: dict[str, torch.Tensor], batch_size: int, shuffle: bool,
                 seed: int) -> torch.utils.data.DataLoader:
    """Batches as ``{name: tensor}``, shuffled by a seeded generator (``loader.generator``:
    each epoch draws its order from where the previous one left it, and a checkpoint
    keeps its state for an exact resume)."""
    names = list(tensors)
    dataset = torch.utils.data.TensorDataset(*(tensors[n] for n in names))
    generator = torch.Generator().manual_seed(seed)

    def collate(rows: list) -> dict[str, torch.Tensor]:
        return {n: torch.stack([r[i] for r in rows]) for i, n in enumerate(names)}

    return torch.utils.data.DataLoader(dataset, batch_size=batch_size, shuffle=shuffle,
                                       generator=generator, collate_fn=collate, num_workers=0)


class GatheredBatches(torch.utils.data.Dataset):
    """A map-style dataset over a ``SampleIndex`` that builds each batch's windows when the
    loader asks (``__getitems__``: torch's batched fetch), so the window tensor of the whole
    training set never exists. ``to_tensors`` turns a batch's windows into its named tensors."""

    def __init__(self, samples: SampleIndex,
                 to_tensors: Callable[[Windows], dict[str, torch.Tensor]]) -> None:
        self.samples = samples
        self.to_tensors = to_tensors

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        return self.__getitems__([index])

    def __getitems__(self, indices: list[int]) -> dict[str, torch.Tensor]:
        return self.to_tensors(self.samples.gather(np.asarray(indices, dtype=np.int64)))

    def fingerprint(self, update: Callable[[str, np.ndarray], None]) -> None:
        """Feed what decides every batch (the source arrays, the samples, the cut) to
        ``update`` without building the batches (a checkpoint folder's data check)."""
        source = self.samples.source
        for name in ("y", "calendar", "cold", "abroad"):
            update(f"source.{name}", getattr(source, name))
        if source.covariates is not None:
            update("source.covariates", source.covariates.values)
        update("samples.series", self.samples.series)
        update("samples.origin", self.samples.origin)
        update("samples.cut", np.array([-1 if self.samples.target_until is None
                                        else self.samples.target_until]))
        probe = self.__getitems__(list(range(min(len(self), 64))))  # the transform's effect
        for name in sorted(probe):
            update(f"probe.{name}", probe[name].numpy())


def gathered_loader(samples: SampleIndex,
                    to_tensors: Callable[[Windows], dict[str, torch.Tensor]], batch_size: int,
                    shuffle: bool, seed: int) -> torch.utils.data.DataLoader:
    """``batch_loader`` of the same samples, gathered batch by batch: the same seeded order
    draws the same indices, so the batches equal ``batch_loader``'s of the materialised
    windows."""
    generator = torch.Generator().manual_seed(seed)
    return torch.utils.data.DataLoader(GatheredBatches(samples, to_tensors),
                                       batch_size=batch_size, shuffle=shuffle,
                                       generator=generator, collate_fn=_as_is, num_workers=0)


def _as_is(batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return batch
