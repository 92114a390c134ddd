"""ResNet-18/50/101/152 in plain torch (torchvision cannot be installed here) with parameter
names identical to torchvision's, so a torchvision checkpoint file loads unchanged, and the
learned 2048 -> 512 projection of seed 000 (eq. 11: h = f(W^T EResNet(x) + b)).

No ResNet weights ship with any installable package, so without ``weights`` (a local
torchvision ``.pth`` or ``.safetensors`` file) the backbone is randomly initialised from the
seed: deterministic, but not pretrained; the encoder says so in ``pretrained``.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any, ClassVar

import torch
from torch import nn

from salesfusion.encoders.image.base import TorchImageEncoder
from salesfusion.encoders.registry import register_encoder
from salesfusion.errors import InputError


def _conv3x3(in_planes: int, out_planes: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_planes, out_planes, 3, stride=stride, padding=1, bias=False)


class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, inplanes: int, planes: int, stride: int = 1,
                 downsample: nn.Module | None = None) -> None:
        super().__init__()
        self.conv1 = _conv3x3(inplanes, planes, stride)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = _conv3x3(planes, planes)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        return self.relu(self.bn2(self.conv2(out)) + identity)


class Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, inplanes: int, planes: int, stride: int = 1,
                 downsample: nn.Module | None = None) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = _conv3x3(planes, planes, stride)  # torchvision (v1.5): stride on the 3x3
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, planes * self.expansion, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * self.expansion)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        return self.relu(self.bn3(self.conv3(out)) + identity)


LAYOUTS: dict[int, tuple[type[nn.Module], list[int]]] = {
    18: (BasicBlock, [2, 2, 2, 2]),
    50: (Bottleneck, [3, 4, 6, 3]),
    101: (Bottleneck, [3, 4, 23, 3]),
    152: (Bottleneck, [3, 8, 36, 3]),
}


class ResNet(nn.Module):
    """torchvision's ResNet layout and names: conv1, bn1, relu, maxpool, layer1-4, avgpool, fc."""

    def __init__(self, depth: int, num_classes: int = 1000) -> None:
        super().__init__()
        if depth not in LAYOUTS:
            raise InputError(f"ResNet depth {depth} is not one of {sorted(LAYOUTS)}")
        block, layers = LAYOUTS[depth]
        self.inplanes = 64
        self.conv1 = nn.Conv2d(3, 64, 7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        self.layer1 = self._make_layer(block, 64, layers[0])
        self.layer2 = self._make_layer(block, 128, layers[1], stride=2)
        self.layer3 = self._make_layer(block, 256, layers[2], stride=2)
        self.layer4 = self._make_layer(block, 512, layers[3], stride=2)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.feature_dim = 512 * block.expansion
        self.fc = nn.Linear(self.feature_dim, num_classes)
        for module in self.modules():  # torchvision's initialisation
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(module, nn.BatchNorm2d):
                nn.init.constant_(module.weight, 1)
                nn.init.constant_(module.bias, 0)

    def _make_layer(self, block: type[nn.Module], planes: int, blocks: int,
                    stride: int = 1) -> nn.Sequential:
        downsample = None
        if stride != 1 or self.inplanes != planes * block.expansion:
            downsample = nn.Sequential(
                nn.Conv2d(self.inplanes, planes * block.expansion, 1, stride=stride, bias=False),
                nn.BatchNorm2d(planes * block.expansion))
        layers = [block(self.inplanes, planes, stride, downsample)]
        self.inplanes = planes * block.expansion
        layers += [block(self.inplanes, planes) for _ in range(1, blocks)]
        return nn.Sequential(*layers)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return torch.flatten(self.avgpool(x), 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.features(x))


class ImageProjection(nn.Module):
    """Seed 000 eq. 11: a learned linear map of the pooled ResNet features (2048 -> 512 for
    ResNet-152) followed by a ReLU; trained end to end inside a model."""

    def __init__(self, in_dim: int = 2048, out_dim: int = 512) -> None:
        super().__init__()
        self.linear = nn.Linear(in_dim, out_dim)
        self.activation = nn.ReLU()

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.activation(self.linear(features))


def load_weights(network: nn.Module, path: Path) -> None:
    """Load a torchvision-format state dict (``.pth`` / ``.pt`` via ``weights_only``, or
    ``.safetensors``); refuses files whose names or shapes do not match."""
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        state = load_file(str(path))
    else:
        state = torch.load(path, map_location="cpu", weights_only=True)
    result = network.load_state_dict(state, strict=False)
    if result.missing_keys or result.unexpected_keys:
        raise InputError(f"{path}: not a matching ResNet checkpoint (missing "
                         f"{result.missing_keys[:3]}, unexpected {result.unexpected_keys[:3]})")


class ResNetEncoder(TorchImageEncoder):
    depth: ClassVar[int]
    default_params: ClassVar[dict[str, Any]] = {"weights": None, "seed": 0}

    @property
    def dim(self) -> int:
        return 512 if self.depth == 18 else 2048

    @property
    def pretrained(self) -> bool:
        return self.params["weights"] is not None

    def weights_identity(self) -> str:
        weights = self.params["weights"]
        if weights is None:  # v2: residual branches start at zero (see ``network``)
            return f"random-init-v2-seed-{self.params['seed']}"
        return hashlib.sha256(Path(weights).read_bytes()).hexdigest()[:20]

    def network(self) -> ResNet:
        if not hasattr(self, "_network"):
            torch.manual_seed(int(self.params["seed"]))
            network = ResNet(self.depth)
            if self.params["weights"] is not None:
                load_weights(network, Path(self.params["weights"]))
            else:
                # torchvision's zero_init_residual: each residual branch starts at zero, so a
                # block starts as the identity. Without it, an untrained ResNet-101 in eval mode
                # adds 33 unnormalised branches and its features reach 1e5, which no model
                # downstream can learn from (measured: ResNet-18 features ~1.6, ResNet-101
                # ~19,000 mean absolute value).
                for module in network.modules():
                    last = getattr(module, "bn3", None) or (
                        getattr(module, "bn2", None) if isinstance(module, BasicBlock) else None)
                    if last is not None:
                        nn.init.zeros_(last.weight)
            self._network = network.eval()
        return self._network


for _depth in LAYOUTS:
    register_encoder(type(f"ResNet{_depth}Encoder", (ResNetEncoder,),
                          {"name": f"resnet{_depth}", "depth": _depth,
                           "__doc__": f"ResNet-{_depth} pooled features."}))
