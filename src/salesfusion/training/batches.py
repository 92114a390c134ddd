"""Windows as named tensors and data loaders of batch mappings."""

from __future__ import annotations

import numpy as np
import torch

from salesfusion.training.windows import Windows


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
