"""Saving and loading a fitted multimodal model: the network's weights (safetensors) and,
beside them, what the network's inputs are built from (``multimodal.json``: item and market
rows, attribute vocabularies, market codes, covariate names and scale, target transform,
launch levels). The encoded item content is among the weights (the network's content buffers),
so a saved model predicts without its encoders; the JSON gives those buffers' shapes, to build
the network before loading.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from salesfusion.encoders.static import StaticVocabulary
from salesfusion.models.network import CONTENT_BUFFERS, MultimodalNet
from salesfusion.training.transforms import TargetTransform


class PersistencePath:
    """Mixed into ``MultimodalForecaster`` (``_build_net`` is the model's)."""

    _net: MultimodalNet
    _item_rows: dict[str, int]
    _markets: dict[str, int]
    _vocabulary: StaticVocabulary
    _notes: list[str]
    _widths: tuple[int, int]
    _covariate_names: list[str]
    _covariate_scale: dict[str, list[float]]
    _transform: TargetTransform
    _launch_levels: dict[str, float] | None
    _market_vocabulary: StaticVocabulary | None
    _market_codes: dict[str, list[int]]

    def _save_state(self, folder: Path) -> None:
        state = {k: v.contiguous() for k, v in self._net.state_dict().items()}
        save_file(state, str(folder / "weights.safetensors"))
        buffers = {b for names in CONTENT_BUFFERS.values() for b in names}
        content = {k: [list(v.shape), str(v.dtype).removeprefix("torch.")]
                   for k, v in self._net.state_dict().items() if k.split(".")[0] in buffers}
        (folder / "multimodal.json").write_text(json.dumps({
            "items": self._item_rows, "markets": self._markets,
            "vocabulary": self._vocabulary.to_dict(), "content": content,
            "notes": self._notes, "widths": list(self._widths),
            "covariate_names": self._covariate_names, "covariate_scale": self._covariate_scale,
            "target_transform": self._transform.to_dict(),
            "launch_levels": self._launch_levels,
            "market_vocabulary": self._market_vocabulary.to_dict()
            if self._market_vocabulary is not None else None,
            "market_codes": self._market_codes}))

    def _load_state(self, folder: Path) -> None:
        meta = json.loads((folder / "multimodal.json").read_text())
        self._item_rows, self._markets = meta["items"], meta["markets"]
        self._vocabulary = StaticVocabulary.from_dict(meta["vocabulary"])
        self._notes = meta["notes"]
        self._widths = tuple(meta["widths"])
        self._covariate_names = meta["covariate_names"]
        self._covariate_scale = meta["covariate_scale"]
        self._transform = TargetTransform(**meta["target_transform"])
        # Models saved before launch levels existed scale launches by the market level.
        self._launch_levels = meta.get("launch_levels")
        vocabulary = meta.get("market_vocabulary")  # absent in models saved before it existed
        self._market_vocabulary = (StaticVocabulary.from_dict(vocabulary) if vocabulary
                                   else None)
        self._market_codes = meta.get("market_codes") or {}
        content = {k: torch.zeros(shape, dtype=getattr(torch, dtype))
                   for k, (shape, dtype) in meta["content"].items()}
        self._net = self._build_net(content)
        self._net.load_state_dict(load_file(str(folder / "weights.safetensors")))
        self._net.eval()
