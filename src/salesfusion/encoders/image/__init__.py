"""Image encoders: resnet18/50/101/152, efficientnet_lite0, color_texture (and clip)."""

from salesfusion.encoders.image import color_texture, efficientnet, resnet  # noqa: F401
